"""Start-up: process start -> register and -> INIT done, the CPU time of each phase, RSS after prefetch and the
AWS calls of the prefetch, for 3, 50 and 500 configured items; the bare interpreter's start next to it; and where
INIT's time goes by import (one extra launch under `python3 -X importtime`)."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .aws import MotoServer
from .bench_common import (REGION, SIZES, get, launcher_interpreter, launcher_variant, log, rss_mib, start_extension)

BULK_TABLE = "BenchTable"


def split(items: int) -> tuple[int, int, int]:
    """(parameters, secrets, dynamodb items) for a config of `items`: about 2/3, 1/6, 1/6, at least one of each."""
    secrets = dynamodb = max(1, round(items / 6))
    return items - secrets - dynamodb, secrets, dynamodb


def parameter_name(i: int) -> str:
    return f"/bench/app/parameter-{i:04d}"


def secret_name(i: int) -> str:
    return f"bench/secret-{i:04d}"


def create_bulk_resources(moto: MotoServer, items: int) -> None:
    """Parameters, secrets and DynamoDB items for the largest config; smaller configs list the first of each."""
    parameters, secrets, dynamodb_items = split(items)
    ssm = moto.client("ssm", REGION)
    for i in range(parameters):
        ssm.put_parameter(Name=parameter_name(i), Value=f"value-{i:04d}-" + "x" * 48, Type="String", Overwrite=True)
    secretsmanager = moto.client("secretsmanager", REGION)
    for i in range(secrets):
        value = json.dumps({"username": f"user{i}", "password": f"bench-password-{i:04d}"})
        try:
            secretsmanager.create_secret(Name=secret_name(i), SecretString=value)
        except secretsmanager.exceptions.ResourceExistsException:
            secretsmanager.put_secret_value(SecretId=secret_name(i), SecretString=value)
    dynamodb = moto.client("dynamodb", REGION)
    try:
        dynamodb.create_table(TableName=BULK_TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                              BillingMode="PAY_PER_REQUEST")
    except dynamodb.exceptions.ResourceInUseException:
        pass
    rows = [{"PutRequest": {"Item": {"pk": {"S": f"item-{i:04d}"}, "Data": {"S": f"data {i}"}, "Count": {"N": str(i)},
                                     "Enabled": {"BOOL": i % 2 == 0}}}} for i in range(dynamodb_items)]
    for start in range(0, len(rows), 25):
        dynamodb.batch_write_item(RequestItems={BULK_TABLE: rows[start:start + 25]})


def bulk_config(items: int) -> str:
    parameters, secrets, dynamodb_items = split(items)
    lines = ["parameters:", "  - names:"]
    lines += [f"      - {parameter_name(i)}" for i in range(parameters)]
    lines += ["secrets:", "  - names:"]
    lines += [f"      - {secret_name(i)}" for i in range(secrets)]
    lines += ["dynamodb:"]
    for i in range(dynamodb_items):
        lines += [f"  - table: {BULK_TABLE}", "    hashkey: pk", "    hashkeytype: S",
                  f"    hashkeyvalue: item-{i:04d}"]
    return "\n".join(lines) + "\n"


def phase_cpu(emulator: Any) -> dict[str, float | None]:
    """CPU time (ms) of the extension's process in each phase: start -> register, register -> INIT done; from
    /proc/<pid>/stat (utime + stime, clock ticks) and from schedstat (ns, live threads)."""
    at_register, at_init = emulator.cpu_at_register or {}, emulator.cpu_at_init_done or {}
    out: dict[str, float | None] = {}
    for source in ("stat", "schedstat"):
        register, init = at_register.get(f"{source}_s"), at_init.get(f"{source}_s")
        out[f"cpu_{source}_to_register_ms"] = None if register is None else round(register * 1000, 2)
        out[f"cpu_{source}_register_to_init_ms"] = (None if register is None or init is None
                                                    else round((init - register) * 1000, 2))
    return out


def median_or_none(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def startup(tree: Path, moto: MotoServer, workdir: Path, runs: int) -> list[dict[str, Any]]:
    rows = []
    for items in SIZES:
        parameters, secrets, dynamodb_items = split(items)
        config = bulk_config(items)
        register, init_done, rss, calls, cpu = [], [], [], [], []
        for run in range(runs):
            moto.reset_calls()
            emulator, extension, port = start_extension(tree, moto, workdir / f"startup-{items}-{run}", config)
            try:
                rss.append(rss_mib(extension.process.pid))
                register.append((extension.registered_at - extension.launched_at) * 1000)
                init_done.append((extension.init_done_at - extension.launched_at) * 1000)
                cpu.append(phase_cpu(emulator))
                calls.append(moto.call_counts())
                if run == 0:  # the prefetch really got everything: the last item of each source is a hit
                    for path in (f"/parameters?name={parameter_name(parameters - 1)}",
                                 f"/secrets?name={secret_name(secrets - 1)}",
                                 f"/dynamodb?name={BULK_TABLE}-item-{dynamodb_items - 1:04d}"):
                        status, headers = get(port, path)
                        if status != 200 or headers.get("x-cache") != "hit":
                            raise RuntimeError(f"{items} items: {path} answered {status} {headers.get('x-cache')}, "
                                               f"not a cache hit\n{extension.output[-3000:]}")
            finally:
                emulator.close()
        by_operation = calls[0]
        rows.append({
            "items": items, "parameters": parameters, "secrets": secrets, "dynamodb": dynamodb_items, "runs": runs,
            "start_to_register_ms": round(statistics.median(register), 2),
            "start_to_init_done_ms": round(statistics.median(init_done), 2),
            "register_to_init_done_ms": round(statistics.median([i - r for r, i in zip(register, init_done)]), 2),
            "rss_after_prefetch_mib": round(statistics.median(rss), 2),
            "aws_calls": sum(by_operation.values()), "aws_calls_by_operation": dict(sorted(by_operation.items())),
            **{key: median_or_none([c[key] for c in cpu]) for key in cpu[0]},
            "runs_start_to_register_ms": [round(v, 2) for v in register],
            "runs_start_to_init_done_ms": [round(v, 2) for v in init_done],
            "runs_rss_after_prefetch_mib": [round(v, 2) for v in rss],
            "runs_aws_calls": [sum(c.values()) for c in calls],
        })
        row = rows[-1]
        log(f"  {items} items: start -> register {row['start_to_register_ms']:.1f} ms, start -> INIT done "
            f"{row['start_to_init_done_ms']:.1f} ms, RSS {row['rss_after_prefetch_mib']:.1f} MiB, "
            f"{row['aws_calls']} AWS calls (median of {runs})")
    return rows


def bare_interpreter(runs: int) -> dict[str, Any] | None:
    """`python3 -S -E -c pass` with the python3 the layer's launcher runs, `runs` times: spawn to exit, median."""
    python = launcher_interpreter()
    if python is None:
        return None
    samples = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([python, "-S", "-E", "-c", "pass"], check=True, timeout=30)
        samples.append((time.monotonic() - started) * 1000)
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    row = {"interpreter": python, "version": version, "runs": runs, "median_ms": round(statistics.median(samples), 2),
           "min_ms": round(min(samples), 2), "max_ms": round(max(samples), 2),
           "runs_ms": [round(v, 2) for v in samples]}
    log(f"  bare start of {python} ({version}): {row['median_ms']:.1f} ms (median of {runs})")
    return row


# -- python -X importtime -------------------------------------------------------------------------------------

IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)\s*$")
# The packages the table always names (0 when not imported); every other third-party package has its own row too.
NAMED_PACKAGES = ("botocore", "boto3", "yaml", "uvloop", "httptools", "cache_extension")


def group_of(module: str) -> str:
    top = module.split(".", 1)[0]
    if top in sys.stdlib_module_names or top in sys.builtin_module_names or top.startswith("_frozen_importlib"):
        return "stdlib"
    return top


def parse_importtime(output: str) -> dict[str, Any]:
    """Per group (top-level package, the standard library as one): `self_us`, the time its own modules took (the
    groups add up to the total), and `cumulative_us`, from entering the group until it returned, counted at each
    outermost entry (with what it imported of other groups on the way), and the module count."""
    groups: dict[str, dict[str, int]] = {}
    stack: list[tuple[int, str]] = []  # (depth, group) of the imports enclosing the current line
    # importtime prints a module when its import ends, nested imports first, deeper indented: walk it in reverse
    # to see parents before children.
    entries = []
    for line in output.splitlines():
        found = IMPORT_LINE.match(line)
        if found:
            entries.append((int(found.group(1)), int(found.group(2)), (len(found.group(3)) - 1) // 2, found.group(4)))
    total = 0
    for self_us, cumulative_us, depth, module in reversed(entries):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        group = group_of(module)
        row = groups.setdefault(group, {"self_us": 0, "cumulative_us": 0, "modules": 0})
        row["self_us"] += self_us
        row["modules"] += 1
        if all(enclosing != group for _, enclosing in stack):
            row["cumulative_us"] += cumulative_us
        if depth == 0:
            total += cumulative_us
        stack.append((depth, group))
    for name in NAMED_PACKAGES:
        groups.setdefault(name, {"self_us": 0, "cumulative_us": 0, "modules": 0})
    ordered = dict(sorted(groups.items(), key=lambda item: -item[1]["self_us"]))
    return {"total_us": total, "modules": len(entries), "groups": ordered}


def import_breakdown(tree: Path, moto: MotoServer, workdir: Path) -> dict[str, Any] | None:
    """One launch with 3 items under `python3 -X importtime` (a launcher variant: the layer's launcher passes
    -E, which makes Python ignore PYTHONPROFILEIMPORTTIME); its output captured by the emulator."""
    launcher = launcher_variant(tree, workdir, "importtime-layer", "-X importtime")
    if launcher is None:
        return None
    emulator, extension, _ = start_extension(tree, moto, workdir / "importtime", bulk_config(SIZES[0]),
                                             launcher=launcher)
    try:
        times = {"start_to_register_ms": round((extension.registered_at - extension.launched_at) * 1000, 2),
                 "start_to_init_done_ms": round((extension.init_done_at - extension.launched_at) * 1000, 2)}
    finally:
        emulator.close()
    parsed = parse_importtime(extension.output)
    log(f"  -X importtime: {parsed['modules']} modules, {parsed['total_us'] / 1000:.0f} ms of imports")
    return {**parsed, **times, "items": SIZES[0]}
