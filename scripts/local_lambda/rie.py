"""AWS's Runtime Interface Emulator (aws-lambda-rie): the real built layer under Lambda's own runtime core.

RIE starts every executable in /opt/extensions and the runtime, so it runs in a private mount namespace
(`unshare --mount`; Linux, root) with a tmpfs over /var, the function's directory on /var/task and the layer
on /opt: nothing of it is seen outside, and it all goes with the namespace's last process. The network is
the machine's: moto on loopback and the extension's port are reachable from the test as they are.

    install()         `go install` the pinned RIE into .venv/tools/bin (`python -m local_lambda.rie install`)
    RieEnvironment    start / invoke / terminate / stop, every wait bounded; stop kills its whole namespace
    observe(...)      one scenario with the probe extension alone: the probe's observations, a list of dicts
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from local_lambda import procfs
from local_lambda.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
RIE_MODULE = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
RIE_VERSION = "v0.0.0-20261030222936-bef5c4ba774d"
TOOLS_BIN = ROOT / ".venv" / "tools" / "bin"
RIE_BINARY = TOOLS_BIN / "aws-lambda-rie"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
PROBE = Path(__file__).with_name("probe_extension.py")
# Where Lambda's Python runtime keeps things, and what RIE (Managed Instances mode) gives a zip function.
LAMBDA_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin:/bin:/opt/bin"
LAMBDA_LD_LIBRARY_PATH = ("/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib"
                          ":/opt/lib")


# Lambda's Python runtime in short: its bootstrap runs the runtime interface client on the handler (RIE gives
# it as the last argument in classic mode, as _HANDLER in Managed Instances mode, which ignores the command
# of a zip function and looks for /var/runtime/bootstrap itself).
PYTHON_BOOTSTRAP = """#!/bin/sh
export PYTHONPATH="/var/task:/opt/python:/var/runtime/python"
exec /var/lang/bin/python3 -m awslambdaric "${1:-$_HANDLER}"
"""


def python_runtime(handler: str) -> tuple[list[str], dict[str, str], dict[str, Path], dict[str, str]]:
    """A Python function under AWS's runtime interface client (awslambdaric), laid out as in Lambda: this
    interpreter at /var/lang, this virtualenv's site-packages (awslambdaric, boto3) at /var/runtime/python,
    the bootstrap at /var/runtime/bootstrap. Returns RIE's command, the environment, the binds (namespace
    path -> host path) and the files (namespace path -> text) for RieEnvironment.

    Managed Instances mode runs every process as uid 993: a path under a 0700 home (pyenv's) would be out
    of its reach, and so would a RUNPATH pointing there: hence the binds, and LD_LIBRARY_PATH."""
    site = Path(sysconfig.get_paths()["purelib"])
    env = {"PATH": LAMBDA_PATH, "LD_LIBRARY_PATH": LAMBDA_LD_LIBRARY_PATH, "LANG": "en_US.UTF-8", "TZ": ":UTC"}
    return (["/var/runtime/bootstrap", handler], env, {"/var/lang": Path(sys.base_prefix), "/var/runtime/python": site},
            {"/var/runtime/bootstrap": PYTHON_BOOTSTRAP})


def namespace_script(binds: dict[str, Path], writable: dict[str, Path], files: dict[str, str]) -> str:
    """The shell run by `unshare --mount` before RIE: a tmpfs over /var (so /var/task can exist without touching
    the machine's /var), then each bind, read-only unless writable, and each file (executable); then exec RIE
    (the arguments) in /var/task."""
    # The script's own tools from the system's directories: RIE's PATH (the function's) may not lead to them.
    lines = ['rie_path="$PATH"; PATH=/usr/sbin:/usr/bin:/sbin:/bin', "set -e",
             "mount -t tmpfs -o size=4m,mode=0755 rie-var /var",
             "mkdir -p /var/task /var/tmp && chmod 1777 /var/tmp && ln -s /run /var/run"]
    for target in [*binds, *writable, *files]:
        if not (target == "/opt" or target.startswith("/var/")):
            raise ValueError(f"{target} is neither /opt nor under /var: it would hide the machine's own")
    for target, source in {**binds, **writable}.items():
        quoted = shlex.quote(target)
        lines.append(f"mkdir -p {quoted} && mount --bind {shlex.quote(str(source))} {quoted}")
        if target not in writable:
            lines.append(f"mount -o remount,bind,ro {quoted}")
    for target, text in files.items():
        quoted = shlex.quote(target)
        lines.append(f"mkdir -p $(dirname {quoted}) && printf %s {shlex.quote(text)} > {quoted} && chmod 755 {quoted}")
    # sh's own PWD is no part of Lambda's environment
    lines += ["cd /var/task", 'exec env -u PWD -u OLDPWD PATH="$rie_path" "$@"']
    return "\n".join(lines) + "\n"


class RieUnavailable(RuntimeError):
    """RIE cannot run on this machine; the message says why."""


class RieError(RuntimeError):
    """RIE did not do what was asked (did not start, did not answer); the message carries its output's tail."""


def _stamp() -> Path:
    return RIE_BINARY.with_name(RIE_BINARY.name + ".version")


def installed() -> bool:
    return RIE_BINARY.is_file() and _stamp().is_file() and _stamp().read_text().strip() == RIE_VERSION


def install(*, log=print, timeout: float = 600) -> Path:
    """The pinned RIE, built with `go install` into TOOLS_BIN if it is missing or another version."""
    if installed():
        return RIE_BINARY
    go = shutil.which("go")
    if go is None:
        raise RieUnavailable("`go` is not on PATH: it is needed to install aws-lambda-rie")
    log(f"installing aws-lambda-rie {RIE_VERSION} into {TOOLS_BIN}")
    TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(TOOLS_BIN), "GOFLAGS": "-buildvcs=false"}
    result = subprocess.run([go, "install", f"{RIE_MODULE}@{RIE_VERSION}"], env=env, capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0 or not RIE_BINARY.is_file():
        raise RieUnavailable(f"go install of aws-lambda-rie failed ({result.returncode}): "
                             f"{result.stderr.strip()[-2000:]}")
    _stamp().write_text(RIE_VERSION + "\n")
    return RIE_BINARY


def unavailable_reason() -> str | None:
    """Why RIE cannot run here (None: it can, once installed)."""
    if not sys.platform.startswith("linux"):
        return f"RIE runs in a Linux mount namespace; this is {sys.platform}"
    if os.geteuid() != 0:
        return "RIE needs root here (unshare -m and bind mounts over /opt and /var)"
    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH"
    refused = _namespace_refused()
    if refused:
        return f"no private mount namespace with a tmpfs here (a container without CAP_SYS_ADMIN?): {refused}"
    if not installed() and shutil.which("go") is None:
        return f"aws-lambda-rie is not installed in {TOOLS_BIN} and `go` is not on PATH to install it"
    return None


@functools.lru_cache(maxsize=1)
def _namespace_refused() -> str:
    """What `unshare --mount` and a tmpfs mount inside it say when refused ("" when they work)."""
    try:
        result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                 "mount -t tmpfs -o size=64k rie-check /var"],
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if result.returncode == 0 else (result.stderr.strip() or f"exit status {result.returncode}")


@dataclass
class Invocation:
    status: int
    body: bytes
    seconds: float

    def json(self):
        return json.loads(self.body)


class RieEnvironment:
    """One execution environment: RIE with `opt_dir` at /opt and `task_dir` at /var/task, running `command`
    (the runtime) with `env` as RIE's own environment (which RIE passes on, filtered, to every process).
    binds / writable: more directories to mount (namespace path under /var -> host path), read-only / not;
    files: files to write (namespace path under /var -> text), executable. See python_runtime().

    max_concurrency: set AWS_LAMBDA_MAX_CONCURRENCY, which switches RIE to Lambda Managed Instances mode
    (INIT at start, SHUTDOWN-only extensions, concurrent invokes)."""

    def __init__(self, opt_dir: Path, task_dir: Path, command: list[str], env: dict[str, str], *,
                 binds: dict[str, Path] | None = None, writable: dict[str, Path] | None = None,
                 files: dict[str, str] | None = None,
                 max_concurrency: int | None = None, binary: Path | None = None, log_level: str = "info") -> None:
        self.command, self.log_level = list(command), log_level
        self.script = namespace_script({"/var/task": Path(task_dir), "/opt": Path(opt_dir), **(binds or {})},
                                       dict(writable or {}), dict(files or {}))
        self.env = dict(env)
        if max_concurrency is not None:
            self.env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(max_concurrency)
        self.binary = Path(binary or RIE_BINARY)
        self.process: subprocess.Popen | None = None
        self.invoke_port = 0
        self.runtime_api_port = 0
        self.namespace: str | None = None
        self.sigterm_at: float | None = None  # time.monotonic() of terminate()
        self.refused = 0  # invokes answered Runtime.Unavailable and sent again (invoke's retry_unavailable)
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> RieEnvironment:
        """Start RIE and wait until it serves invokes. Its Runtime API port is picked free and RIE is
        restarted on a fresh one if it was taken meanwhile (classic RIE cannot be given port 0: it would tell
        the processes ":0"); the invoke port is port 0, read back from RIE's own listening sockets."""
        reason = unavailable_reason()
        if reason is not None:
            raise RieUnavailable(reason)
        if not self.binary.is_file():
            raise RieUnavailable(f"{self.binary} is not installed (local_lambda.rie.install())")
        for attempt in range(3):
            self.runtime_api_port = free_port()
            self._launch()
            try:
                self._wait_listening(timeout)
                return self
            except RieError:
                taken = "address already in use" in self.output
                self.stop()
                if not taken or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        self._lines, self.namespace = [], None
        args = [str(self.binary), "--log-level", self.log_level,
                "--runtime-api-address", f"127.0.0.1:{self.runtime_api_port}",
                "--runtime-interface-emulator-address", "127.0.0.1:0", *self.command]
        self.process = subprocess.Popen(
            [shutil.which("unshare") or "unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", self.script,
             "rie-namespace", *args],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self._reader = threading.Thread(target=self._read, args=(self.process.stdout,), name="rie-output", daemon=True)
        self._reader.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            with self._changed:
                self._lines.append(raw.decode("utf-8", errors="replace"))
                self._changed.notify_all()
        stream.close()
        with self._changed:
            self._changed.notify_all()

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.namespace is None:  # as soon as unshare has made it: stop() kills every process in it
                namespace = procfs.mount_namespace(self.process.pid)
                self.namespace = namespace if namespace != procfs.mount_namespace() else None
            if self.process.poll() is not None:
                raise RieError(f"RIE exited ({self.process.returncode}) before serving invokes:\n{self.tail()}")
            ports = procfs.listening_ports(self.process.pid) - {self.runtime_api_port}
            if len(ports) == 1 and self.namespace is not None:
                self.invoke_port = ports.pop()
                return
            time.sleep(0.02)
        raise RieError(f"RIE did not listen within {timeout} s:\n{self.tail()}")

    def invoke(self, payload=None, *, timeout: float = 30.0, retry_unavailable: float = 0.0) -> Invocation:
        """POST the payload (JSON) to RIE's invoke endpoint. retry_unavailable: for that many seconds, send it
        again when answered 400 Runtime.Unavailable (Managed Instances mode queues nothing: with no idle
        runtime, an invoke is refused at once, as Lambda's frontend would be told to route it elsewhere)."""
        body = json.dumps({} if payload is None else payload).encode()
        started = time.monotonic()
        while True:
            connection = http.client.HTTPConnection("127.0.0.1", self.invoke_port, timeout=timeout)
            try:
                connection.request("POST", INVOKE_PATH, body=body)
                response = connection.getresponse()
                result = Invocation(response.status, response.read(), time.monotonic() - started)
            except (OSError, http.client.HTTPException) as exc:
                raise RieError(f"invoke failed ({type(exc).__name__}: {exc}); RIE's output:\n{self.tail()}") from exc
            finally:
                connection.close()
            unavailable = result.status == 400 and b"Runtime.Unavailable" in result.body
            if not unavailable or time.monotonic() - started > retry_unavailable:
                return result
            with self._changed:
                self.refused += 1
            time.sleep(0.02)

    def terminate(self) -> float:
        """SIGTERM to RIE (what the container runtime sends at shutdown); returns time.monotonic() then."""
        self.sigterm_at = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.sigterm_at

    def wait_exit(self, timeout: float) -> int | None:
        """RIE's exit code, or None if it is still running after `timeout`."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM, then after `grace` SIGKILL to RIE's group and to every process left in its namespace."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.terminate()
            self.wait_exit(grace)
        for _ in range(50):  # RIE starts each process in a group of its own: find them by their namespace
            victims = set(self.processes())
            if not victims:
                break
            for pid in victims:
                procfs.kill_in_namespace(pid, self.namespace)
            time.sleep(0.02)
        if self.process.poll() is None:  # not reaped yet, so its group id is still its own
            os.killpg(self.process.pid, signal.SIGKILL)
        self.wait_exit(5)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> RieEnvironment:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- observation ------------------------------------------------------------------------------

    @property
    def output(self) -> str:
        """RIE's combined output: its own log, and the extensions' and the runtime's output, which it carries."""
        with self._changed:
            return "".join(self._lines)

    def tail(self, lines: int = 60) -> str:
        with self._changed:
            return "".join(self._lines[-lines:])

    def wait_for(self, pattern: str, timeout: float, *, start: int = 0) -> re.Match:
        """The first match of regex `pattern` in the output from line `start` on, waiting up to `timeout`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = regex.search("".join(self._lines[start:]))
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RieError(f"{pattern!r} did not appear in RIE's output within {timeout} s:\n"
                                   + "".join(self._lines[-60:]))
                self._changed.wait(min(remaining, 0.1))

    def line_count(self) -> int:
        with self._changed:
            return len(self._lines)

    def processes(self) -> dict[int, str]:
        """pid -> command line of every process in RIE's mount namespace (RIE, extensions, runtime)."""
        return procfs.processes_in(self.namespace) if self.namespace is not None else {}

    def pids_of(self, text: str) -> set[int]:
        """The pids in the namespace whose command line contains `text` (say, "cache-extension")."""
        return {pid for pid, cmdline in self.processes().items() if text in cmdline}

    @staticmethod
    def wait_gone(pids: set[int], timeout: float) -> float | None:
        """Seconds until none of `pids` is alive (zombies count as gone), or None after `timeout`."""
        return procfs.wait_gone(pids, timeout)


# -- the probe ------------------------------------------------------------------------------------

PROBE_FUNCTION = '''import time


def handler(event, context):
    if "sleep" in event:
        time.sleep(float(event["sleep"]))
    return {"ok": True}
'''


def observe(work_dir: Path, *, mode: str = "classic", events: str = "INVOKE,SHUTDOWN", invokes=({},),
            env: dict[str, str] | None = None, timeout_s: int | None = None, settle: float = 0.3) -> list[dict]:
    """One scenario under RIE with the probe extension alone in /opt/extensions and a tiny Python function
    under awslambdaric: start RIE, send each payload of `invokes` in turn ({"sleep": s} sleeps s seconds),
    then SIGTERM RIE. mode: "classic" or "managed-instances" (AWS_LAMBDA_MAX_CONCURRENCY=2).
    timeout_s: AWS_LAMBDA_FUNCTION_TIMEOUT (whole seconds; RIE's default is 300).

    Returns the probe's observations (see probe_extension.py: kinds start, register, event, exit) in time
    order, interleaved with the harness's own, all with "time" (epoch seconds): {"kind": "invoke", "status",
    "body"} per invoke answered, {"kind": "sigterm"} when RIE was sent SIGTERM, and last {"kind": "rie_exit",
    "code"} (RIE exits by itself when INIT fails in Managed Instances mode: the invokes left are not sent)."""
    work_dir = Path(work_dir)
    opt, task, out = work_dir / "opt", work_dir / "task", work_dir / "out"
    for directory in (opt / "extensions", task, out):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o777 if directory == out else 0o755)  # Managed Instances mode runs the probe as uid 993
    opt.chmod(0o755)
    shutil.copy2(PROBE, opt / "extensions" / "probe")
    (opt / "extensions" / "probe").chmod(0o755)
    (task / "probe_function.py").write_text(PROBE_FUNCTION)
    output = out / "probe.jsonl"
    output.unlink(missing_ok=True)
    command, runtime_env, binds, files = python_runtime("probe_function.handler")
    environment = {**runtime_env, "AWS_REGION": "us-west-2", "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                   "PROBE_EVENTS": events, "PROBE_OUTPUT": "/var/probe-out/probe.jsonl",
                   **({"AWS_LAMBDA_FUNCTION_TIMEOUT": str(timeout_s)} if timeout_s else {}), **(env or {})}
    sandbox = RieEnvironment(opt, task, command, environment, binds=binds, writable={"/var/probe-out": out},
                             files=files, max_concurrency=2 if mode == "managed-instances" else None)
    extra: list[dict] = []
    try:
        sandbox.start()
        if mode == "managed-instances":  # INIT runs at start: let the probe register before the first invoke
            _wait_file_has(output, '"kind": "register"', timeout=10, rie=sandbox)
        for payload in invokes:
            try:
                result = sandbox.invoke(payload, timeout=30, retry_unavailable=10 if mode == "managed-instances" else 0)
            except RieError:
                if sandbox.wait_exit(1) is None:
                    raise
                break
            extra.append({"kind": "invoke", "time": time.time(), "status": result.status,
                          "body": result.body.decode("utf-8", errors="replace")})
        if sandbox.process.poll() is None:
            time.sleep(settle)  # the probe's event/next after the last invoke (or RIE's own exit)
        if sandbox.process.poll() is None:
            extra.append({"kind": "sigterm", "time": time.time()})
            sandbox.terminate()
        sandbox.wait_exit(5)
        extra.append({"kind": "rie_exit", "time": time.time(), "code": sandbox.process.returncode})
    finally:
        sandbox.stop()
    records = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    return sorted(records + extra, key=lambda record: record["time"])


def _wait_file_has(path: Path, text: str, timeout: float, rie: RieEnvironment) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.02)
    raise RieError(f"{text!r} did not appear in {path} within {timeout} s; RIE's output:\n{rie.tail()}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        try:
            print(install(log=lambda message: print(message, file=sys.stderr)))
        except (RieUnavailable, subprocess.TimeoutExpired) as exc:
            print(f"aws-lambda-rie not installed: {exc}", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m local_lambda.rie install   (go install the pinned aws-lambda-rie into .venv/tools/bin)")
    return 0 if argv[:1] in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
