"""Builds the Lambda layer: a tree laid out exactly as /opt will be, and its zip.

Two variants share the layout of the client libraries (python/, nodejs/, java/lib/):

The Python layer, for Python runtimes (`build`):

    extensions/cache-extension    the launcher; Lambda starts it, its file name is the extension name.
                                  It runs the extension with python3 from PATH.
    cache-extension/__main__.py   what the launcher runs with python3
    cache-extension/cache_extension/ and vendored dependencies, kept out of /opt/python so they never
                                  shadow the function's own packages

The standalone layer, for every runtime (`build_standalone`): the extension frozen by PyInstaller with its
own interpreter, C library and loader, so it needs no python3 and no particular glibc: see layer_standalone.py.

Every tree records what it was built for in cache-extension/built-for.json (MANIFEST), shipped with it: run-local
refuses a tree built for another architecture or Python (`unfit_here`) instead of failing on a foreign C extension.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from . import botocore_data, vendor_patches

ROOT = Path(__file__).resolve().parents[2]
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
TARGET_ARCHES = ("x86_64", "arm64")
# The Python versions of Lambda's Amazon Linux 2023 Python runtimes that `--all` builds for.
TARGET_PYTHONS = ("3.12", "3.13")
EXTENSION_NAME = "cache-extension"
JAVA_CLIENT_JAR = "cache-extension-client.jar"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so the same inputs give the same zip
# manylinux tags the target's wheels may carry; Amazon Linux 2023 has glibc 2.34.
MANYLINUX_TAGS = ("manylinux_2_28", "manylinux2014")
# What a tree was built for: {"layer": "python" | "standalone", "arch": ..., "python": "X.Y", "extension": version}.
MANIFEST = f"{EXTENSION_NAME}/built-for.json"


class BuildError(ValueError):
    """A build that cannot be done as asked (wrong architecture, missing tool); the message says why."""


def machine_arch() -> str:
    return "arm64" if ARCHES.get(platform.machine().lower()) == "aarch64" else "x86_64"


def this_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def dependencies() -> list[str]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["dependencies"]


def zip_name(arch: str, python: str | None = None, *, standalone: bool = False) -> str:
    """cache-extension-layer-<arch>[-python<X.Y>|-standalone].zip"""
    if standalone:
        return f"cache-extension-layer-{arch}-standalone.zip"
    return f"cache-extension-layer-{arch}" + (f"-python{python}" if python else "") + ".zip"


def variant_tree(dist: Path, arch: str, python: str) -> Path:
    """Where a Python layer build goes by default: dist/layer for this machine's architecture and Python (what
    run-local launches), dist/layers/<arch>-python<X.Y>/ for any other target, so variants sit side by side."""
    if (arch, python) == (machine_arch(), this_python()):
        return dist / "layer"
    return dist / "layers" / f"{arch}-python{python}"


def write_manifest(tree: Path, *, arch: str, python: str, standalone: bool = False) -> None:
    """Record in the tree what it was built for (no time stamp: the same inputs still give the same zip)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    built_for = {"layer": "standalone" if standalone else "python", "arch": arch, "python": python,
                 "extension": version}
    (tree / MANIFEST).write_text(json.dumps(built_for, indent=2) + "\n")


def read_manifest(tree: Path) -> dict | None:
    """What the tree was built for, or None if it records nothing (built before manifests, or unfinished)."""
    try:
        built_for = json.loads((tree / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return built_for if isinstance(built_for, dict) else None


def unfit_here(tree: Path) -> str | None:
    """Why the layer tree cannot run on this machine under this interpreter, or None if it can.

    The Python layer carries C extensions (PyYAML, uvloop, httptools) and bytecode for one architecture and
    Python version; the standalone layer carries its own interpreter, so only its architecture matters."""
    shown = _shown(tree)
    built_for = read_manifest(tree)
    if built_for is None:
        return (f"{shown} does not say what it was built for (no {MANIFEST}): an older scripts/build-layer "
                "or an unfinished build made it")
    here_arch, here_python = machine_arch(), this_python()
    if built_for.get("layer") == "standalone":
        if built_for.get("arch") == here_arch:
            return None
        return f"{shown} was built for {built_for.get('arch')} (standalone); this machine runs {here_arch}"
    if (built_for.get("arch"), built_for.get("python")) == (here_arch, here_python):
        return None
    return (f"{shown} was built for {built_for.get('arch')} / Python {built_for.get('python')}; "
            f"this machine runs {here_arch} / Python {here_python}")


def _shown(tree: Path) -> str:
    """The tree's path as a user would type it: relative to the project when it lies inside."""
    tree = tree.resolve()
    return str(tree.relative_to(ROOT)) if tree.is_relative_to(ROOT) else str(tree)


def is_standalone(tree: Path) -> bool:
    """A standalone layer tree (frozen extension) rather than a Python one."""
    return (tree / EXTENSION_NAME / "_internal").is_dir()


def build(arch: str, python: str, out: Path, *, log=print, zip_path: Path | None = None,
          java_jar: Path | None = None) -> Path:
    """Build the Python layer tree into `out` and zip it; returns the zip's path.

    The zip goes to `zip_path`, by default beside the tree as cache-extension-layer-<arch>.zip.
    `java_jar`: a client jar built earlier, copied instead of compiling the Java client again.
    """
    if arch not in TARGET_ARCHES:
        raise BuildError(f"unknown architecture {arch!r}: use x86_64 or arm64")
    native = arch == machine_arch() and python == this_python()
    _fresh(out)
    package_dir = out / EXTENSION_NAME
    log(f"vendoring dependencies for {arch}, Python {python}")
    vendor(package_dir, arch, python, native=native)
    # The extension talks to AWS through botocore alone: boto3's resource layer and s3transfer are
    # never imported, and botocore's data needs only the services it calls (about 15 MiB less zipped).
    for unused in ("boto3", "s3transfer"):
        shutil.rmtree(package_dir / unused, ignore_errors=True)
        for dist_info in package_dir.glob(f"{unused}-*.dist-info"):  # its metadata goes with it
            shutil.rmtree(dist_info)
    trim_botocore(package_dir / "botocore" / "data")
    vendor_patches.apply(package_dir, log=log)
    shutil.copytree(ROOT / "extension" / "cache_extension", package_dir / "cache_extension",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "extension" / "__main__.py", package_dir / "__main__.py")
    add_clients(out, log=log, java_jar=java_jar)
    # LF line endings whatever the checkout did: the kernel reads the shebang line byte for byte.
    write_launcher(out, (ROOT / "extension" / EXTENSION_NAME).read_bytes())
    compile_bytecode(package_dir, python, log=log)
    if (out / "python").exists():
        compile_bytecode(out / "python", python, log=log)
    write_manifest(out, arch=arch, python=python)  # last: a tree without it never finished
    zip_path = zip_path or out.parent / zip_name(arch)
    write_zip(out, zip_path)
    log(f"built {zip_path} ({_mib(zip_path.stat().st_size)} MiB zipped, {_mib(tree_size(out))} MiB unzipped)")
    return zip_path


def build_all(dist: Path, *, log=print) -> list[dict]:
    """The Python layer for every architecture and Python version of TARGET_ARCHES x TARGET_PYTHONS:
    trees in dist/layers/<arch>-python<X.Y>/, zips in dist/. Returns one row per build and logs a size table."""
    rows: list[dict] = []
    java_jar: Path | None = None
    for arch in TARGET_ARCHES:
        for python in TARGET_PYTHONS:
            tree = dist / "layers" / f"{arch}-python{python}"  # even the native one: the set stays whole
            zip_path = build(arch, python, tree, log=log, zip_path=dist / zip_name(arch, python), java_jar=java_jar)
            built_jar = tree / "java" / "lib" / JAVA_CLIENT_JAR
            java_jar = built_jar if built_jar.exists() else java_jar
            rows.append({"arch": arch, "python": python, "zip": zip_path, "zip_bytes": zip_path.stat().st_size,
                         "tree_bytes": tree_size(tree)})
    log(size_table(rows))
    return rows


def size_table(rows: list[dict]) -> str:
    lines = [f"{'layer':<28} {'zipped MiB':>10} {'unzipped MiB':>12}  zip"]
    for row in rows:
        label = f"{row['arch']} {row.get('python') or ''}".strip()
        lines.append(f"{label:<28} {_mib(row['zip_bytes']):>10} {_mib(row['tree_bytes']):>12}  {row['zip']}")
    return "\n".join(lines)


def build_standalone(out: Path, **kwargs) -> Path:
    """The standalone layer (layer_standalone.build_standalone): the extension frozen with its own interpreter."""
    from . import layer_standalone  # imports this module: loaded on demand

    return layer_standalone.build_standalone(out, **kwargs)


def trim_botocore(data: Path) -> None:
    """botocore's data (~28 MB of service models) cut down to the operations the extension calls."""
    try:
        botocore_data.trim(data)
    except botocore_data.DataError as exc:
        raise BuildError(f"{exc}: update OPERATIONS in {botocore_data.__file__}") from None


def _top_level_names(tree: Path) -> set[str]:
    names = set()
    for path in tree.iterdir():
        if path.is_dir() and not path.name.endswith((".dist-info", ".egg-info", ".data")):
            names.add(path.name)
        elif path.suffix in (".py", ".so", ".pyd"):
            names.add(path.name.split(".", 1)[0])
    return names


def _site_packages_names() -> set[str]:
    """Top-level modules installed in this interpreter's site-packages (not the standard library)."""
    import pkgutil
    import site

    paths = [*site.getsitepackages(), site.getusersitepackages()]
    return {module.name for module in pkgutil.iter_modules([p for p in paths if os.path.isdir(p)])}


def vendor(target: Path, arch: str, python: str, *, native: bool) -> None:
    """pip install the extension's dependencies into `target`: the target's manylinux wheels unless native.

    --no-warn-conflicts: after a --target install pip checks the new packages against those installed in the
    interpreter running it (pip's check_install_conflicts reads that environment, not the target), so a system
    or pyenv Python with, say, awscli pinning another botocore printed a resolver ERROR about packages the layer
    never sees. The resolver still fails the build if the layer's own requirements cannot be met together.
    PIP_ROOT_USER_ACTION: the warning about pip run as root concerns installs into that Python, not --target."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--no-warn-conflicts", "--only-binary=:all:", "--target", str(target)]
    if not native:  # the target's wheels, not this machine's
        pip += ["--implementation", "cp", "--python-version", python, "--abi", f"cp{python.replace('.', '')}"]
        for tag in MANYLINUX_TAGS:
            pip += ["--platform", f"{tag}_{ARCHES[arch]}"]
    subprocess.run(pip + dependencies(), check=True, env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"})
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts: nothing runs them
    strip_shared_objects(target, native=native)


def strip_shared_objects(tree: Path, *, native: bool) -> None:
    """Drop debug symbols from compiled extensions (uvloop's alone goes from 13.6 to 1.6 MB).
    llvm-strip reads every architecture; GNU strip only this machine's, so it serves native builds."""
    tool = shutil.which("llvm-strip") or (shutil.which("strip") if native else None)
    if tool is None:
        return
    for library in sorted(tree.rglob("*.so")):
        subprocess.run([tool, "--strip-unneeded", str(library)], check=True)


def add_clients(out: Path, *, log=print, java_jar: Path | None = None) -> None:
    """The client libraries, at each runtime's own path: python/, nodejs/, java/lib/. Not go/: a Go module is
    compiled into the function, nothing of it is read from /opt."""
    for extra in sorted((ROOT / "layer").iterdir()):
        if extra.name == "go":
            continue
        if extra.name == "java":
            jar = out / "java" / "lib" / JAVA_CLIENT_JAR
            if java_jar is not None and java_jar.exists():
                jar.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(java_jar, jar)
            else:
                build_java_client(jar, log=log)
        elif extra.is_dir():
            shutil.copytree(extra, out / extra.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def write_launcher(out: Path, text: bytes) -> Path:
    launcher = out / "extensions" / EXTENSION_NAME
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_bytes(text.replace(b"\r\n", b"\n"))
    launcher.chmod(0o755)
    return launcher


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
    if version == this_python():
        return sys.executable
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    candidates.append(shutil.which(f"python{version}"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", ""], capture_output=True).returncode == 0:
            return candidate
    return None


def tree_size(tree: Path) -> int:
    return sum(path.stat().st_size for path in tree.rglob("*") if path.is_file() and not path.is_symlink())


def write_zip(tree: Path, zip_path: Path) -> None:
    zip_path.parent.mkdir(parents=True, exist_ok=True)
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


def _fresh(out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)


def _mib(size: int) -> str:
    return f"{size / 1048576:.1f}"
