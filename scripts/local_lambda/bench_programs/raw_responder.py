"""The floor: a minimal single-threaded raw-socket HTTP/1.1 responder answering every request with the
same bytes the extension sends for a cache hit. Run as a separate process: python raw_responder.py PORT BODY"""

import socket
import sys


def main() -> None:
    port, body = int(sys.argv[1]), sys.argv[2].encode()
    response = (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"x-cache: hit\r\nage: 0\r\n\r\n%s" % (len(body), body))
    server = socket.create_server(("127.0.0.1", port))
    while True:
        connection, _ = server.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        while True:
            data = connection.recv(65536)
            if not data:
                break
            buffer += data
            while b"\r\n\r\n" in buffer:
                _, buffer = buffer.split(b"\r\n\r\n", 1)
                connection.sendall(response)
        connection.close()


if __name__ == "__main__":
    main()
