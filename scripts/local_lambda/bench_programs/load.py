"""A small HTTP load generator, for machines without wrk: N keep-alive connections, each sending the next GET
as soon as the previous answer is complete, for a fixed duration; prints one JSON object with the count of
completed requests, the rate, errors (anything but 200) and p50/p99 latency under load.

One thread, non-blocking raw sockets under a selector: no HTTP library, so as little client cost as Python
allows. scripts/bench runs it as a process of its own, so it shares no interpreter lock with anything.

Usage: python load.py PORT PATH [--header 'Name: value'] [--connections 10] [--duration 5] [--warmup 0.5]
"""

import argparse
import json
import selectors
import socket
import time

END = b"\r\n\r\n"


class Connection:
    __slots__ = ("sock", "buffer", "need", "status", "sent_at")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.need = -1  # bytes of the current response (head and body), once its head is complete
        self.status = 0
        self.sent_at = 0.0


def content_length(head: bytes) -> int:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("response without content-length: this generator does not read chunked bodies")
    end = lower.find(b"\r\n", at + 2)
    return int(lower[at + 17:end if end >= 0 else len(lower)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--header", action="append", default=[], help="an extra request header, 'Name: value'")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds counted (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds run first and not counted")
    args = parser.parse_args()
    head = f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n" + "".join(f"{h}\r\n" for h in args.header)
    request = (head + "\r\n").encode()

    selector = selectors.DefaultSelector()
    connections = []
    for _ in range(args.connections):
        sock = socket.create_connection(("127.0.0.1", args.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        connection = Connection(sock)
        selector.register(sock, selectors.EVENT_READ, connection)
        connections.append(connection)

    clock = time.perf_counter
    started = clock()
    counted_from = started + args.warmup
    end = counted_from + args.duration
    for connection in connections:
        connection.sent_at = clock()
        connection.sock.sendall(request)
    completed = errors = closed = 0
    latencies: list[float] = []
    while connections:
        now = clock()
        if now >= end:
            break
        for key, _ in selector.select(end - now):
            connection = key.data
            try:
                data = connection.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:  # the server closed it: count it, go on with the others
                closed += 1
                selector.unregister(connection.sock)
                connection.sock.close()
                connections.remove(connection)
                continue
            buffer = connection.buffer + data
            while True:
                if connection.need < 0:
                    at = buffer.find(END)
                    if at < 0:
                        break
                    connection.status = int(buffer[9:12])
                    connection.need = at + len(END) + content_length(buffer[:at])
                if len(buffer) < connection.need:
                    break
                buffer = buffer[connection.need:]
                connection.need = -1
                done = clock()
                if connection.sent_at >= counted_from and done <= end:
                    completed += 1
                    latencies.append(done - connection.sent_at)
                    if connection.status != 200:
                        errors += 1
                connection.sent_at = done
                connection.sock.sendall(request)  # about 150 bytes: never blocks on an empty socket buffer
            connection.buffer = buffer
    for connection in connections:
        connection.sock.close()
    latencies.sort()

    def percentile(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 4) if latencies else None

    print(json.dumps({
        "tool": "Python load generator (bench_programs/load.py)",
        "connections": args.connections, "duration_s": args.duration, "requests": completed,
        "requests_per_s": round(completed / args.duration, 1), "errors": errors, "connections_closed": closed,
        "p50_ms": percentile(0.50), "p99_ms": percentile(0.99),
    }))


if __name__ == "__main__":
    main()
