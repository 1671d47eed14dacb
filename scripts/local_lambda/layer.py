"""Builds the Lambda layer: a tree laid out exactly as /opt will be, and its zip.

    extensions/cache-extension    the launcher; Lambda starts it, its file name is the extension name
    cache-extension/__main__.py   what the launcher runs with python3
    cache-extension/cache_extension/ and vendored dependencies, kept out of /opt/python so they never
                                  shadow the function's own packages
"""

from __future__ import annotations

import os
import platform
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
EXTENSION_NAME = "cache-extension"
JAVA_CLIENT_JAR = "cache-extension-client.jar"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so the same inputs give the same zip


def machine_arch() -> str:
    return "arm64" if ARCHES.get(platform.machine().lower()) == "aarch64" else "x86_64"


def dependencies() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def build(arch: str, python: str, out: Path, *, log=print) -> Path:
    """Build the tree into `out` and zip it beside; returns the zip's path."""
    if arch not in ("x86_64", "arm64"):
        raise ValueError(f"unknown architecture {arch!r}: use x86_64 or arm64")
    native = arch == machine_arch() and python == f"{sys.version_info.major}.{sys.version_info.minor}"
    if out.exists():
        shutil.rmtree(out)
    package_dir = out / EXTENSION_NAME
    (out / "extensions").mkdir(parents=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--only-binary=:all:", "--target", str(package_dir)]
    if not native:  # the target's wheels, not this machine's
        target = ARCHES[arch]
        pip += ["--implementation", "cp", "--python-version", python, "--abi", f"cp{python.replace('.', '')}"]
        for tag in ("manylinux_2_28", "manylinux2014"):
            pip += ["--platform", f"{tag}_{target}"]
    log(f"vendoring dependencies for {arch}, Python {python}")
    subprocess.run(pip + dependencies(), check=True)
    shutil.rmtree(package_dir / "bin", ignore_errors=True)  # console scripts: nothing runs them
    shutil.copytree(ROOT / "extension" / "cache_extension", package_dir / "cache_extension",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "extension" / "__main__.py", package_dir / "__main__.py")
    for extra in sorted((ROOT / "layer").iterdir()):  # client libraries, at each runtime's own path
        if extra.name == "java":
            build_java_client(out / "java" / "lib" / JAVA_CLIENT_JAR, log=log)
        elif extra.is_dir():
            shutil.copytree(extra, out / extra.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    launcher = out / "extensions" / EXTENSION_NAME
    # LF line endings whatever the checkout did: the kernel reads the shebang line byte for byte.
    launcher.write_bytes((ROOT / "extension" / EXTENSION_NAME).read_bytes().replace(b"\r\n", b"\n"))
    launcher.chmod(0o755)
    compile_bytecode(package_dir, python, log=log)
    if (out / "python").exists():
        compile_bytecode(out / "python", python, log=log)
    zip_path = out.parent / f"cache-extension-layer-{arch}.zip"
    write_zip(out, zip_path)
    log(f"built {zip_path} ({zip_path.stat().st_size / 1048576:.1f} MiB)")
    return zip_path


def build_java_client(jar: Path, *, log=print) -> None:
    """Compile the Java client into the jar Java runtimes find on their classpath (/opt/java/lib)."""
    if shutil.which("javac") is None or shutil.which("jar") is None:
        log("no JDK (javac, jar) here: the layer is built without the Java client")
        return
    jar.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["bash", str(ROOT / "layer" / "java" / "build.sh"), str(jar)], check=True, stdout=subprocess.DEVNULL)


def compile_bytecode(tree: Path, python: str, *, log=print) -> None:
    """Ship .pyc files made by the target Python: /opt is read-only, so Lambda cannot cache them itself.

    unchecked-hash: zip keeps mtimes at 2-second precision, which would make timestamp-checked .pyc
    files look stale and be recompiled at every cold start.
    """
    interpreter = find_python(python)
    if interpreter is None:
        log(f"no Python {python} here to compile bytecode with; the layer ships sources only")
        return
    subprocess.run([interpreter, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                    str(tree)], check=True, stdout=subprocess.DEVNULL)


def find_python(version: str) -> str | None:
    """An interpreter of that version: this one, pyenv's, or one on PATH (pyenv shims answer but may not run)."""
    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    candidates.append(shutil.which(f"python{version}"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


def write_zip(tree: Path, zip_path: Path) -> None:
    zip_path.unlink(missing_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(tree.rglob("*")):
            if path.is_dir():
                continue
            info = zipfile.ZipInfo(path.relative_to(tree).as_posix(), ZIP_TIME)
            mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16  # keeps the launcher executable
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
