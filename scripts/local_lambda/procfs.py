"""What /proc tells about processes the test harness started (Linux): the TCP ports a process listens on,
the processes of a mount namespace, whether a process is still alive."""

from __future__ import annotations

import os
import signal
import time


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on: its socket inodes matched against its network namespace's tables."""
    try:
        inodes = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
        ports = set()
        for table in ("tcp", "tcp6"):
            with open(f"/proc/{pid}/net/{table}") as f:
                for line in list(f)[1:]:
                    fields = line.split()
                    if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        return ports
    except OSError:
        return set()


def mount_namespace(pid: int | str = "self") -> str | None:
    """The id of the mount namespace of `pid` ("mnt:[4026531841]"), None if it is gone (or a zombie)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def processes_in(namespace: str) -> dict[int, str]:
    """pid -> command line of every live process in mount namespace `namespace`."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and mount_namespace(entry) == namespace:
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    found[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
    return found


def kill_in_namespace(pid: int, namespace: str) -> bool:
    """SIGKILL to `pid` if it is (still) in mount namespace `namespace`, through a pidfd so that a pid reused
    meanwhile by another process is never signalled. True if the signal went out."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if mount_namespace(pid) != namespace:  # checked after pidfd_open: the pidfd is this very process
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: set[int], timeout: float) -> float | None:
    """Seconds until none of `pids` is alive, or None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not any(alive(pid) for pid in pids):
            return time.monotonic() - started
        time.sleep(0.005)
    return None
