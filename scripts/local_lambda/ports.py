"""Loopback ports for a process to bind later, without the race of bind(0)'s.

No third-party imports: the RIE harness uses it too.
"""

from __future__ import annotations

import os
import socket
import threading

# free_port() hands out ports below the kernel's ephemeral range: a port the kernel picked with bind(0) is an
# ephemeral one, which any process's next outgoing connection may take before the extension binds it
# ("Address already in use", seen in CI). Below the range only another listener can take it; each process
# starts at its own offset (by pid) and walks on, so two test processes do not pick the same port either.
PORT_SPAN = 12000
_port_lock = threading.Lock()
_next_port: list[int] = []


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A loopback TCP port free now, outside the ephemeral range (so no outgoing connection takes it)."""
    low = _ephemeral_low()
    if low - PORT_SPAN < 1024:  # an unusual ephemeral range: no room below it
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    first = low - PORT_SPAN
    with _port_lock:
        if not _next_port:
            _next_port.append(first + (os.getpid() * 97) % PORT_SPAN)
        for _ in range(PORT_SPAN):
            port = _next_port[0]
            _next_port[0] = first + (port + 1 - first) % PORT_SPAN
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue  # taken: the next one
                return port
    raise OSError(f"no free loopback port in {first}-{low - 1}")
