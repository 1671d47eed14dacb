"""Stand-ins for the images `sam local invoke` and the Dockerfile start from, built here: Lambda's and Amazon
Linux's own cannot be pulled on this machine, Debian's mirrors and PyPI can.

    base       a `debootstrap --variant=minbase bookworm` root (with the C libraries CPython's modules link
               to, and binutils), kept in .venv/tools/roots and imported with `docker import`
    python     public.ecr.aws/lambda/python:3.12-x86_64 (what SAM asks for) and the Dockerfile's final stage's
               tag: pyenv's CPython 3.12 relocated to /var/lang (LD_LIBRARY_PATH finds libpython), awslambdaric
               from PyPI in /var/runtime, /var/runtime/bootstrap running it on $_HANDLER, AWS's RIE (`go install`,
               local_lambda.rie) at /usr/local/bin/aws-lambda-rie behind /lambda-entrypoint.sh, as in Lambda's
               images, and Lambda's environment (PATH, LD_LIBRARY_PATH, LAMBDA_TASK_ROOT, ...)

Each image carries a label with the hash of its recipe: a cached image is reused only when the recipe is the
same, else rebuilt. `docker build` runs with `--network none`: nothing is fetched from inside a container.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from local_lambda import rie

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".venv" / "tools"
ROOTS = TOOLS / "roots"
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
# What CPython's extension modules link to, beyond minbase, and binutils (objdump, strip) for PyInstaller.
DEBIAN_INCLUDE = ("libssl3", "libffi8", "libsqlite3-0", "libuuid1", "libncursesw6", "libreadline8", "libexpat1",
                  "libgdbm6", "libnsl2", "binutils")
PYTHON_HOME = Path(os.environ.get("SAM_LOCAL_PYTHON_HOME", Path.home() / ".pyenv" / "versions" / "3.12.1"))
PYTHON_IMAGE = "public.ecr.aws/lambda/python:3.12-x86_64"
BASE_IMAGE = "sam-local/debian-bookworm-minbase"
LABEL = "sam-local.recipe"
# Left out of /var/lang: the test suite, IDLE, Tk (its libraries are not in the root), the static library.
PYTHON_EXCLUDE = ("lib/python3.12/test", "lib/python3.12/idlelib", "lib/python3.12/tkinter", "lib/python3.12/turtledemo",
                  "lib/python3.12/config-3.12-x86_64-linux-gnu/libpython3.12.a", "lib/python3.12/site-packages")

LAMBDA_ENV = {
    "LANG": "en_US.UTF-8", "TZ": ":/etc/localtime",
    "PATH": "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin",
    "LD_LIBRARY_PATH": "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib",
    "LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime",
}
# As in Lambda's images: the handler is the command; without AWS_LAMBDA_RUNTIME_API (docker run), RIE runs the
# bootstrap; under Lambda (or SAM, which runs its own RIE as the entrypoint) the bootstrap runs directly.
ENTRYPOINT = """#!/bin/sh
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" 1>&2
  exit 142
fi
export _HANDLER="$1"
if [ -z "${AWS_LAMBDA_RUNTIME_API}" ]; then
  exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap
else
  exec /var/runtime/bootstrap
fi
"""
BOOTSTRAP = """#!/bin/sh
export PYTHONPATH="/var/task:/opt/python:/var/runtime${PYTHONPATH:+:$PYTHONPATH}"
exec /var/lang/bin/python3.12 -m awslambdaric "$_HANDLER"
"""


class StandInUnavailable(RuntimeError):
    """A stand-in image cannot be built here; the message says why."""


def awslambdaric_version() -> str:
    return importlib.metadata.version("awslambdaric")  # the version the test extras pin


def root_dir() -> Path:
    return ROOTS / f"debian-{SUITE}-minbase-amd64"


def root_recipe() -> str:
    return f"debootstrap --variant=minbase --include={','.join(DEBIAN_INCLUDE)} {SUITE} {MIRROR}"


def prepare_root(*, log=print, timeout: float = 900) -> Path:
    """The bookworm root, built once (about a minute) and kept while its recipe is the same."""
    target = root_dir()
    stamp = target / ".ready"
    if stamp.is_file() and stamp.read_text().strip() == root_recipe():
        return target
    if shutil.which("debootstrap") is None:
        raise StandInUnavailable("debootstrap is not installed")
    log(f"building the stand-ins' root with {root_recipe()} into {target}")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(DEBIAN_INCLUDE)}", SUITE, str(partial), MIRROR]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except subprocess.TimeoutExpired as exc:
        raise StandInUnavailable(f"debootstrap took more than {timeout} s") from exc
    if result.returncode != 0:
        raise StandInUnavailable(f"debootstrap failed ({result.returncode}): {(result.stdout + result.stderr)[-2000:]}")
    shutil.rmtree(partial / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    (partial / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True)
    partial.rename(target)
    stamp.write_text(root_recipe() + "\n")
    return target


def image_recipe(engine, image: str) -> str | None:
    result = engine.docker_run(["image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', image],
                               timeout=30, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def base_image(engine, *, log=print) -> str:
    """The root as an image (`docker import`), tagged with its recipe's hash."""
    root = prepare_root(log=log)
    recipe = _digest(root_recipe())
    tag = f"{BASE_IMAGE}:{recipe}"
    if image_recipe(engine, tag) == recipe:
        return tag
    log(f"importing {root} as {tag}")
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "--exclude=./.ready", "-cf", "-", "."],
                           stdout=subprocess.PIPE)
    try:
        result = subprocess.run([engine.docker, "import", "--change", f"LABEL {LABEL}={recipe}", "-", tag],
                                stdin=tar.stdout, env=engine.env, capture_output=True, text=True, timeout=300)
    finally:
        tar.stdout.close()
        tar.wait(timeout=60)
    if result.returncode != 0 or tar.returncode != 0:
        raise StandInUnavailable(f"docker import failed ({result.returncode}, tar {tar.returncode}): {result.stderr[-2000:]}")
    return tag


def python_dockerfile(base: str, recipe: str) -> str:
    env = " ".join(f'{key}="{value}"' for key, value in LAMBDA_ENV.items())
    return "\n".join([
        f"FROM {base}",
        "COPY lang/ /var/lang/",
        "COPY runtime/ /var/runtime/",
        "COPY bootstrap /var/runtime/bootstrap",
        "COPY aws-lambda-rie /usr/local/bin/aws-lambda-rie",
        "COPY lambda-entrypoint.sh /lambda-entrypoint.sh",
        f"ENV {env}",
        "RUN mkdir -p /var/task /opt && ln -sf python3.12 /var/lang/bin/python3 \\",
        "    && PYTHONPATH=/var/runtime /var/lang/bin/python3.12 -c 'import ssl, ctypes, sqlite3, awslambdaric'",
        "WORKDIR /var/task",
        f"LABEL {LABEL}={recipe}",
        'ENTRYPOINT ["/lambda-entrypoint.sh"]',
        "",
    ])


def python_image(engine, tags: list[str], *, log=print) -> str:
    """Lambda's Python 3.12 image, stood in for: built unless the cached one has the same recipe; tagged `tags`
    (the first is SAM's name). Returns the recipe hash."""
    base = base_image(engine, log=log)
    version = awslambdaric_version()
    binary = rie.install(log=log)
    python = PYTHON_HOME / "bin" / "python3.12"
    if not python.is_file():
        raise StandInUnavailable(f"no CPython 3.12 at {PYTHON_HOME} (pyenv's; SAM_LOCAL_PYTHON_HOME picks another)")
    recipe = _digest(base, python_dockerfile(base, ""), ENTRYPOINT, BOOTSTRAP, version, rie.RIE_VERSION, str(PYTHON_HOME),
                     *PYTHON_EXCLUDE)
    if all(image_recipe(engine, tag) == recipe for tag in tags):
        return recipe
    log(f"building the stand-in {tags[0]} (CPython from {PYTHON_HOME}, awslambdaric {version}, RIE {rie.RIE_VERSION})")
    with tempfile.TemporaryDirectory(prefix="sam-local-python-") as scratch:
        context = Path(scratch)
        shutil.copytree(PYTHON_HOME, context / "lang", symlinks=True,
                        ignore=_ignore_under(PYTHON_HOME, PYTHON_EXCLUDE))
        (context / "lang" / "lib" / "python3.12" / "site-packages").mkdir()
        pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                              "--no-compile", "--only-binary=:all:", "--target", str(context / "runtime"),
                              f"awslambdaric=={version}"],
                             capture_output=True, text=True, timeout=300, env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
        if pip.returncode != 0:
            raise StandInUnavailable(f"pip could not fetch awslambdaric {version}: {pip.stderr[-1500:]}")
        for name, text in (("bootstrap", BOOTSTRAP), ("lambda-entrypoint.sh", ENTRYPOINT)):
            (context / name).write_text(text)
            (context / name).chmod(0o755)
        shutil.copy2(binary, context / "aws-lambda-rie")
        (context / "Dockerfile").write_text(python_dockerfile(base, recipe))
        args = ["build", "--network", "none", "--quiet"] + [f"--tag={tag}" for tag in tags] + [str(context)]
        engine.docker_run(args, timeout=600)
    return recipe


def _ignore_under(top: Path, excluded: tuple[str, ...]):
    skip = {str(top / path) for path in excluded}

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {name for name in names if os.path.join(directory, name) in skip}
    return ignore
