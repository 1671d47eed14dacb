"""Core dumps stay off (issue 12, item 9): a crash must not write the cached secrets and the token to disk.

The extension, launched from the built layer (Python and standalone) by a parent that allows cores of any
size, sets its own core-size limit to 0 first thing, and makes itself non-dumpable, which also stops the
dumps a pipe core_pattern (systemd-coredump, apport) would take in spite of the limit. Observed from outside:
- /proc/PID/limits shows a core-size limit of 0 (soft and hard) although the process inherited unlimited;
- non-dumpable: the kernel then hands the process's /proc/PID/environ (where the token is) and the like
  to root:root instead of the process's own uid:gid. The tests run as root, so the extension is started
  with another gid (setpriv --regid, uid still root): its /proc/PID directory shows that gid, its
  environ file gid 0. (Raising the limit again from outside to isolate non-dumpable in a crash would need
  CAP_SYS_RESOURCE, which containers usually drop; a same-uid reader without CAP_SYS_PTRACE was still let
  into a non-dumpable process's environ on this project's test machine, so ownership is the check.)
- SIGSEGV leaves no core file in its working directory. A control process (sleep) crashed the same way
  does leave one, so the test can tell; where this machine writes no core files there the test skips.
  The machine-wide /proc/sys/kernel/core_pattern is only read, never changed.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import LAYER_VARIANTS, REGION, ROOT, SAMPLE_CONFIG, RunningExtension, close_and_check, path_for
from local_lambda.aws import free_port, lambda_environment
from local_lambda.extensions_api import ExtensionsApiEmulator

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/limits"), reason="reads /proc (Linux)")

UNLIMITED = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)


@pytest.fixture(scope="module", params=list(LAYER_VARIANTS))
def layer_dir(request):
    return request.getfixturevalue(LAYER_VARIANTS[request.param])


def launch_allowing_cores(layer_dir: Path, moto, tmp_path: Path, *, wrapper: list[str] | None = None) -> RunningExtension:
    """conftest's launch(), but from a parent whose core-size limit is unlimited (soft and hard), with
    tmp_path/cwd as the working directory, where a core_pattern such as "core" would put a dump, and
    through `wrapper` (a command that execs the layer's launcher: same process, same extension name)."""
    launcher = layer_dir / "extensions" / "cache-extension"
    if wrapper:
        wrapped = tmp_path / "wrapped" / "extensions" / "cache-extension"
        wrapped.parent.mkdir(parents=True)
        wrapped.write_text(f'#!/bin/sh\nexec {" ".join(wrapper)} -- "{launcher}" "$@"\n')
        wrapped.chmod(0o755)
        launcher = wrapped
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(SAMPLE_CONFIG)
    port = free_port()
    token = f"session-token-{uuid.uuid4().hex}"
    environment = lambda_environment(endpoint=moto.endpoint, region=REGION, token=token, config=str(config_path),
                                     extra={"PATH": path_for(layer_dir), "CACHE_EXTENSION_PORT": str(port)})
    emulator = ExtensionsApiEmulator(region=REGION).start()
    saved = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, UNLIMITED)  # this process's, inherited by the launched one
    try:
        assert resource.getrlimit(resource.RLIMIT_CORE) == UNLIMITED
        extension = emulator.launch(str(launcher), environment, cwd=str(cwd))
    except BaseException:
        emulator.close()
        raise
    finally:
        resource.setrlimit(resource.RLIMIT_CORE, saved)
    handle = RunningExtension(emulator, extension, port, token, config_path)
    try:
        emulator.wait_init(timeout=20)
    except BaseException:
        emulator.close()
        raise
    return handle


def core_limit(pid: int) -> tuple[str, str]:
    """(soft, hard) of "Max core file size" in /proc/PID/limits."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            soft, hard = line[len("Max core file size"):].split()[:2]
            return soft, hard
    raise AssertionError(f"no core-size line in /proc/{pid}/limits")


def cores_in(directory: Path) -> list[Path]:
    return [path for path in directory.iterdir() if path.name.startswith("core")]


def crash(pid: int, process: subprocess.Popen, timeout: float = 20.0) -> int:
    os.kill(pid, signal.SIGSEGV)
    return process.wait(timeout=timeout)  # a core of a large process takes a moment to write


def test_the_core_size_limit_is_zero_although_the_parent_allowed_unlimited(layer_dir, moto, tmp_path):
    handle = launch_allowing_cores(layer_dir, moto, tmp_path)
    try:
        pid = handle.extension.process.pid
        assert core_limit(pid) == ("0", "0")
        assert handle.read("parameters", "CacheExtensions_Parameter1").status == 200  # and it serves as before
    finally:
        close_and_check(handle)


def test_the_extension_is_not_dumpable(layer_dir, moto, tmp_path):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux) to start the extension with another gid")
    gid = 65534 if os.getgid() != 65534 else 65533
    handle = launch_allowing_cores(layer_dir, moto, tmp_path, wrapper=[setpriv, "--regid", str(gid), "--clear-groups"])
    try:
        pid = handle.extension.process.pid
        assert handle.read("parameters", "CacheExtensions_Parameter1").status == 200
        assert os.stat(f"/proc/{pid}").st_gid == gid, "the extension did not run with the test's gid"
        owner = os.stat(f"/proc/{pid}/environ")
        assert (owner.st_uid, owner.st_gid) == (0, 0), "dumpable: /proc/PID/environ belongs to the process's gid"
    finally:
        close_and_check(handle)


def test_a_crash_writes_no_core(layer_dir, moto, tmp_path):
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"core_pattern {pattern!r} does not write into the crashing process's directory")
    control_dir = tmp_path / "control"
    control_dir.mkdir()
    control = subprocess.Popen(["sleep", "30"], cwd=control_dir,
                               preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, UNLIMITED))
    try:
        time.sleep(0.2)  # let sleep exec, so that the dump is sleep's, not a half-started child's
        crash(control.pid, control)
    finally:
        control.kill()
        control.wait(timeout=10)
    if not cores_in(control_dir):
        pytest.skip("this machine writes no core file for a crashing process (container limits?)")

    handle = launch_allowing_cores(layer_dir, moto, tmp_path)
    cwd = tmp_path / "cwd"
    try:
        pid = handle.extension.process.pid
        assert handle.read("secrets", "secret_info").status == 200  # a secret is in its memory now
        status = crash(pid, handle.extension.process)
        assert status == -signal.SIGSEGV
        written = cores_in(cwd)
        for path in written:  # never leave a dump holding secrets behind, pass or fail
            path.unlink()
        assert not written, "the crashed extension wrote a core file"
    finally:
        close_and_check(handle)


def test_where_the_platform_has_neither_the_extension_carries_on_and_says_why_at_debug(tmp_path):
    """Fail soft: without `resource` (Windows) and prctl (not Linux) main() goes on to register (here it finds no
    Extensions API and exits 1, as it would anyway), reporting both at debug level only. In a child process: the
    limit lowered in this one could not be raised again."""
    program = ("import sys; sys.modules['resource'] = None; sys.platform = 'darwin'; "
               f"sys.path.insert(0, {str(ROOT / 'extension')!r}); "
               "from cache_extension.main import main; sys.exit(main(['x', 'cache-extension']))")
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:1"}
    for level, shown in (("debug", True), ("info", False)):
        result = subprocess.run([sys.executable, "-E", "-S", "-c", program], cwd=tmp_path, capture_output=True, text=True,
                                timeout=30, env={**base, "CACHE_EXTENSION_LOG_LEVEL": level})
        assert result.returncode == 1, result.stderr
        assert "could not register" in result.stderr
        lines = [line for line in result.stderr.splitlines() if "core dumps left on" in line]
        arenas = [line for line in result.stderr.splitlines() if "malloc arenas left as they are" in line]
        if shown:
            assert len(lines) == 2 and all(line.startswith("DEBUG [cache-extension] ") for line in lines), lines
            assert "RLIMIT_CORE" in lines[0] and "PR_SET_DUMPABLE" in lines[1]
            assert len(arenas) == 1 and "mallopt" in arenas[0]  # no libc call off Linux either
        else:
            assert lines == arenas == []
