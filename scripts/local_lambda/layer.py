"""Builds the Lambda layer: a tree laid out exactly as /opt will be, and its zip.

Two variants share the layout of the client libraries (python/, nodejs/, java/lib/):

The Python layer, for Python runtimes (`build`):

    extensions/cache-extension    the launcher; Lambda starts it, its file name is the extension name.
                                  It runs the extension with python3 from PATH.
    cache-extension/__main__.py   what the launcher runs with python3
    cache-extension/cache_extension/ and vendored dependencies, kept out of /opt/python so they never
                                  shadow the function's own packages

The standalone layer, for every runtime (`build_standalone`): the extension frozen by PyInstaller in
one-folder mode, with its own interpreter, so it needs no python3 on the machine.

    extensions/cache-extension    a /bin/sh launcher that execs the frozen binary by an absolute path
                                  derived from its own location: it needs nothing on PATH
    cache-extension/cache-extension   the frozen binary (PyInstaller's bootloader)
    cache-extension/_internal/    its interpreter, standard library and dependencies
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
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
# glibc of Lambda's Amazon Linux 2023 runtimes: a frozen build needing a newer one does not start there.
LAMBDA_GLIBC = (2, 34)

# The standalone launcher. Lambda starts /opt/extensions/cache-extension by its absolute path, so $0 is
# absolute there; a relative $0 is made absolute with $PWD, which the shell sets itself. The shell's own
# parameter expansion rather than dirname/basename: no PATH lookup and no extra process at start.
STANDALONE_LAUNCHER = f"""#!/bin/sh
# Lambda starts every executable in /opt/extensions; this file's name is the extension's name.
# Runs the extension frozen by PyInstaller (its own interpreter in ../{EXTENSION_NAME}/_internal), so it
# needs no python3 and nothing on PATH: the binary's path is absolute, derived from this file's own.
case "$0" in
  /*) dir=${{0%/*}} ;;
  */*) dir=$PWD/${{0%/*}} ;;
  *) dir=$PWD ;;
esac
exec "$dir/../{EXTENSION_NAME}/{EXTENSION_NAME}" "${{0##*/}}"
"""

# Collected in full so PyInstaller bundles them even if a hook changes: the extension's own package, since
# its imports are lazy (inside functions), and the two C extensions the HTTP server runs on, whose own
# imports (made from compiled code) its analysis may not see.
STANDALONE_COLLECT = ("cache_extension", "uvloop", "httptools")


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
            tree = dist / "layers" / f"{arch}-python{python}"
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


def build_standalone(out: Path, *, arch: str | None = None, python: str | None = None, log=print,
                     zip_path: Path | None = None) -> Path:
    """Build the standalone layer (the extension frozen by PyInstaller, one-folder mode) into `out` and zip it.

    PyInstaller bundles the interpreter that runs it and the native libraries of this machine: it cannot
    build for another architecture or Python version, and the binary needs a glibc at least as new as
    this machine's (build on Amazon Linux 2023 for Lambda: see the Dockerfile).
    """
    if arch is not None and arch != machine_arch():
        raise BuildError(f"--standalone builds for this machine's architecture only ({machine_arch()}): PyInstaller "
                         f"cannot cross-build for {arch}; run the build on an {arch} machine or container")
    if python is not None and python != this_python():
        raise BuildError(f"--standalone bundles the interpreter running build-layer (Python {this_python()}); "
                         f"run build-layer with Python {python} to bundle that version")
    if importlib.util.find_spec("PyInstaller") is None:
        raise BuildError(f"--standalone needs PyInstaller in the interpreter running build-layer ({sys.executable}): "
                         "pip install pyinstaller (it is in the project's test extras)")
    arch = machine_arch()
    _fresh(out)
    with tempfile.TemporaryDirectory(prefix="cache-extension-standalone-") as work_dir:
        work = Path(work_dir)
        staging = work / "site"
        log(f"vendoring dependencies for the standalone build ({arch}, Python {this_python()})")
        vendor(staging, arch, this_python(), native=True)
        shutil.copytree(ROOT / "extension" / "cache_extension", staging / "cache_extension",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        trim_botocore(staging / "botocore" / "data")
        vendor_patches.apply(staging, log=log)
        entry = work / "cache_extension_entry.py"
        shutil.copy2(ROOT / "extension" / "__main__.py", entry)
        log("freezing the extension with PyInstaller (one-folder)")
        freeze(entry, staging, work, out / EXTENSION_NAME)
    glibc = required_glibc(out / EXTENSION_NAME)
    if glibc > LAMBDA_GLIBC:
        log(f"warning: the frozen extension needs glibc {_version(glibc)} or newer (this machine's libraries ask for it), "
            f"but Lambda's Amazon Linux 2023 has {_version(LAMBDA_GLIBC)}: it will not start on Lambda. "
            "Build it on Amazon Linux 2023 (see the Dockerfile).")
    else:
        log(f"the frozen extension needs glibc {_version(glibc)} or newer")
    add_clients(out, log=log)
    write_launcher(out, STANDALONE_LAUNCHER.encode())
    if (out / "python").exists():
        # The function's Python version is not known here: ship the client's bytecode for each one at hand.
        for version in dict.fromkeys((*TARGET_PYTHONS, this_python())):
            compile_bytecode(out / "python", version, log=lambda *_: None)
    zip_path = zip_path or out.parent / zip_name(arch, standalone=True)
    write_zip(out, zip_path)
    log(f"built {zip_path} ({_mib(zip_path.stat().st_size)} MiB zipped, {_mib(tree_size(out))} MiB unzipped)")
    return zip_path


def freeze(entry: Path, staging: Path, work: Path, target: Path) -> None:
    """Run PyInstaller on `entry` with the vendored packages in `staging`; the one-folder output becomes `target`.

    The bundle must hold the standard library and `staging` only, never packages that happen to be
    installed beside PyInstaller (a test virtualenv has moto, certifi, websockets...): `staging` comes first
    on the path of the analysis and of the hooks (PYTHONPATH), and every other top-level module of the
    build environment's site-packages is excluded.
    """
    foreign = sorted(_site_packages_names() - _top_level_names(staging) - {"PyInstaller"})
    spec = work / f"{EXTENSION_NAME}.spec"
    spec.write_text(SPEC.format(entry=str(entry), staging=str(staging), collect=list(STANDALONE_COLLECT),
                                excludes=foreign, dropped=list(DROPPED_RUNTIME_HOOKS), name=EXTENSION_NAME))
    dist = work / "dist"
    command = [sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean", "--log-level", "WARN",
               "--distpath", str(dist), "--workpath", str(work / "build"), str(spec)]
    env = {**os.environ, "PYTHONPATH": str(staging), "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"PyInstaller failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    shutil.move(str(dist / EXTENSION_NAME), str(target))


# PyInstaller's runtime hooks run before the entry script, so before registration. These three import
# inspect, pkgutil (with zipfile) and multiprocessing at start (~60 ms) to patch features the extension
# never uses: source lookup of frozen modules, pkgutil.iter_modules over the bundle, and child processes
# (it runs threads only). Dropped, start -> register is as fast as the Python layer's.
DROPPED_RUNTIME_HOOKS = ("pyi_rth_inspect", "pyi_rth_pkgutil", "pyi_rth_multiprocessing")

# The PyInstaller spec of the standalone build: one-folder (COLLECT), no UPX, symbols stripped.
SPEC = """# Generated by scripts/local_lambda/layer.py (build_standalone): the extension frozen in one-folder mode.
from PyInstaller.utils.hooks import collect_submodules

hiddenimports = []
for package in {collect!r}:
    hiddenimports += collect_submodules(package)

a = Analysis(
    [{entry!r}],
    pathex=[{staging!r}],
    hiddenimports=hiddenimports,
    excludes={excludes!r},
    noarchive=False,
    optimize=0,
)
a.scripts = [entry for entry in a.scripts if entry[0] not in {dropped!r}]
pyz = PYZ(a.pure)
exe = EXE(pyz, a.scripts, exclude_binaries=True, name={name!r}, strip=True, upx=False, console=True)
coll = COLLECT(exe, a.binaries, a.datas, strip=True, upx=False, name={name!r})
"""


def required_glibc(tree: Path) -> tuple[int, ...]:
    """The newest glibc symbol version any ELF file under `tree` asks for: the oldest glibc it runs on.

    Versioned symbol requirements are named in each file's dynamic string table (GLIBC_2.34, ...); glibc
    itself is never bundled (PyInstaller leaves it to the system), so every such name is a requirement.
    """
    import re

    newest: tuple[int, ...] = (2, 0)
    for path in tree.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        with open(path, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
            data = f.read()
        for match in re.finditer(rb"GLIBC_(\d+(?:\.\d+)+)", data):
            newest = max(newest, tuple(int(part) for part in match.group(1).split(b".")))
    return newest


def _version(parts: tuple[int, ...]) -> str:
    return ".".join(map(str, parts))


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
    """pip install the extension's dependencies into `target`: the target's manylinux wheels unless native."""
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
           "--only-binary=:all:", "--target", str(target)]
    if not native:  # the target's wheels, not this machine's
        pip += ["--implementation", "cp", "--python-version", python, "--abi", f"cp{python.replace('.', '')}"]
        for tag in MANYLINUX_TAGS:
            pip += ["--platform", f"{tag}_{ARCHES[arch]}"]
    subprocess.run(pip + dependencies(), check=True)
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
    """The client libraries, at each runtime's own path: python/, nodejs/, java/lib/."""
    for extra in sorted((ROOT / "layer").iterdir()):
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
