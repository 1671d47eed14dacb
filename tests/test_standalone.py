"""The standalone layer: the extension frozen by PyInstaller (one-folder) with its own C library and loader,
which runs beside any runtime on any glibc.

It is built once a session (conftest's `standalone_dir`); tests/test_end_to_end.py runs its whole suite
against it too, and tests/test_standalone_old_glibc.py runs it on Debian 11's glibc 2.31. Here: its layout,
that every library in the zip resolves inside it with every symbol version it asks for, that the launcher
runs the bundled loader and nothing of the system's C library is mapped, that it starts with no Python
anywhere (no PATH at all), that it ignores a function's Python environment, that build-layer works from a
python3 without PyInstaller, and that the build refuses what PyInstaller cannot do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REGION, RunningExtension, close_and_check, launch
from local_lambda import botocore_data, elf, layer, layer_standalone
from local_lambda.aws import free_port, lambda_environment
from local_lambda.extensions_api import ExtensionsApiEmulator

ELF_MACHINE = {"x86_64": "x86-64", "arm64": "ARM aarch64"}
OTHER_ARCH = {"x86_64": "arm64", "arm64": "x86_64"}


def file_type(path) -> str:
    return subprocess.run(["file", "-b", str(path)], capture_output=True, text=True, check=True).stdout


def test_standalone_tree_and_zip(standalone_dir):
    launcher = standalone_dir / "extensions" / "cache-extension"
    text = launcher.read_bytes()
    assert launcher.stat().st_mode & stat.S_IXUSR
    assert text.startswith(b"#!/bin/sh\n") and b"\r\n" not in text
    code = [line for line in text.decode().splitlines() if not line.lstrip().startswith("#")]
    assert not any("python" in line for line in code)  # no interpreter to find: the frozen binary only
    binary = standalone_dir / "cache-extension" / "cache-extension"
    assert binary.stat().st_mode & stat.S_IXUSR
    assert "ELF" in file_type(binary) and ELF_MACHINE[layer.machine_arch()] in file_type(binary)
    internal = standalone_dir / "cache-extension" / "_internal"
    assert list(internal.glob("libpython3*.so*")), "the interpreter is bundled"
    assert list(internal.glob("yaml/_yaml*.so")), "PyYAML's C extension is bundled"
    assert (internal / "botocore" / "cacert.pem").exists()  # HTTPS to AWS needs botocore's CA bundle
    # botocore's data directory is trimmed to the services the extension calls.
    data = internal / "botocore" / "data"
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == sorted(botocore_data.OPERATIONS)
    for name in botocore_data.DATA_FILES:
        assert (data / name).exists(), name
    # Only the standard library and the vendored dependencies: nothing from the test virtualenv.
    for foreign in ("moto", "certifi", "websockets", "pytest", "flask", "werkzeug"):
        assert not (internal / foreign).exists(), foreign
    for vendored in ("uvloop", "httptools"):  # dependencies of the extension: its HTTP server runs on them
        assert (internal / vendored).exists(), vendored
    for unused in ("starlette", "uvicorn", "anyio", "click"):  # the extension's own HTTP server replaced them
        assert not (internal / unused).exists(), unused
    # The same clients as the Python layer, at each runtime's path.
    assert sorted(p.name for p in (standalone_dir / "python").iterdir()) == ["cache_extension_client"]
    assert (standalone_dir / "nodejs" / "node_modules" / "cache-extension-client" / "package.json").exists()
    if shutil.which("javac"):
        assert (standalone_dir / "java" / "lib" / layer.JAVA_CLIENT_JAR).exists()
    zip_path = standalone_dir.parent / f"cache-extension-layer-{layer.machine_arch()}-standalone.zip"
    with zipfile.ZipFile(zip_path) as archive:
        for executable in ("extensions/cache-extension", "cache-extension/cache-extension"):
            assert (archive.getinfo(executable).external_attr >> 16) & 0o111, executable
        names = archive.namelist()
        built_for = json.loads(archive.read(layer.MANIFEST))  # what it was built for, shipped with it
    assert built_for == layer.read_manifest(standalone_dir)
    assert {k: built_for[k] for k in ("layer", "arch", "python")} == {
        "layer": "standalone", "arch": layer.machine_arch(), "python": layer.this_python()}
    assert layer.unfit_here(standalone_dir) is None
    assert "python/cache_extension_client/__init__.py" in names
    assert not any(name.startswith("cache-extension/cache_extension/") for name in names)  # frozen, not sources


def test_every_library_in_the_zip_resolves_inside_it(standalone_dir, tmp_path):
    """Read from the zip as Lambda unpacks it: every ELF file's needed libraries are in _internal (the launcher's
    only library path), each defines every symbol version asked of it (.gnu.version_r against .gnu.version_d),
    and nothing is asked of the system's glibc. Without the bundled C library, libpython alone asks the system
    for hypot@GLIBC_2.35, newer than Lambda's 2.34."""
    zip_path = standalone_dir.parent / f"cache-extension-layer-{layer.machine_arch()}-standalone.zip"
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(tmp_path)
    home = tmp_path / "cache-extension"
    internal = home / "_internal"
    files = layer_standalone.elf_files(home)
    assert len(files) > 40 and home / "cache-extension" in files
    assert elf.problems(internal, files) == []
    assert layer_standalone.required_system_glibc(home) is None
    for library in ("libc.so.6", "libm.so.6"):
        assert elf.read(internal / library).version_defs, library
    binary = elf.read(home / "cache-extension")
    assert binary.machine == {"x86_64": "x86_64", "arm64": "aarch64"}[layer.machine_arch()]
    loader = Path(binary.interp).name
    assert (internal / loader).is_file() and re.fullmatch(r"ld-[^.]+\.so\.\d+", loader)
    # The test's own check would catch what it exists for: the machine's libpython against a libm that
    # defines only the versions Lambda's glibc 2.34 has.
    libpython = next(internal.glob("libpython3*.so*"))
    needs = dict(elf.read(libpython).version_needs).get("libm.so.6", [])
    newest = max(filter(None, (elf.glibc_version(v) for v, _ in needs)), default=(2, 0))
    print(f"libpython asks libm for glibc {'.'.join(map(str, newest))}; the bundle carries glibc "
          f"{'.'.join(map(str, layer_standalone.bundled_glibc(home)))}")
    assert newest <= layer_standalone.bundled_glibc(home)


def test_launcher_runs_the_bundled_loader_and_no_system_library(standalone_dir, moto, tmp_path):
    """The launcher execs _internal/ld-*.so.* with _internal as the only library path; once the extension is
    up (PyInstaller has restarted itself by then), /proc says its executable is that loader and every shared
    object mapped into it comes from the layer: none from /lib or /usr/lib."""
    text = (standalone_dir / "extensions" / "cache-extension").read_text()
    exec_line = [line for line in text.splitlines() if line.startswith("exec ")]
    assert len(exec_line) == 1
    assert re.fullmatch(r'exec "\$home/_internal/ld-[^.]+\.so\.\d+" --inhibit-cache --library-path '
                        r'"\$home/_internal" "\$home/cache-extension" "\$\{0##\*/\}"', exec_line[0]), exec_line
    handle = launch(standalone_dir, moto, tmp_path / "task", "parameters:\n  - names: [CacheExtensions_Parameter1]\n")
    try:
        assert handle.read("parameters", "CacheExtensions_Parameter1").text == "MyParameter"
        pid = handle.extension.process.pid
        home = (standalone_dir / "cache-extension").resolve()
        exe = Path(os.readlink(f"/proc/{pid}/exe"))
        assert exe.parent == home / "_internal" and exe.name.startswith("ld-"), exe
        mapped = {line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                  if len(line.split()) >= 6 and re.search(r"\.so(\.|$)", line.split()[-1])}
        names = {Path(p).name for p in mapped}
        assert {"libc.so.6", "libm.so.6"} <= names and any(n.startswith("libpython3") for n in names), names
        outside = sorted(p for p in mapped if not Path(p).is_relative_to(home))
        assert outside == [], outside
    finally:
        close_and_check(handle)


def test_starts_with_no_python_and_no_path(standalone_dir, moto, tmp_path):
    """As `env -i` would: no PATH at all, only what Lambda sets. Registration time is reported."""
    task_root = tmp_path / "task"
    task_root.mkdir()
    (task_root / "config.yaml").write_text("parameters:\n  - names: [CacheExtensions_Parameter1]\n")
    port = free_port()
    environment = lambda_environment(endpoint=moto.endpoint, region=REGION, token="no-python-token",
                                     config=str(task_root / "config.yaml"),
                                     extra={"CACHE_EXTENSION_PORT": str(port), "CACHE_EXTENSION_LOG_LEVEL": "debug"})
    del environment["PATH"]
    emulator = ExtensionsApiEmulator(region=REGION).start()
    extension = emulator.launch(str(standalone_dir / "extensions" / "cache-extension"), environment)
    handle = RunningExtension(emulator, extension, port, "no-python-token", task_root / "config.yaml")
    try:
        emulator.wait_init(timeout=20)
        reply = handle.read("parameters", "CacheExtensions_Parameter1")
        assert (reply.status, reply.text) == (200, "MyParameter")
        assert extension.launched_at < extension.registered_at < extension.init_done_at
        reported = re.search(r"registered as cache-extension in ([\d.]+) ms", extension.output)
        assert reported, extension.output
        print(f"standalone: start -> register {(extension.registered_at - extension.launched_at) * 1000:.1f} ms "
              f"(the extension reports {reported.group(1)} ms after its own start), "
              f"start -> INIT done {(extension.init_done_at - extension.launched_at) * 1000:.1f} ms")
    finally:
        close_and_check(handle)


@pytest.mark.parametrize("how", ["absolute", "relative", "sh"])
def test_launcher_without_the_extensions_api_fails_cleanly(standalone_dir, how):
    extensions = standalone_dir / "extensions"
    command = {"absolute": [str(extensions / "cache-extension")], "relative": ["./cache-extension"],
               "sh": ["/bin/sh", "cache-extension"]}[how]
    result = subprocess.run(command, env={}, cwd=extensions, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1, result.stderr
    assert "could not register" in result.stderr and "Traceback" not in result.stderr


def test_ignores_the_functions_python_environment(standalone_dir, moto, tmp_path):
    """PYTHONPATH (set by Python runtimes) and PYTHONHOME must not change what the frozen extension loads."""
    poison = tmp_path / "poison"
    for module in ("yaml", "httptools", "uvloop", "botocore", "asyncio", "decimal", "encodings"):
        (poison / module).mkdir(parents=True)
        (poison / module / "__init__.py").write_text(f"raise ImportError('{module} from PYTHONPATH')\n")
    handle = launch(standalone_dir, moto, tmp_path / "task", "parameters:\n  - names: [CacheExtensions_Parameter1]\n",
                    env={"PYTHONPATH": str(poison), "PYTHONHOME": str(poison), "PYTHONSTARTUP": str(poison / "x.py")})
    try:
        assert handle.read("parameters", "CacheExtensions_Parameter1").text == "MyParameter"
        assert "from PYTHONPATH" not in handle.output
    finally:
        close_and_check(handle)


def test_standalone_refuses_another_architecture_or_python(tmp_path):
    other = OTHER_ARCH[layer.machine_arch()]
    with pytest.raises(layer.BuildError, match="cannot cross-build"):
        layer.build_standalone(tmp_path / "out", arch=other)
    result = subprocess.run([sys.executable, str(layer.ROOT / "scripts" / "build-layer"), "--standalone", "--arch", other,
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "this machine's architecture only" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(layer.BuildError, match="bundles the interpreter"):
        layer.build_standalone(tmp_path / "out", python="2.7")
    assert not (tmp_path / "out").exists()


def test_build_layer_from_a_python3_without_pyinstaller(tmp_path):
    """As the README gives it, from a fresh shell: `scripts/build-layer --standalone` runs under whatever python3
    is first on PATH, which has no PyInstaller; it moves to the project's .venv by itself. (The build itself
    is the session's; here it stops at the architecture check, right after the move.)"""
    bare = Path(sys.base_prefix) / "bin" / "python3"
    check = subprocess.run([str(bare), "-c", "import PyInstaller"], capture_output=True, timeout=30)
    if check.returncode == 0:
        pytest.skip(f"{bare} has PyInstaller: nothing to move away from")
    other = OTHER_ARCH[layer.machine_arch()]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = f"{bare.parent}:/usr/bin:/bin"
    result = subprocess.run([str(layer.ROOT / "scripts" / "build-layer"), "--standalone", "--arch", other,
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert "using the project's .venv" in result.stderr, result.stderr
    assert result.returncode == 2 and "this machine's architecture only" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
