"""The HTTP server's parts in process: query decoding (exactly Starlette's, which the extension used before),
the bytes of a response, and write flow control with a fake transport. The real-socket behaviour is pinned by
test_request_limits.py, test_connections.py and test_hardening.py."""

from __future__ import annotations

import asyncio
import random
from urllib.parse import parse_qsl

from cache_extension.http_common import Request, Response
from cache_extension.http_protocol import HttpProtocol, encode
from cache_extension.http_server import Connections

PIECES = ["name", "=", "&", "+", "%", "%2", "%zz", "%20", "%c3%a9", "%ff", "%26", "%3D", "é", "\xff", "a", "b", ";",
          "", "==", "x y", "%00"]


def starlette_params(query: bytes) -> dict[str, list[str]]:
    """What starlette.datastructures.QueryParams made of scope["query_string"]."""
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        params.setdefault(key, []).append(value)
    return params


def test_query_decoding_is_starlettes():
    rnd = random.Random(13)
    queries = [b"", b"name", b"name=", b"=x", b"name=a=b", b"name=a+b", b"name=%2Fa%2Fb", b"name=\xc3\xa9", b"&",
               b"name=a&name=b", b"a=1;b=2"]
    queries += ["".join(rnd.choices(PIECES, k=rnd.randint(1, 8))).encode("latin-1", "replace") for _ in range(5000)]
    for query in queries:
        assert Request("GET", "/parameters", query, [], None).params() == starlette_params(query), query


def test_a_response_as_sent():
    response = Response(200, b"value", b"text/plain; charset=utf-8", [(b"x-cache", b"hit")])
    head, body = encode(response, head=False, close=False).split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK" and body == b"value"
    assert lines[1].startswith(b"date: ") and lines[1].endswith(b" GMT")
    assert lines[2:] == [b"content-type: text/plain; charset=utf-8", b"x-cache: hit", b"content-length: 5"]
    # HEAD: the same headers, Content-Length included, and no body; a closing answer says so.
    head_only = encode(response, head=True, close=True)
    assert head_only.endswith(b"content-length: 5\r\nconnection: close\r\n\r\n")
    assert encode(Response(599, b""), head=False, close=False).startswith(b"HTTP/1.1 599 \r\n")


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.reading = True
        self.closed = False

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 5000) if name == "peername" else default

    def write(self, data) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class App:
    def handle(self, request: Request) -> Response:
        return Response(200, request.path.encode())


class Server:
    def __init__(self, loop) -> None:
        self.app = App()
        self.loop = loop
        self.guard = Connections(loop)
        self.connections: set = set()
        self.tasks: set = set()
        self.stopping = False


def test_a_full_write_buffer_queues_requests_and_stops_reading():
    async def scenario() -> tuple[bytes, bytes, bool, bool]:
        protocol = HttpProtocol(Server(asyncio.get_running_loop()))
        transport = Transport()
        protocol.connection_made(transport)
        protocol.pause_writing()
        protocol.data_received(b"GET /one HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\n\r\n")
        paused = (transport.written, transport.reading)
        protocol.resume_writing()
        return paused[0], transport.written, paused[1], transport.reading

    before, after, reading_while_paused, reading_after = asyncio.run(scenario())
    assert before == b"" and not reading_while_paused
    bodies = [part.split(b"\r\n\r\n", 1)[1][:4] for part in after.split(b"HTTP/1.1 200 OK")[1:]]
    assert bodies == [b"/one", b"/two"] and reading_after
