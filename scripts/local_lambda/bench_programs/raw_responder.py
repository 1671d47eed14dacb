"""The floor: a minimal raw-socket HTTP/1.1 responder that answers every request with exactly the bytes the
extension sent for a cache hit (status line, headers and body, captured by scripts/bench in the same run).

One thread, non-blocking sockets under a selector, so it serves many keep-alive connections at once (the
throughput comparison runs 10) at the least cost a server can have: no parsing beyond finding the end of
each request's head, no routing, no allocation per request beyond the bytes themselves.

Run as a separate process: python raw_responder.py PORT RESPONSE_FILE
"""

import selectors
import socket
import sys
from pathlib import Path

END = b"\r\n\r\n"


def main() -> None:
    port, response = int(sys.argv[1]), Path(sys.argv[2]).read_bytes()
    server = socket.create_server(("127.0.0.1", port), backlog=128)
    server.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ, None)
    while True:
        for key, mask in selector.select():
            if key.data is None:
                accept(server, selector)
            else:
                serve(key.fileobj, key.data, mask, selector, response)


def accept(server: socket.socket, selector: selectors.BaseSelector) -> None:
    while True:
        try:
            connection, _ = server.accept()
        except BlockingIOError:
            return
        connection.setblocking(False)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # state: [bytes received after the last complete request head, bytes not yet sent, waiting to write]
        selector.register(connection, selectors.EVENT_READ, [b"", b"", False])


def serve(connection, state: list, mask: int, selector: selectors.BaseSelector, response: bytes) -> None:
    if mask & selectors.EVENT_READ:
        try:
            data = connection.recv(65536)
        except (ConnectionResetError, BlockingIOError):
            data = b""
        if not data:
            selector.unregister(connection)
            connection.close()
            return
        pending = state[0] + data
        complete = pending.count(END)  # GET requests: a head and no body
        if complete:
            state[0] = pending[pending.rfind(END) + len(END):]
            state[1] += response * complete
        else:
            state[0] = pending
    if state[1]:
        try:
            sent = connection.send(state[1])
        except BlockingIOError:
            sent = 0
        except (ConnectionResetError, BrokenPipeError):
            selector.unregister(connection)
            connection.close()
            return
        state[1] = state[1][sent:]
    if bool(state[1]) != state[2]:  # only when it changes: one system call fewer per request
        state[2] = bool(state[1])
        selector.modify(connection, selectors.EVENT_READ | (selectors.EVENT_WRITE if state[2] else 0), state)


if __name__ == "__main__":
    main()
