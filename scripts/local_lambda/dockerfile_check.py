"""Step 5 of scripts/sam-local-check: the project's Dockerfile built for real (`docker build --network none`) and the
image run with `docker run`, invoked through RIE (the stand-in's entrypoint, as Lambda's images do).

The Dockerfile's build stage starts from Amazon Linux 2023 (`ARG BUILD_IMAGE`), which cannot be pulled here; its
stand-in is the same bookworm root with what that stage installs already there: pyenv's CPython 3.11 (with pip)
and 3.12 under /usr/local, binutils, a `dnf` that checks the packages asked for are present instead of fetching
them (no JDK: the layer is then built without the Java client, which the image does not copy anyway), and a
wheelhouse (PIP_NO_INDEX, PIP_FIND_LINKS) holding PyInstaller and the extension's dependencies, downloaded by
pip on the host once into .venv/tools. The final stage is the Python stand-in, under the tag the Dockerfile pins.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from local_lambda import layer, standin_images
from local_lambda.aws import SAMPLE_SECRET

ROOT = Path(__file__).resolve().parents[2]
BUILD_STANDIN = "sam-local/al2023-build-stand-in"
IMAGE = "cache-extension-example:sam-local"
PYTHONS = {"3.11": Path.home() / ".pyenv" / "versions" / "3.11.7", "3.12": standin_images.PYTHON_HOME}
DNF = """#!/bin/sh
# Stand-in for Amazon Linux's dnf (scripts/sam-local-check): the packages are in this image already; nothing is
# fetched. `install` checks each one asked for is here; a JDK is not, and the layer builds without the Java client.
case "$1" in
  clean) exit 0 ;;
  install) shift ;;
  *) echo "dnf stand-in: only install and clean" >&2; exit 1 ;;
esac
missing=""; absent=""
for package in "$@"; do
  case "$package" in
    -*) ;;
    python3.11|python3.11-pip) python3.11 -m pip --version >/dev/null 2>&1 || missing="$missing $package" ;;
    python3.12) command -v python3.12 >/dev/null || missing="$missing $package" ;;
    binutils) command -v objdump >/dev/null && command -v strip >/dev/null || missing="$missing $package" ;;
    findutils) command -v find >/dev/null || missing="$missing $package" ;;
    java-*) command -v javac >/dev/null || absent="$absent $package" ;;
    *) missing="$missing $package" ;;
  esac
done
[ -z "$absent" ] || echo "dnf stand-in: not in this image:$absent (the layer is built without the Java client)" >&2
[ -z "$missing" ] || { echo "dnf stand-in: cannot provide:$missing" >&2; exit 1; }
"""


def pyinstaller_pins() -> list[str]:
    """The `pip install` pins of the Dockerfile's build stage (pyinstaller==..., pyinstaller-hooks-contrib==...)."""
    return re.findall(r"\b(pyinstaller(?:-hooks-contrib)?==[\w.]+)", (ROOT / "Dockerfile").read_text())


def wheelhouse(log=print) -> Path:
    """The wheels the build stage installs, downloaded once by pip on the host (PyPI, its ordinary client)."""
    pins, deps = pyinstaller_pins(), layer.dependencies()
    tags = [f"--platform={tag}_x86_64" for tag in layer.MANYLINUX_TAGS] + ["--platform=linux_x86_64"]
    key = standin_images._digest(*pins, *deps, *tags)
    target = ROOT / ".venv" / "tools" / f"wheelhouse-{key}"
    if (target / ".ready").is_file():
        return target
    log(f"downloading the build stage's wheels into {target}")
    shutil.rmtree(target, ignore_errors=True)
    for python, requirements in (("3.11", pins + deps), ("3.12", deps)):
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--only-binary=:all:", "--dest", str(target), "--implementation", "cp", "--python-version", python,
                   "--abi", f"cp{python.replace('.', '')}", *tags, *requirements]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise standin_images.StandInUnavailable(f"pip download failed: {result.stderr[-2000:]}")
    (target / ".ready").touch()
    return target


def build_standin(engine, log=print) -> str:
    base = standin_images.base_image(engine, log=log)
    wheels = wheelhouse(log)
    dockerfile = "\n".join([
        f"FROM {base}",
        "COPY py311/ /usr/local/",
        "COPY py312/ /usr/local/",
        "COPY wheelhouse/ /wheelhouse/",
        "COPY dnf /usr/bin/dnf",
        'ENV PIP_NO_INDEX=1 PIP_FIND_LINKS=/wheelhouse PIP_ROOT_USER_ACTION=ignore LANG=C.UTF-8',
        "RUN ldconfig && python3.11 -c 'import ssl, venv, pip' && python3.12 -c 'import ssl' && objdump --version >/dev/null",
        "",
    ])
    recipe = standin_images._digest(base, dockerfile, DNF, wheels.name, *map(str, PYTHONS.values()))
    tag = f"{BUILD_STANDIN}:{recipe}"
    if standin_images.image_recipe(engine, tag) == recipe:
        return tag
    log(f"building the build stage's stand-in {tag}")
    with tempfile.TemporaryDirectory(prefix="sam-local-build-") as scratch:
        context = Path(scratch)
        for version, home in PYTHONS.items():
            if not (home / "bin" / f"python{version}").is_file():
                raise standin_images.StandInUnavailable(f"no CPython {version} at {home} (pyenv's)")
            out = context / f"py{version.replace('.', '')}"
            excluded = tuple(p.replace("3.12", version) for p in standin_images.PYTHON_EXCLUDE)
            shutil.copytree(home, out, symlinks=True, ignore=standin_images._ignore_under(home, excluded))
            site = out / "lib" / f"python{version}" / "site-packages"
            site.mkdir()
            for pip_dir in (home / "lib" / f"python{version}" / "site-packages").glob("pip*"):
                shutil.copytree(pip_dir, site / pip_dir.name, symlinks=True)
        shutil.copytree(wheels, context / "wheelhouse")
        (context / "dnf").write_text(DNF)
        (context / "dnf").chmod(0o755)
        (context / "Dockerfile").write_text(dockerfile + f"LABEL {standin_images.LABEL}={recipe}\n")
        engine.docker_run(["build", "--network", "none", "--quiet", f"--tag={tag}", str(context)], timeout=600)
    return tag


def run(engine, moto, work: Path, report: dict, log=print) -> None:
    build_base = build_standin(engine, log)
    started = time.monotonic()
    result = engine.docker_run(["build", "--network", "none", "--build-arg", f"BUILD_IMAGE={build_base}",
                                f"--tag={IMAGE}", str(ROOT)], timeout=900, check=False)
    report["dockerfile_build_seconds"] = round(time.monotonic() - started, 1)
    if result.returncode != 0:
        raise AssertionError(f"docker build of the Dockerfile failed:\n{(result.stdout + result.stderr)[-5000:]}")
    token = f"sam-local-{uuid.uuid4().hex}"
    name = f"sam-local-{uuid.uuid4().hex[:8]}"
    env = {"AWS_REGION": "us-west-2", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_SESSION_TOKEN": token, "AWS_ENDPOINT_URL": moto.endpoint, "CACHE_EXTENSION_LOG_LEVEL": "debug"}
    args = ["run", "-d", "--name", name, "-p", "127.0.0.1::8080", "--memory", "512m"]
    for key in env:
        args += ["-e", key]
    engine.docker_run(args + [IMAGE], timeout=60, env={**engine.env, **env})
    try:
        port = int(engine.docker_run(["port", name, "8080/tcp"], timeout=30).stdout.strip().rsplit(":", 1)[1])
        status, body = _invoke(port, timeout=60)
        logs = engine.docker_run(["logs", name], timeout=30).stdout
        logs += engine.docker_run(["logs", name], timeout=30).stderr
    finally:
        engine.docker_run(["rm", "-f", name], timeout=60, check=False)
    secret = SAMPLE_SECRET[1]
    if secret in body or secret in logs:
        raise AssertionError("a secret value appeared in the container's output (not shown)")
    lines = [line for line in logs.splitlines() if "[cache-extension]" in line]
    report["dockerfile_invoke"] = {"status": status, "response": body, "extension_log": lines}
    log(f"docker run + invoke through RIE: {status} {body}")
    if status != 200 or json.loads(body).get("parameter") != "MyParameter" or "DynamoDB sample data" not in body:
        raise AssertionError(f"the image's invoke answered {status} {body[:500]}\n{logs[-5000:]}")
    if not any("prefetched 4 items" in line and "(0 failed" in line for line in lines):
        raise AssertionError(f"the extension in the image did not prefetch the sample:\n{logs[-5000:]}")
    if any(line.startswith("ERROR") for line in lines):
        raise AssertionError(f"the extension in the image logged errors:\n{logs[-5000:]}")


def _invoke(port: int, timeout: float) -> tuple[int, str]:
    """POST {} to RIE's invoke endpoint, retrying while the container's port is not answering yet."""
    deadline = time.monotonic() + timeout
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request("POST", "/2015-03-31/functions/function/invocations", body=b"{}")
            response = connection.getresponse()
            return response.status, response.read().decode(errors="replace")
        except (OSError, http.client.HTTPException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
        finally:
            connection.close()
