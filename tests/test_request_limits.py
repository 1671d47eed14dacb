"""Request parsing limits, against the real extension process: header limits enforced on the bytes as they
arrive (peak RSS under huge headers), request bodies refused without being read (chunked or Content-Length),
pipelined requests answered in order before a malformed one's error, and every proxy header refused.

Every socket has a timeout and every loop a bound: a misbehaving extension fails a test, never hangs it."""

from __future__ import annotations

import json
import selectors
import socket
import threading
import time
from pathlib import Path

import pytest

from cache_extension.http_common import MAX_HEADER_BYTES, MAX_URL_BYTES, PROXY_HEADERS, is_proxy_header
from conftest import SAMPLE_CONFIG, Reply, close_and_check, launch
from test_hardening import (ITEM, PARAMETER, SECRET, TOKEN_HEADER, app_request, error_code, exchange,
                            in_process_app, raw_request, send)

__all__ = ["in_process_app"]  # a fixture, imported for the in-process tests below

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def ext(layer_dir, moto, tmp_path_factory):
    handle = launch(layer_dir, moto, tmp_path_factory.mktemp("limits"), SAMPLE_CONFIG)
    yield handle
    close_and_check(handle)


def status_of(pid: int, field: str) -> int:
    """A /proc/PID/status field in kB (VmHWM, VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


class Flood:
    """One connection sending `head` and then up to `total` bytes of `filler` in chunks until the server closes
    it. Records the bytes it managed to send and the response, if one came. A server that answers but goes
    on reading gets all `total` bytes."""

    def __init__(self, port: int, head: bytes, total: int, filler: bytes, *, deadline: float = 30.0) -> None:
        self.port, self.head, self.total, self.filler, self.deadline = port, head, total, filler, deadline
        self.sent = 0
        self.answer = b""
        self.closed = False  # the server closed (EOF, reset or a broken pipe) before everything was sent
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc

    def _run(self) -> None:
        stop = time.monotonic() + self.deadline
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.setblocking(False)
            pending = memoryview(self.head)
            with selectors.DefaultSelector() as selector:
                selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                while not self.closed:
                    if time.monotonic() > stop:
                        raise AssertionError(f"not closed within {self.deadline} s; {self.sent} bytes sent")
                    if not pending and self.sent >= len(self.head) + self.total:
                        self._read(sock)  # all of it sent, the server has not closed: any answer
                        return
                    for key, events in selector.select(timeout=0.5):
                        if events & selectors.EVENT_READ:
                            self._read(sock)  # an answer; keep sending until the server closes
                            break
                        if not pending:
                            pending = memoryview(self.filler)
                        try:
                            count = sock.send(pending)
                        except (BrokenPipeError, ConnectionResetError):
                            self.closed = True
                            self._read(sock)
                            break
                        except BlockingIOError:
                            continue
                        self.sent += count
                        pending = pending[count:]

    def _read(self, sock: socket.socket) -> None:
        """What the server sent, until it closes, 2 s pass or 64 KiB came."""
        sock.setblocking(True)
        sock.settimeout(2)
        try:
            while len(self.answer) < 65536:
                data = sock.recv(65536)
                if not data:
                    self.closed = True
                    break
                self.answer += data
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
        except TimeoutError:
            pass
        sock.setblocking(False)

    @property
    def status(self) -> int | None:
        if not self.answer.startswith(b"HTTP/1.1 "):
            return None
        return int(self.answer[9:12])

    @property
    def body(self) -> dict | None:
        if b"\r\n\r\n" not in self.answer:
            return None
        head, body = self.answer.split(b"\r\n\r\n", 1)
        return json.loads(body) if b"application/json" in head.lower() else None


def flood_all(floods: list[Flood]) -> None:
    threads = [threading.Thread(target=flood.run, daemon=True) for flood in floods]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a flooding connection did not finish"
    for flood in floods:
        if flood.error is not None:
            raise flood.error


# --- item 4: header limits on the bytes as they arrive -----------------------------------------------


def test_four_24_mib_header_values_grow_peak_rss_by_at_most_16_mib(layer_dir, moto, tmp_path):
    handle = launch(layer_dir, moto, tmp_path / "rss", SAMPLE_CONFIG)
    try:
        pid = handle.extension.process.pid
        assert b"cache_extension" in Path(f"/proc/{pid}/cmdline").read_bytes() or b"cache-extension" in Path(
            f"/proc/{pid}/cmdline").read_bytes()
        assert handle.request("/health", token=None).status == 200
        before = status_of(pid, "VmHWM")
        marker = b"huge-header-value-"
        head = raw_request("GET", "/health", [(TOKEN_HEADER, handle.token)])[:-2] + b"X-Big: " + marker
        floods = [Flood(handle.port, head, 24 * MIB, b"v" * 65536) for _ in range(4)]
        flood_all(floods)
        after = status_of(pid, "VmHWM")
        growth_mib = (after - before) / 1024
        sent = [flood.sent for flood in floods]
        print(f"peak RSS (VmHWM) of the extension: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after "
              f"four 24 MiB header values: +{growth_mib:.1f} MiB; bytes each connection sent before the server "
              f"answered or closed: {sent}; statuses {[flood.status for flood in floods]}")
        assert growth_mib <= 16
        for flood in floods:
            assert flood.sent < 8 * MIB  # the server stopped reading long before 24 MiB
            assert (flood.status, flood.body and flood.body["error"]) in ((431, "HeadersTooLarge"), (None, None))
        assert any(flood.status == 431 for flood in floods), "no connection saw the 431"
        assert handle.extension.process.poll() is None
        assert handle.read("parameters", PARAMETER[0]).text == PARAMETER[1]
        assert marker.decode() not in handle.output  # the request is refused without quoting any of it
    finally:
        close_and_check(handle)


def test_a_huge_header_is_answered_431_at_once(ext):
    head = raw_request("GET", f"/parameters?name={PARAMETER[0]}", [(TOKEN_HEADER, ext.token)])[:-2] + b"X-Big: "
    flood = Flood(ext.port, head, 32 * MIB, b"v" * 65536)
    flood_all([flood])
    print(f"a 32 MiB header value: {flood.sent} bytes sent before the server answered {flood.status}")
    assert (flood.status, flood.body) == (431, {"error": "HeadersTooLarge",
                                                "message": "at most 64 headers and 16384 bytes"})
    assert b"\r\nconnection: close\r\n" in flood.answer.lower()
    assert flood.sent < 8 * MIB  # what loopback's socket buffers take: the server stopped reading at once
    # Logged with the rule it broke, never the request's bytes.
    deadline = time.monotonic() + 5
    while "refused a request: at most 64 headers and 16384 bytes" not in ext.output:
        assert time.monotonic() < deadline, "the refusal was not logged"
        time.sleep(0.05)
    assert "vvvvvvvv" not in ext.output


def test_many_small_headers_arriving_are_431(ext):
    head = raw_request("GET", "/health")[:-2]
    flood = Flood(ext.port, head, 32 * MIB, b"".join(b"X-H%d: v\r\n" % i for i in range(4096)))
    flood_all([flood])
    assert (flood.status, flood.body["error"]) == (431, "HeadersTooLarge")
    assert flood.sent < 8 * MIB  # what loopback's socket buffers take: the server stopped reading at once


def test_a_huge_url_is_answered_414(ext):
    flood = Flood(ext.port, b"GET /parameters?name=", 32 * MIB, b"a" * 65536)
    flood_all([flood])
    assert (flood.status, flood.body["error"]) == (414, "URITooLong")
    assert flood.sent < 8 * MIB  # what loopback's socket buffers take: the server stopped reading at once
    # Long but within MAX_URL_BYTES: the routes' own rules answer (the query's 8192 bytes: 400).
    reply = send(ext, "GET", f"/parameters?name={PARAMETER[0]}&pad=" + "x" * (MAX_URL_BYTES - 100))
    assert (reply.status, error_code(reply)) == (400, "BadRequest")


def test_headers_just_under_the_limits_are_served(ext):
    target = f"/parameters?name={PARAMETER[0]}"
    # 16 KiB of names and values in all: Host (4 + 9), the token header and X-Big's name (5) and value.
    room = MAX_HEADER_BYTES - (4 + 9) - (len(TOKEN_HEADER) + len(ext.token)) - 5
    reply = send(ext, "GET", target, [("X-Big", "v" * room)])
    assert (reply.status, reply.text) == (200, PARAMETER[1])
    reply = send(ext, "GET", target, [("X-Big", "v" * (room + 1))])
    assert (reply.status, error_code(reply)) == (431, "HeadersTooLarge")
    # 64 headers pass, 65 do not; in a pipeline the connection carries on after a served one.
    with socket.create_connection(("127.0.0.1", ext.port), timeout=5) as sock:
        sock.sendall(raw_request("GET", target, [(TOKEN_HEADER, ext.token)] + [(f"X-F{i}", "v") for i in range(62)])
                     + raw_request("GET", target, [(TOKEN_HEADER, ext.token)] + [(f"X-F{i}", "v") for i in range(63)]))
        first, second = read_responses(sock, 2)
    assert (first.status, second.status) == (200, 431)


# --- item 4: request bodies refused without being read ---------------------------------------------------


def chunk(size: int) -> bytes:
    return b"%x\r\n" % size + b"c" * size + b"\r\n"


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
@pytest.mark.parametrize("method,target", [("POST", f"/refresh?name={PARAMETER[0]}"),
                                           ("GET", f"/parameters?name={PARAMETER[0]}")])
def test_a_100_mib_body_is_refused_without_being_read(ext, framing, method, target):
    body_header = ("Transfer-Encoding", "chunked") if framing == "chunked" else ("Content-Length", str(100 * MIB))
    head = raw_request(method, target, [(TOKEN_HEADER, ext.token), body_header])
    filler = chunk(65536 - 10) if framing == "chunked" else b"b" * 65536
    flood = Flood(ext.port, head, 100 * MIB, filler)
    started = time.monotonic()
    flood_all([flood])
    print(f"{method} with a 100 MiB {framing} body: {flood.sent / MIB:.2f} MiB sent before the server "
          f"answered {flood.status} and closed ({time.monotonic() - started:.2f} s)")
    # Loopback's socket buffers take a few MiB before the sender blocks: far below 100 MiB.
    assert flood.sent < 16 * MIB
    assert (flood.status, flood.body) == (413, {"error": "BodyTooLarge",
                                                "message": "requests carry no body (arguments go in the query)"})
    assert b"\r\nconnection: close\r\n" in flood.answer.lower()


def test_small_bodies_are_still_read_and_the_connection_kept(ext):
    target = f"/parameters?name={PARAMETER[0]}"
    with socket.create_connection(("127.0.0.1", ext.port), timeout=5) as sock:
        sock.sendall(raw_request("GET", target, [(TOKEN_HEADER, ext.token), ("Content-Length", "1024")]) + b"x" * 1024
                     + raw_request("GET", target, [(TOKEN_HEADER, ext.token)]))
        replies = read_responses(sock, 2)
    assert [(reply.status, reply.body.decode()) for reply in replies] == [(200, PARAMETER[1])] * 2


def test_the_guard_refuses_transfer_encoding_in_process(in_process_app):
    token = (b"x-aws-parameters-secrets-token", b"expected-token")
    for value in (b"chunked", b"gzip, chunked", b"identity"):
        status, body = app_request(in_process_app, headers=[token, (b"transfer-encoding", value)])
        assert (status, json.loads(body)["error"]) == (413, "BodyTooLarge")


# --- item 5: pipelining ------------------------------------------------------------------------------


def read_responses(sock: socket.socket, count: int) -> list[Reply]:
    """`count` responses read in order from one connection (every response here has a Content-Length)."""
    replies = []
    with sock.makefile("rb") as reader:
        for number in range(count):
            status_line = reader.readline(65537)
            assert status_line.startswith(b"HTTP/1.1 "), f"response {number + 1}: {status_line[:80]!r}"
            headers = {}
            while (line := reader.readline(65537)) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            replies.append(Reply(int(status_line[9:12]), headers, reader.read(int(headers["content-length"]))))
    return replies


def closed_after(sock: socket.socket) -> bool:
    """The server closed the connection (EOF or reset) within 5 s."""
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


MALFORMED = {
    "bad header name": b"GET /health HTTP/1.1\r\nBad Name: x\r\n\r\n",
    "bad method": b"G\x01T /health HTTP/1.1\r\n\r\n",
    "bad version": b"GET /health HTTP/7.7\r\n\r\n",
}


@pytest.mark.parametrize("malformed", sorted(MALFORMED))
def test_pipelined_requests_are_answered_before_the_400(ext, malformed):
    absent = "/aws/reference/secretsmanager/absent-secret"  # not configured: 404 from the route
    requests = [
        raw_request("GET", f"/parameters?name={PARAMETER[0]}", [(TOKEN_HEADER, ext.token)]),
        raw_request("GET", f"/secrets?name={SECRET[0]}", [(TOKEN_HEADER, ext.token)]),
        raw_request("GET", "/health"),
        raw_request("GET", f"/dynamodb?name={ITEM}", [(TOKEN_HEADER, ext.token)]),
        raw_request("GET", f"/parameters?name={absent}", [(TOKEN_HEADER, ext.token)]),
    ]
    with socket.create_connection(("127.0.0.1", ext.port), timeout=10) as sock:
        sock.sendall(b"".join(requests) + MALFORMED[malformed] + raw_request("GET", "/health"))
        replies = read_responses(sock, len(requests) + 1)
        closed = closed_after(sock)
    statuses = [reply.status for reply in replies]
    assert statuses == [200, 200, 200, 200, 404, 400], statuses
    assert replies[0].body.decode() == PARAMETER[1]
    assert replies[1].body.decode() == SECRET[1]
    assert json.loads(replies[2].body) == {"status": "ready"}
    assert json.loads(replies[-1].body)["error"] == "BadRequest"
    assert replies[-1].headers["connection"] == "close"
    assert closed  # nothing after the malformed request is answered


def test_a_pipelined_request_waiting_on_aws_is_answered_before_the_431(ext):
    # A forced refresh waits for AWS (moto): the refusal behind it waits for its answer.
    requests = [raw_request("POST", f"/refresh?name={PARAMETER[0]}", [(TOKEN_HEADER, ext.token)]),
                raw_request("GET", f"/parameters?name={PARAMETER[0]}", [(TOKEN_HEADER, ext.token)])]
    huge = raw_request("GET", "/health")[:-2] + b"X-Big: " + b"v" * (64 * 1024) + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", ext.port), timeout=10) as sock:
        sock.sendall(b"".join(requests) + huge)
        replies = read_responses(sock, 3)
        closed = closed_after(sock)
    assert [reply.status for reply in replies] == [200, 200, 431]
    assert json.loads(replies[0].body)["refreshed"] == [{"source": "parameters", "name": PARAMETER[0]}]
    assert closed


def test_a_malformed_request_alone_is_still_a_json_400(ext):
    with socket.create_connection(("127.0.0.1", ext.port), timeout=5) as sock:
        sock.sendall(MALFORMED["bad header name"])
        (reply,) = read_responses(sock, 1)
        assert closed_after(sock)
    assert (reply.status, json.loads(reply.body)["error"]) == (400, "BadRequest")


# --- item 12: proxy headers --------------------------------------------------------------------------

RELAYED = [("Forwarded", "for=10.9.9.9"), ("X-Real-IP", "10.9.9.9"), ("X-Forwarded-For", "127.0.0.1"),
           ("X-Forwarded-Host", "evil.example"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Port", "443"),
           ("Via", "1.1 squid"), ("forwarded", ""), ("x-real-ip", "127.0.0.1")]


@pytest.mark.parametrize("name,value", RELAYED)
def test_every_proxy_header_is_refused(ext, name, value):
    for method, target in (("GET", f"/parameters?name={PARAMETER[0]}"), ("GET", "/health"),
                           ("POST", f"/refresh?name={PARAMETER[0]}")):
        reply = send(ext, method, target, [(name, value)])
        assert (reply.status, error_code(reply)) == (400, "ForwardedRequest"), (name, target)
        assert value.encode() not in reply.body or not value  # the header's value is not echoed


def test_proxy_header_rule_in_process(in_process_app):
    token = (b"x-aws-parameters-secrets-token", b"expected-token")
    for name in sorted(PROXY_HEADERS) + ["x-forwarded-server", "x-forwarded-prefix"]:
        assert is_proxy_header(name.encode())
        status, body = app_request(in_process_app, headers=[token, (name.encode(), b"x")])
        assert (status, json.loads(body)["error"]) == (400, "ForwardedRequest"), name
    # Look-alikes that no proxy adds are not refused.
    for name in (b"x-forwarded", b"viaduct", b"x-real-ipv6", b"forwarded-by"):
        assert not is_proxy_header(name)
        assert app_request(in_process_app, headers=[token, (name, b"x")])[0] == 200, name
