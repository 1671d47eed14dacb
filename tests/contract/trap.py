"""A port that counts every connection made to it: where cases.json's "$TRAP_PORT" points a client that must send
nothing (no token). It answers any request 200 with the text "trap", so that a client which does send gets a value
instead of the error its case expects, and the test that ran the runner fails if any connection was counted."""

from __future__ import annotations

import socket
import threading

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=0\r\nContent-Length: 4\r\n"
          b"Connection: close\r\n\r\ntrap")
READ_TIMEOUT = 2.0  # seconds a connection may take to send its request head before it is answered anyway


class Trap:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="contract-trap", daemon=True)
        self._thread.start()

    def count(self) -> int:
        with self._lock:
            return self.connections

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    @staticmethod
    def _answer(connection: socket.socket) -> None:
        with connection:
            connection.settimeout(READ_TIMEOUT)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = connection.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                connection.sendall(ANSWER)
            except OSError:
                pass

    def close(self) -> None:
        try:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in _serve (close alone may not)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Trap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
