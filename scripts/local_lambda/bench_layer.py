"""The layer's size per architecture, zipped and unzipped."""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

from . import layer
from .bench_common import MIB, log, shown


def zip_row(zip_path: Path, arch: str, python: str, source: str) -> dict[str, Any]:
    with zipfile.ZipFile(zip_path) as archive:
        unzipped = sum(info.file_size for info in archive.infolist())
    return {"arch": arch, "python": python, "zip_mib": round(zip_path.stat().st_size / MIB, 2),
            "unzipped_mib": round(unzipped / MIB, 2), "source": source}


def layer_sizes(tree: Path, workdir: Path, *, build_missing: bool) -> list[dict[str, Any]]:
    """One row per architecture for this Python: the layer under test zipped (this machine's architecture), a
    zip in dist/ when there is one, else a build into a temporary directory (unless build_missing is false).
    Zips in dist/ for other Python versions are listed too."""
    python = layer.this_python()
    dist = layer.ROOT / "dist"
    jar = tree / "java" / "lib" / layer.JAVA_CLIENT_JAR
    rows = []
    for arch in layer.TARGET_ARCHES:
        in_dist = dist / layer.zip_name(arch, python)
        if arch == layer.machine_arch() and not layer.is_standalone(tree):
            zip_path = workdir / layer.zip_name(arch, python)
            layer.write_zip(tree, zip_path)
            rows.append(zip_row(zip_path, arch, python, f"the layer under test ({shown(tree)}), zipped"))
        elif in_dist.exists():
            rows.append(zip_row(in_dist, arch, python, f"dist/{in_dist.name}"))
        elif build_missing:
            log(f"  building the {arch} layer for Python {python} to measure it")
            out = workdir / f"layer-{arch}"
            try:
                zip_path = layer.build(arch, python, out, log=lambda *_: None,
                                       zip_path=workdir / layer.zip_name(arch, python),
                                       java_jar=jar if jar.exists() else None)
            except (subprocess.CalledProcessError, layer.BuildError) as error:
                log(f"  could not build the {arch} layer: {error}")
                rows.append({"arch": arch, "python": python, "zip_mib": None, "unzipped_mib": None,
                             "source": f"build failed: {error}"})
            else:
                rows.append(zip_row(zip_path, arch, python, "built by scripts/bench with layer.build"))
        else:
            rows.append({"arch": arch, "python": python, "zip_mib": None, "unzipped_mib": None,
                         "source": "not built (--quick) and not in dist/"})
    for other in sorted(dist.glob("cache-extension-layer-*-python*.zip")):
        found = re.fullmatch(r"cache-extension-layer-(x86_64|arm64)-python(\d+\.\d+)\.zip", other.name)
        if found and found.group(2) != python:
            rows.append(zip_row(other, found.group(1), found.group(2), f"dist/{other.name}"))
    return rows
