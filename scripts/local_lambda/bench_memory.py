"""Where RSS goes: bench_programs/memory_steps.py, run twice in a fresh interpreter started as the layer's launcher
starts the extension (once for RSS, once under tracemalloc), loads what the extension loads in its order and
reports after each step; this turns its readings into deltas per step."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from . import layer
from .aws import MotoServer, lambda_environment
from .bench_common import PROGRAMS, REGION, SIZES, TOKEN, extension_path, launcher_interpreter, log
from .bench_startup import BULK_TABLE, parameter_name, secret_name, split


def memory_configs() -> list[dict[str, Any]]:
    """The smallest and the largest bench config, the large one as what it adds to the small one."""
    configs, before = [], (0, 0, 0)
    for items in (SIZES[0], SIZES[-1]):
        parameters, secrets, dynamodb = split(items)
        configs.append({"items": items,
                        "parameters": [parameter_name(i) for i in range(before[0], parameters)],
                        "secrets": [secret_name(i) for i in range(before[1], secrets)],
                        "dynamodb": {"table": BULK_TABLE, "key": "pk",
                                     "values": [f"item-{i:04d}" for i in range(before[2], dynamodb)]}})
        before = (parameters, secrets, dynamodb)
    return configs


def run_steps(python: str, package_dir: Path, config_file: Path, env: dict[str, str], trace: bool) -> dict[str, Any]:
    command = [python, "-E", "-S", str(PROGRAMS / "memory_steps.py"), str(package_dir), str(config_file)]
    out = subprocess.run(command + (["--tracemalloc"] if trace else []), env=env, capture_output=True, text=True,
                         timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"memory_steps.py failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def memory_breakdown(tree: Path, moto: MotoServer, workdir: Path) -> dict[str, Any] | None:
    """Per step: RSS after it and its delta (MiB), tracemalloc's traced bytes after it and their delta (MiB).
    None for a standalone layer (no python3 runs it) or without a python3 on the extension's PATH."""
    python = launcher_interpreter()
    package_dir = tree / layer.EXTENSION_NAME
    if python is None or layer.is_standalone(tree) or not (package_dir / "__main__.py").exists():
        return None
    config_file = workdir / "memory-steps.json"
    config_file.write_text(json.dumps({"region": REGION, "configs": memory_configs()}))
    env = lambda_environment(endpoint=moto.endpoint, region=REGION, token=TOKEN, extra={"PATH": extension_path()})
    env.pop("PYTHONPATH", None)
    plain = run_steps(python, package_dir, config_file, env, trace=False)
    traced = run_steps(python, package_dir, config_file, env, trace=True)
    rows = []
    previous_rss = previous_traced = 0
    for step, traced_step in zip(plain["steps"], traced["steps"]):
        rss, traced_bytes = step["rss_kib"] / 1024, traced_step["traced_bytes"] / (1024 * 1024)
        rows.append({"step": step["step"], "rss_mib": round(rss, 2), "rss_delta_mib": round(rss - previous_rss, 2),
                     "traced_mib": round(traced_bytes, 2),
                     "traced_delta_mib": round(traced_bytes - previous_traced, 2)})
        previous_rss, previous_traced = rss, traced_bytes
    log(f"  memory steps: {rows[0]['rss_mib']:.1f} MiB at start, {rows[-1]['rss_mib']:.1f} MiB after "
        f"{len(rows)} steps ({plain['modules']} modules)")
    return {"interpreter": python, "steps": rows, "modules": plain["modules"], "values": plain["values"],
            "failed_imports": plain["failed_imports"]}
