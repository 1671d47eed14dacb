"""What /proc tells about processes the test harness started (Linux): the TCP ports a process listens on,
the processes of a mount namespace, whether a process is still alive."""

from __future__ import annotations

import ipaddress
import os
import signal
import time


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process `pid` listens on: its socket inodes matched against its network
    namespace's tables. Raises OSError when the process is gone."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = list(f)[1:]
        except FileNotFoundError:  # no IPv6 in this kernel
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(_address(fields[1]))
    return found


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (none if it is gone)."""
    try:
        return {port for _, port in listening_sockets(pid)}
    except OSError:
        return set()


def _address(text: str) -> tuple[str, int]:
    """/proc/net/tcp{,6} "ADDR:PORT": the address is in host byte order, 32 bits at a time."""
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw)), int(port, 16)


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
