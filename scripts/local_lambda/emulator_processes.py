"""The processes the local Lambda emulator launches: extensions and the runtime, their output and exit.

Each runs in a process group of its own, so that killing it also ends whatever it spawned (awslambdaric's
worker processes on Managed Instances, for one).
"""

from __future__ import annotations

import subprocess
import threading
from collections import deque
from typing import Any, Callable

from .runtime_api import Invocation

_print_lock = threading.Lock()


class Process:
    """A process the emulator launched: its output and its exit."""

    def __init__(self, name: str, launched_at: float) -> None:
        self.name = name
        self.process: subprocess.Popen[str] | None = None  # set right after Popen
        self.launched_at = launched_at
        self.exited_at: float | None = None
        self.init_done_at: float | None = None
        self.init_errors: list[dict[str, Any]] = []
        self._exited = threading.Event()
        self._output: list[str] = []
        self._output_lock = threading.Lock()
        self._reader: threading.Thread | None = None

    @property
    def output(self) -> str:
        with self._output_lock:
            return "".join(self._output)

    @property
    def init_settled(self) -> bool:
        return self.init_done_at is not None or bool(self.init_errors) or self._exited.is_set()

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the process to exit; its return code, or None if still running."""
        if not self._exited.wait(timeout):
            return None
        if self._reader is not None:
            # Let the reader drain the pipe so `output` is complete (bounded: a
            # grandchild could keep the pipe open).
            self._reader.join(timeout=1.0)
        assert self.process is not None
        return self.process.returncode

    def _append_output(self, line: str) -> None:
        with self._output_lock:
            self._output.append(line)


class Extension(Process):
    """One launched extension process, as the emulator sees it.

    Mutable lifecycle fields are written under the emulator's lock; reading them from a
    test is fine once the relevant wait_* call has returned.
    """

    def __init__(self, name: str, launched_at: float) -> None:
        super().__init__(name, launched_at)
        self.identifier: str | None = None
        self.events: list[str] = []
        self.registered_at: float | None = None
        self.exit_errors: list[dict[str, Any]] = []
        # Event delivery: events wait in the queue until an event/next call takes them.
        # `idle` (waiting in event/next with nothing queued) is what Lambda waits for
        # before freezing, so count next calls and remember which call took the last event.
        self._queue: deque[dict[str, Any]] = deque()
        self._next_calls = 0
        self._delivered_on = 0
        self._last_next_at: float | None = None

    @property
    def idle(self) -> bool:
        return not self._queue and self._next_calls > self._delivered_on

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"<Extension {self.name} pid={pid} events={self.events}>"


class Runtime(Process):
    """The function's runtime process: it speaks the Runtime API.

    Its Init ends with its first invocation/next (``init_done_at``); ``init_errors`` holds what it
    posted to init/error, as ``{"error_type", "body"}``.
    """

    def __init__(self, name: str, command: list[str], launched_at: float) -> None:
        super().__init__(name, launched_at)
        self.command = command
        self.current: Invocation | None = None  # the invocation it took last, from next to its answer
        self._next_calls = 0
        self._waiting = 0  # invocation/next calls blocked now (Managed Instances: one per idle worker)

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"<Runtime {self.name} pid={pid} command={self.command}>"


def popen(command: list[str], env: dict[str, str], cwd: str | None, capture_output: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture_output else None,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
        # Own process group, so kill reaches whatever it spawned.
        start_new_session=True,
    )


def follow(proc: Process, capture_output: bool, echo: bool, on_exit: Callable[[Process], None]) -> None:
    """Read the process's output (if captured) and call on_exit(proc) from a thread once it exits."""
    if capture_output:
        proc._reader = threading.Thread(target=_read_output, args=(proc, echo), name=f"output-{proc.name}", daemon=True)
        proc._reader.start()

    def watch() -> None:
        assert proc.process is not None
        proc.process.wait()
        on_exit(proc)

    threading.Thread(target=watch, name=f"wait-{proc.name}", daemon=True).start()


def _read_output(proc: Process, echo: bool) -> None:
    assert proc.process is not None and proc.process.stdout is not None
    for line in proc.process.stdout:
        proc._append_output(line)
        if echo:
            # A line that already names its process (the extension's own "LEVEL [name] ...") is not tagged twice.
            tag = "" if f"[{proc.name}]" in line[:40] else f"[{proc.name}] "
            with _print_lock:
                print(f"{tag}{line}", end="" if line.endswith("\n") else "\n", flush=True)
    proc.process.stdout.close()


def outputs(echoed: bool, processes: list[Any], limit: int = 4000) -> str:
    """The tail of each process's output, for error messages; nothing if it was echoed as it came."""
    if echoed:
        return ""
    parts = []
    for proc in processes:
        text = proc.output
        if len(text) > limit:
            text = "..." + text[-limit:]
        parts.append(f"\n--- output of {proc.name} ---\n{text.rstrip()}")
    return "".join(parts)
