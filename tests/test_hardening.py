"""The security model, proven against the real extension process (launched from the built layer under the
Extensions API emulator, with moto as AWS): the token, loopback only, X-Forwarded-For, the allow-list, the
request limits, slow clients, and a fuzz of malformed requests sent as raw bytes.

Every socket operation here has a timeout and every loop a bound: a misbehaving extension fails a test,
it never hangs the suite."""

from __future__ import annotations

import hmac
import http.client
import ipaddress
import json
import os
import selectors
import socket
import statistics
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httptools
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cache_extension.app import create_app
from cache_extension.config import ConfigError, parse_config
from cache_extension.http_server import HEADER_TIMEOUT, MAX_CONNECTIONS
from cache_extension.store import Store
from conftest import REGION, SECRET_VALUES, SAMPLE_CONFIG, Reply, close_and_check, launch, secret_leaks, unique
from local_lambda.procfs import listening_sockets
from test_app_errors import call

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"
PARAMETER = ("CacheExtensions_Parameter1", "MyParameter")  # created by the session's moto fixture
SECRET = ("secret_info", "MySecret")
ITEM = "DynamoDbTable-pKey1-sKey1"


# --- the extension under test ----------------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    secure: str          # a configured SecureString
    secure_value: str
    prefix: str          # allow: parameters "<prefix>/allowed/*"
    secret_prefix: str   # allow: secrets "<secret_prefix>/allowed/*"

    @property
    def config(self) -> str:
        return SAMPLE_CONFIG.replace("      - /aws/reference/secretsmanager/secret_info\n",
                                     f"      - /aws/reference/secretsmanager/secret_info\n      - {self.secure}\n") + (
            f"allow:\n  parameters: ['{self.prefix}/allowed/*']\n  secrets: ['{self.secret_prefix}/allowed/*']\n")


@pytest.fixture(scope="module")
def names(moto) -> Names:
    prefix, secret_prefix = unique("/hardening"), unique("hardening")
    names = Names(f"{prefix}/secure", f"secure-{unique('value')}", prefix, secret_prefix)
    SECRET_VALUES.update({names.secure_value, "allowed-secret-value", "unlisted-secret-value"})
    ssm = moto.client("ssm", REGION)
    ssm.put_parameter(Name=names.secure, Value=names.secure_value, Type="SecureString", Overwrite=True)
    ssm.put_parameter(Name=f"{prefix}/allowed/present", Value="allowed value", Type="String", Overwrite=True)
    ssm.put_parameter(Name=f"{prefix}/other", Value="unlisted value", Type="String", Overwrite=True)
    ssm.put_parameter(Name=f"{prefix}/allowedx", Value="unlisted value", Type="String", Overwrite=True)
    sm = moto.client("secretsmanager", REGION)
    sm.create_secret(Name=f"{secret_prefix}/allowed/present", SecretString="allowed-secret-value")
    sm.create_secret(Name=f"{secret_prefix}/other", SecretString="unlisted-secret-value")
    return names


@pytest.fixture(scope="module")
def ext(layer_dir, moto, names, tmp_path_factory):
    handle = launch(layer_dir, moto, tmp_path_factory.mktemp("hardening"), names.config)
    yield handle
    close_and_check(handle)


# --- raw HTTP over a socket --------------------------------------------------------------------------


def raw_request(method: str, target: str, headers: list[tuple[str, str]] = ()) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def exchange(port: int, data: bytes, *, method: str = "GET", host: str = "127.0.0.1", timeout: float = 5.0) -> Reply:
    """Send raw bytes on a new connection and read one response."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock, method=method)
        response.begin()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())


def send(ext, method: str, target: str, headers: list[tuple[str, str]] | None = None, *, token: str | None = "") -> Reply:
    """One request with the extension's token (token="" ), another token, or none (token=None)."""
    all_headers = list(headers or [])
    if token is not None:
        all_headers.append((TOKEN_HEADER, token or ext.token))
    return exchange(ext.port, raw_request(method, target, all_headers), method=method)


def error_code(reply: Reply) -> str:
    """Our routes answer {"error", "message"}; AWS's routes AWS's own {"__type", "message"} (issue 16)."""
    body = json.loads(reply.body)
    assert set(body) in ({"error", "message"}, {"__type", "message"}), body
    return body.get("error") or body["__type"]


# Every route that needs the token (with a request each would answer 200 given it), and an unknown path.
TOKEN_ROUTES = [
    ("GET", f"/parameters?name={PARAMETER[0]}"),
    ("GET", f"/secrets?name={SECRET[0]}"),
    ("GET", f"/dynamodb?name={ITEM}"),
    ("HEAD", f"/parameters?name={PARAMETER[0]}"),
    ("GET", f"/systemsmanager/parameters/get?name={PARAMETER[0]}"),
    ("GET", f"/secretsmanager/get?secretId={SECRET[0]}"),
    ("GET", "/stats"),
    ("POST", f"/refresh?name={PARAMETER[0]}"),
    ("GET", "/no-such-route"),
]


# --- the token ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method,target", TOKEN_ROUTES)
def test_every_route_but_health_needs_the_token(ext, method, target):
    missing = send(ext, method, target, token=None)
    # 403 on the route the Secrets Manager Agent shares, as the agent answers (issue 16)
    assert missing.status == (403 if target.startswith("/secretsmanager/get") else 401)
    wrong = [send(ext, method, target, token=token) for token in
             ("wrong", ext.token[:-1], ext.token + "x", ext.token.upper(), "\u00e9".encode().decode("latin-1"))]
    assert [reply.status for reply in wrong] == [403] * 5
    empty = exchange(ext.port, raw_request(method, target, [(TOKEN_HEADER, "")]), method=method)
    assert empty.status == 403
    repeated = send(ext, method, target, [(TOKEN_HEADER, ext.token)])
    assert repeated.status == 400
    if method != "HEAD":
        assert error_code(missing) == "MissingToken"
        assert {error_code(reply) for reply in wrong} == {"InvalidToken"}
        assert error_code(repeated) == "BadRequest"
    # Header names are case-insensitive: the same token under another spelling is the token.
    spelled = exchange(ext.port, raw_request(method, target, [(TOKEN_HEADER.upper(), ext.token)]), method=method)
    assert spelled.status not in (401, 403)


def test_health_needs_no_token(ext):
    for token in (None, "wrong", ""):
        reply = send(ext, "GET", "/health", token=token)
        assert (reply.status, json.loads(reply.body)) == (200, {"status": "ready"})
    # A malformed request is refused even there.
    assert send(ext, "GET", "/health", [(TOKEN_HEADER, "again")]).status == 400


def app_request(app, *, headers: list[tuple[bytes, bytes]] = (), client: tuple[str, int] = ("127.0.0.1", 50000),
                path: str = "/stats") -> tuple[int, bytes]:
    """One request to the app in this process, with these headers and this peer."""
    return call(app, path, "", token="", headers=list(headers), client=client)


@pytest.fixture
def in_process_app():
    config = parse_config("parameters:\n  - names: [p]\n", path="config.yaml", default_region=REGION, default_ttl=60)
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield create_app(config, Store(config.items, {}, executor), "expected-token")


def test_the_token_is_compared_with_hmac_compare_digest(in_process_app, monkeypatch):
    real = hmac.compare_digest
    calls = []

    def spy(presented, expected):
        calls.append((presented, expected))
        return real(presented, expected)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert app_request(in_process_app, headers=[(b"x-aws-parameters-secrets-token", b"wrong-token")])[0] == 403
    assert calls == [(b"wrong-token", b"expected-token")]
    assert app_request(in_process_app, headers=[(b"x-aws-parameters-secrets-token", b"expected-token")])[0] == 200
    assert calls[-1] == (b"expected-token", b"expected-token") and len(calls) == 2
    # compare_digest alone decides: no other comparison could let a wrong token in or keep the right one out.
    monkeypatch.setattr(hmac, "compare_digest", lambda presented, expected: True)
    assert app_request(in_process_app, headers=[(b"x-aws-parameters-secrets-token", b"wrong-token")])[0] == 200
    monkeypatch.setattr(hmac, "compare_digest", lambda presented, expected: False)
    assert app_request(in_process_app, headers=[(b"x-aws-parameters-secrets-token", b"expected-token")])[0] == 403


def test_wrong_token_timing_is_measured(ext):
    """Printed, not asserted: wrong tokens sharing no leading byte vs all but the last with the real one."""
    variants = {"0 leading bytes shared": ("#" * len(ext.token)), "all but one shared": ext.token[:-1] + "#"}
    samples: dict[str, list[float]] = {label: [] for label in variants}
    connection = http.client.HTTPConnection("127.0.0.1", ext.port, timeout=5)
    try:
        for _ in range(1000):
            for label, token in variants.items():
                started = time.perf_counter()
                connection.request("GET", "/stats", headers={TOKEN_HEADER: token})
                response = connection.getresponse()
                response.read()
                samples[label].append(time.perf_counter() - started)
                assert response.status == 403
    finally:
        connection.close()
    for label, times in samples.items():
        print(f"wrong token, {label}: mean {statistics.mean(times) * 1e6:.1f} us, "
              f"median {statistics.median(times) * 1e6:.1f} us over {len(times)} requests")


# --- loopback only -------------------------------------------------------------------------------------


def ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def non_loopback_addresses() -> list[str]:
    """This machine's own addresses other than loopback (IPv4 from fib_trie, global IPv6 from if_inet6)."""
    found = set()
    trie = Path("/proc/net/fib_trie")
    if trie.exists():
        previous = ""
        for line in trie.read_text().splitlines():
            if "/32 host LOCAL" in line and previous:
                found.add(previous)
            parts = line.strip().split()
            previous = parts[1] if len(parts) == 2 and parts[0] in ("|--", "+--") else ""
    inet6 = Path("/proc/net/if_inet6")
    if inet6.exists():
        for line in inet6.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 4 and fields[3] == "00":  # global scope
                found.add(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return sorted(address for address in found if not ipaddress.ip_address(address).is_loopback)


def test_listening_sockets_are_bound_to_loopback_only(ext):
    listening = listening_sockets(ext.extension.process.pid)
    expected = {("127.0.0.1", ext.port)} | ({("::1", ext.port)} if ipv6_loopback() else set())
    assert listening == expected


def test_a_request_over_ipv6_loopback_works(ext):
    if not ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (socket.has_ipv6 false or ::1 cannot be bound)")
    reply = exchange(ext.port, raw_request("GET", f"/parameters?name={PARAMETER[0]}", [(TOKEN_HEADER, ext.token)]),
                     host="::1")
    assert (reply.status, reply.text) == (200, PARAMETER[1])


def test_the_port_is_closed_on_every_other_address(ext):
    addresses = non_loopback_addresses()
    if not addresses:
        pytest.skip("this machine has no address but loopback")
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            with pytest.raises((ConnectionRefusedError, TimeoutError, OSError)) as refused:
                sock.connect((address, ext.port))
            print(f"{address}:{ext.port}: {type(refused.value).__name__}")


# --- X-Forwarded-For ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method,target", TOKEN_ROUTES + [("GET", "/health")])
def test_x_forwarded_for_is_refused_even_with_the_token(ext, method, target):
    for forwarded in ("127.0.0.1", "10.9.9.9", "10.9.9.9, 127.0.0.1"):
        # Not 403 NotLoopback for 10.9.9.9: the header never becomes the peer (the server takes it from the socket).
        reply = send(ext, method, target, [("X-Forwarded-For", forwarded)])
        assert reply.status == 400
        if method != "HEAD":
            assert error_code(reply) == "ForwardedRequest"
    assert send(ext, method, target, [("x-forwarded-for", "")]).status == 400


def test_other_proxy_headers_are_refused_too(ext):
    """Each one alone: tests/test_request_limits.py. None becomes the peer: 400, not 403 NotLoopback."""
    headers = [("X-Real-IP", "10.9.9.9"), ("Forwarded", "for=10.9.9.9"), ("X-Forwarded-Host", "evil.example")]
    reply = send(ext, "GET", f"/parameters?name={PARAMETER[0]}", headers)
    assert (reply.status, error_code(reply)) == (400, "ForwardedRequest")


def test_the_peer_is_checked_and_forwarded_for_cannot_launder_it(in_process_app):
    token = (b"x-aws-parameters-secrets-token", b"expected-token")
    for client in (("10.0.0.5", 1234), ("::ffff:10.0.0.5", 1234), ("192.0.2.2", 1), ("fd00::2", 1)):
        for extra in ([], [(b"x-forwarded-for", b"127.0.0.1")]):
            status, body = app_request(in_process_app, headers=[token, *extra], client=client)
            assert (status, json.loads(body)["error"]) == (403, "NotLoopback"), client
    for client in (("127.0.0.1", 1), ("127.1.2.3", 1), ("::1", 1), ("::ffff:127.0.0.1", 1)):
        assert app_request(in_process_app, headers=[token], client=client)[0] == 200, client
        status, body = app_request(in_process_app, headers=[token, (b"x-forwarded-for", b"10.0.0.5")], client=client)
        assert (status, json.loads(body)["error"]) == (400, "ForwardedRequest")


# --- the allow-list ----------------------------------------------------------------------------------


def test_names_neither_configured_nor_allowed_are_404_without_an_aws_call(ext, names, moto):
    moto.reset_calls()
    unlisted_parameter, unlisted_secret = f"{names.prefix}/other", f"{names.secret_prefix}/other"
    refused = [
        f"/parameters?name={quote(unlisted_parameter)}",
        f"/parameters?name={quote(names.prefix + '/allowedx')}",  # the prefix is "<prefix>/allowed/", not "allowed"
        f"/secrets?name={quote(unlisted_secret)}",
        "/dynamodb?name=DynamoDbTable-pKey1-sKey2",
        "/dynamodb?name=DynamoDbTable-pKey1",
        f"/systemsmanager/parameters/get?name={quote(unlisted_parameter)}&withDecryption=true",
        f"/systemsmanager/parameters/get?name={quote(unlisted_parameter)}&version=1",
        f"/secretsmanager/get?secretId={quote(unlisted_secret)}",
        f"/secretsmanager/get?secretId={quote(unlisted_secret)}&versionStage=AWSPREVIOUS",
        f"/parameters?name={SECRET[0]}",  # configured under secrets, not parameters
        f"/secrets?name={PARAMETER[0]}",
    ]
    for target in refused:
        reply = send(ext, "GET", target)
        assert (reply.status, error_code(reply)) == (404, "NotConfigured"), target
        assert b"unlisted" not in reply.body
    for name in (unlisted_parameter, unlisted_secret):
        reply = send(ext, "POST", f"/refresh?name={quote(name)}")
        assert (reply.status, error_code(reply)) == (404, "NotConfigured")
    assert moto.calls() == 0


def test_an_allow_prefix_admits_only_names_under_it(ext, names, moto):
    present = send(ext, "GET", f"/parameters?name={quote(names.prefix + '/allowed/present')}")
    assert (present.status, present.text, present.headers["x-cache"]) == (200, "allowed value", "miss")
    again = send(ext, "GET", f"/parameters?name={quote(names.prefix + '/allowed/present')}")
    assert again.headers["x-cache"] == "hit"
    secret = send(ext, "GET", f"/secrets?name={quote(names.secret_prefix + '/allowed/present')}")
    assert (secret.status, secret.text) == (200, "allowed-secret-value")
    moto.reset_calls()
    absent = send(ext, "GET", f"/parameters?name={quote(names.prefix + '/allowed/absent')}")
    assert (absent.status, error_code(absent)) == (404, "NotFound")  # allowed, so asked, and not there
    assert moto.calls() == 1


def test_dynamodb_is_never_on_demand():
    with pytest.raises(ConfigError, match="allow"):
        parse_config("allow:\n  dynamodb: ['*']\n", path="config.yaml", default_region=REGION, default_ttl=60)
    config = parse_config("allow:\n  parameters: ['*']\n  secrets: ['*']\n", path="config.yaml",
                          default_region=REGION, default_ttl=60)
    assert config.resolve("dynamodb", ITEM) is None
    assert config.resolve("parameters", "anything") is not None


# --- request limits ----------------------------------------------------------------------------------

READ_TARGETS = ["/parameters?name={}", "/secrets?name={}", "/dynamodb?name={}",
                "/systemsmanager/parameters/get?name={}", "/secretsmanager/get?secretId={}"]


@pytest.mark.parametrize("target", READ_TARGETS)
def test_names_longer_than_2048_characters_are_400(ext, target):
    assert send(ext, "GET", target.format("a" * 2049)).status == 400
    boundary = send(ext, "GET", target.format("a" * 2048))
    assert (boundary.status, error_code(boundary)) == (404, "NotConfigured")


@pytest.mark.parametrize("target", READ_TARGETS + ["/refresh?name={}"])
def test_queries_longer_than_8192_bytes_are_400(ext, target):
    method = "POST" if target.startswith("/refresh") else "GET"
    reply = send(ext, method, target.format(PARAMETER[0] if "name" in target else SECRET[0]) + "&pad=" + "x" * 8192)
    assert (reply.status, error_code(reply)) == (400, "BadRequest")


def test_too_many_or_too_large_headers_are_431(ext):
    target = f"/parameters?name={PARAMETER[0]}"
    # Host and the token are two: 62 more make 64 (allowed), 63 more make 65.
    assert send(ext, "GET", target, [(f"X-Filler-{i}", "v") for i in range(62)]).status == 200
    reply = send(ext, "GET", target, [(f"X-Filler-{i}", "v") for i in range(63)])
    assert (reply.status, error_code(reply)) == (431, "HeadersTooLarge")
    reply = send(ext, "GET", target, [("X-Big", "v" * 16 * 1024)])
    assert (reply.status, error_code(reply)) == (431, "HeadersTooLarge")


def test_a_body_over_1024_bytes_is_413(ext):
    for method, target in (("GET", f"/parameters?name={PARAMETER[0]}"), ("POST", f"/refresh?name={PARAMETER[0]}")):
        reply = send(ext, method, target, [("Content-Length", "5000")])
        assert (reply.status, error_code(reply)) == (413, "BodyTooLarge")
    reply = exchange(ext.port, raw_request("GET", f"/parameters?name={PARAMETER[0]}",
                                           [(TOKEN_HEADER, ext.token), ("Content-Length", "1024")]) + b"x" * 1024)
    assert reply.status == 200


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "POST"])
def test_other_methods_on_read_routes_are_405_with_allow(ext, method):
    for target in [t.format(PARAMETER[0]) for t in READ_TARGETS] + ["/health", "/stats"]:
        reply = send(ext, method, target)
        assert (reply.status, reply.headers.get("allow"), error_code(reply)) == (405, "GET, HEAD", "MethodNotAllowed"), target


def test_refresh_takes_only_post(ext):
    for method in ("PUT", "DELETE", "PATCH"):
        reply = send(ext, method, f"/refresh?name={PARAMETER[0]}")
        assert (reply.status, reply.headers.get("allow")) == (405, "GET, HEAD, POST")
    reply = send(ext, "GET", f"/refresh?name={PARAMETER[0]}")
    assert reply.status == 405 and "POST" in reply.headers["allow"]


def test_head_answers_200_without_a_body(ext):
    """The bytes after HEAD's headers must be the next response's status line, not a body."""
    with socket.create_connection(("127.0.0.1", ext.port), timeout=5) as sock:
        sock.sendall(raw_request("HEAD", f"/parameters?name={PARAMETER[0]}", [(TOKEN_HEADER, ext.token)]))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "closed before HEAD's headers"
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        sock.sendall(raw_request("GET", "/health"))
        deadline = time.monotonic() + 5
        while len(rest) < 12 and time.monotonic() < deadline:
            rest += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert f"content-length: {len(PARAMETER[1])}".encode() in head.lower()
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:40]


def test_short_version_ids_are_a_bad_request_not_a_bad_gateway(ext):
    """GetSecretValue's VersionId must be 32 to 64 characters: botocore refuses a shorter one before any
    call (ParamValidationError). That is the request's fault, not AWS's: 400, not 502."""
    reply = send(ext, "GET", f"/secretsmanager/get?secretId={SECRET[0]}&versionId=short")
    assert reply.status in (400, 404), reply.body


# --- slow clients ---------------------------------------------------------------------------------------


def _closed(sock: socket.socket) -> bool:
    """The peer closed (EOF or reset): a read-ready socket with nothing to read."""
    try:
        return sock.recv(4096) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (BlockingIOError, TimeoutError):
        return False


def readable(sock: socket.socket, timeout: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        return bool(selector.select(timeout))


def _dribble(port: int, report: dict) -> None:
    """Send a request's headers one byte every 0.5 s; note when the server hangs up."""
    data = b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 100
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        opened = time.monotonic()
        for i in range(len(data)):
            if readable(sock, 0.5) and _closed(sock):
                report["closed_after"] = time.monotonic() - opened
                return
            try:
                sock.sendall(data[i:i + 1])
            except (ConnectionResetError, BrokenPipeError):
                report["closed_after"] = time.monotonic() - opened
                return
            report["sent"] = i + 1


def test_slow_clients_are_cut_off_without_blocking_others(ext):
    stalled: list[tuple[socket.socket, float]] = []
    dribbled: dict = {}
    dribbler = threading.Thread(target=_dribble, args=(ext.port, dribbled), daemon=True)
    dribbler.start()
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", ext.port), timeout=5)
            sock.sendall(b"GET /parameters?na")  # half a request line, then nothing
            stalled.append((sock, time.monotonic()))
        # A keep-alive connection left idle has no time limit (issue 12: Lambda freezes the environment
        # between invokes, and the function reuses the connection after the thaw): it must outlive the others.
        idle = socket.create_connection(("127.0.0.1", ext.port), timeout=5)
        idle.sendall(raw_request("GET", "/health"))
        idle_response = http.client.HTTPResponse(idle, method="GET")
        idle_response.begin()
        idle_response.read()

        # While they hang, the function's own reads are answered promptly.
        for _ in range(20):
            started = time.monotonic()
            reply = send(ext, "GET", f"/parameters?name={PARAMETER[0]}")
            assert (reply.status, reply.text) == (200, PARAMETER[1])
            assert time.monotonic() - started < 1.0

        closed_after: dict[int, float] = {}
        sockets = {sock.fileno(): (sock, opened) for sock, opened in stalled}
        deadline = time.monotonic() + HEADER_TIMEOUT + 3
        with selectors.DefaultSelector() as selector:
            for sock, _ in sockets.values():
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            while len(closed_after) < len(sockets) and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.2):
                    sock, opened = sockets[key.fd]
                    if _closed(sock):
                        closed_after[key.fd] = time.monotonic() - opened
                        selector.unregister(sock)
        assert len(closed_after) == len(sockets), f"{len(sockets) - len(closed_after)} connections still open"
        times = sorted(closed_after.values())
        print(f"stalled connections closed after {times[0]:.2f}..{times[-1]:.2f} s (HEADER_TIMEOUT {HEADER_TIMEOUT} s)")
        assert HEADER_TIMEOUT - 0.5 <= times[0] and times[-1] <= HEADER_TIMEOUT + 2.5
        dribbler.join(timeout=HEADER_TIMEOUT + 5)
        assert "closed_after" in dribbled, dribbled
        print(f"byte-a-0.5s client cut off after {dribbled['closed_after']:.2f} s, {dribbled.get('sent')} bytes sent")
        assert HEADER_TIMEOUT - 0.5 <= dribbled["closed_after"] <= HEADER_TIMEOUT + 2
        idle.sendall(raw_request("GET", "/health"))
        idle_response = http.client.HTTPResponse(idle, method="GET")
        idle_response.begin()
        assert idle_response.status == 200
        idle_response.read()
    finally:
        idle.close()
        for sock, _ in stalled:
            sock.close()


def test_connections_past_the_limit_are_closed_at_once(ext):
    extra = 16
    held = []
    try:
        for _ in range(MAX_CONNECTIONS + extra):
            sock = socket.create_connection(("127.0.0.1", ext.port), timeout=5)
            held.append(sock)
        for sock in held:
            sock.setblocking(False)
        dropped: set[int] = set()
        deadline = time.monotonic() + 3  # well before HEADER_TIMEOUT would close the others
        while len(dropped) < extra and time.monotonic() < deadline:
            dropped.update(i for i, sock in enumerate(held) if i not in dropped and _closed(sock))
            time.sleep(0.05)
        time.sleep(0.2)  # bounded: anything else about to be dropped would be by now
        dropped.update(i for i, sock in enumerate(held) if i not in dropped and _closed(sock))
        print(f"{len(dropped)} of {len(held)} connections dropped at once (MAX_CONNECTIONS {MAX_CONNECTIONS})")
        assert extra <= len(dropped) <= extra + 4
    finally:
        for sock in held:
            sock.close()
    # The rest were closed on our side: the server answers normally again.
    deadline = time.monotonic() + 5
    while True:
        try:
            reply = send(ext, "GET", f"/parameters?name={PARAMETER[0]}")
            break
        except (ConnectionError, http.client.HTTPException):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert reply.status == 200


# --- fuzz ----------------------------------------------------------------------------------------------

FUZZ_EXAMPLES = 10_000
ROUTES = [b"/parameters", b"/secrets", b"/dynamodb", b"/systemsmanager/parameters/get", b"/secretsmanager/get",
          b"/health", b"/stats", b"/refresh"]
GOOD_METHODS = [b"GET"] * 16 + [b"HEAD"] * 2 + [b"POST"] * 2 + [b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE"]
ODD_METHODS = [b"get", b"Get", b"post", b"GE", b"GETT", b"CONNECT", b"PROPFIND", b"PURGE", b"M-SEARCH", b"SOURCE"]
PATH_PARTS = [b"%00", b"%2e%2e", b"..", b"%zz", b"%", b"%4", b"%c3%a9", b"%ff", b"%2F", b"//", b"/", b"a", b"parameters",
              b";", b"#frag", b"\xc3\xa9", b"\xff", b"+", b"%20", b"~", b"\x00", b"\x7f"]
ODD_PATHS = [b"*", b"http://127.0.0.1/parameters", b"parameters", b"/../../etc/passwd", b"/parameters/../stats",
             b"//parameters", b"/parameters/", b"/PARAMETERS", b"/", b"/nope", b"/health/", b"/%70arameters"]
QUERY_KEYS = [b"name", b"secretId", b"version", b"label", b"withDecryption", b"versionStage", b"versionId", b"all",
              b"source"]
ODD_VALUES = [b"", b"+", b"a+b", b"%zz", b"%", b"%ff%fe", b"%00", b"%c3%a9", b"\xc3\xa9", b"\xff", b"true", b"TRUE",
              b"false", b"1", b"-1", b"99999999999999999999", b"AWSCURRENT", b"AWSPREVIOUS", b"parameters", b"secrets",
              b"dynamodb", b"=", b"%26", b"%3D", b"%0a", b"%0d%0a", b"\t", b"%25"]
HEADER_CHARS = b"abcdefghijklmnopqrstuvwxyz-ABCXYZ0123456789!#$%&'*+.^_`|~"
COMMON_HEADERS = [(b"Host", b"localhost"), (b"Host", b"127.0.0.1:4000"), (b"Accept", b"*/*"), (b"User-Agent", b"fuzz"), (b"Accept-Encoding", b"gzip"),
                  (b"Connection", b"keep-alive"), (b"Connection", b"close"), (b"Connection", b"Upgrade"),
                  (b"Upgrade", b"websocket"), (b"Upgrade", b"h2c"), (b"Expect", b"100-continue"),
                  (b"Content-Length", b"0"), (b"Content-Length", b"1024"), (b"Content-Length", b"1025"),
                  (b"Content-Length", b"5000"), (b"Transfer-Encoding", b"chunked"), (b"X-Forwarded-For", b"127.0.0.1"),
                  (b"x-forwarded-for", b"10.0.0.1"), (b"X-Real-IP", b"10.0.0.1"), (b"Forwarded", b"for=10.0.0.1")]
BAD_HEADERS = [(b"Content-Length", b"-1"), (b"Content-Length", b"abc"), (b"Content-Length", b"99999999999999999999"),
               (b"Content-Length", b"1,1"), (b"Transfer-Encoding", b"gzip"), (b"Transfer-Encoding", b"chunked, chunked"),
               (b"Bad Name", b"x"), (b"Bad\x00Name", b"x"), (b"", b"x"), (b"X", b"a\x00b"), (b"X", b"a\x7fb"),
               (b"X", b"a\rb"), (b"X", b"\x01\x02")]
RAW_LINES = [b"NoColonHere", b" folded continuation", b":novalue", b"\tTabbed: x", b"Sp ace: x"]
ODD_VERSIONS = [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.2", b"HTTP/9.9", b"http/1.1", b"HTTP/1", b"",
                b"HTTP/1.1 x", b"HTTPS/1.1", b"HTTP/01.1", b"HTTP/1.1\x00", b"HTTP/1.10"]
ODD_LINE_ENDS = [b"\n", b"\r", b"\n\r", b"\r\r\n"]
# Which part of a request to break: None sends a well-formed one (its query may still be odd).
BREAK = [None] * 15 + ["method", "path", "version", "line end", "spacing", "header", "raw line", "many headers",
                      "huge header", "huge path"]


def _no_separators(data: bytes) -> bytes:
    """Anything but space, CR and LF (which would split the request line): other bytes, control ones included."""
    return data.translate(bytes.maketrans(b" \r\n", b"XYZ"))


def _query(rnd, path: bytes, names: dict[bytes, list[bytes]]) -> bytes | None:
    everything = names[b""]
    kind = rnd.random()
    if kind < 0.1:
        return None
    if kind < 0.15:
        return rnd.choice([b"", b"&&&", b"=", b"name", b"name==x", b"?", b"name=a&name=b", b"&name=" + everything[0],
                           b"name=" + b"a" * rnd.randint(2040, 2060), b"name=x&pad=" + b"b" * rnd.randint(8180, 9000)])
    pairs = []
    for i in range(rnd.choice([1, 1, 1, 1, 2, 2, 3, 5])):
        if i == 0 and rnd.random() < 0.7:  # the key this route reads, with a name it may serve
            key = b"secretId" if path == b"/secretsmanager/get" else b"name"
            pairs.append(key + b"=" + rnd.choice(names.get(path) or everything))
            continue
        key = rnd.choice(QUERY_KEYS) if rnd.random() < 0.85 else quote(rnd.randbytes(rnd.randint(0, 6))).encode()
        if key == b"versionId" and rnd.random() < 0.5:
            # A well-formed version id (32 to 64 characters) that does not exist; other draws below are the
            # malformed ones botocore refuses before any call (400 InvalidParameter).
            value = str(uuid.UUID(int=rnd.getrandbits(128))).encode()
        elif rnd.random() < 0.6:
            value = rnd.choice(everything)
        elif rnd.random() < 0.5:
            value = rnd.choice(ODD_VALUES)
        else:
            value = quote(rnd.randbytes(rnd.randint(1, 12)), safe="").encode()
        pairs.append(key if rnd.random() < 0.05 else key + b"=" + value)
    return b"&".join(pairs)


def _header_name(rnd) -> bytes:
    return bytes(rnd.choice(HEADER_CHARS) for _ in range(rnd.randint(1, 16)))


def request_strategy(token: str, names: dict[str, list[str]]):
    """(method, raw request bytes): mostly well-formed requests with odd queries and headers, and requests with one
    part broken. A few hypothesis draws pick the shape; a seeded Random fills in the bytes, which keeps the
    examples cheap enough to send 10,000 of them in about a minute."""
    token_bytes = token.encode()
    # route -> the names it may serve; b"" -> every name
    name_pool = {route.encode(): [quote(name, safe="").encode() for name in route_names]
                 for route, route_names in names.items()}
    name_pool[b""] = [name for route_names in name_pool.values() for name in route_names]
    tokens = [[(TOKEN_HEADER.encode(), token_bytes)]] * 6 + [
        [], [(TOKEN_HEADER.lower().encode(), token_bytes)], [(TOKEN_HEADER.upper().encode(), token_bytes)],
        [(TOKEN_HEADER.encode(), b"wrong")], [(TOKEN_HEADER.encode(), b"")], [(TOKEN_HEADER.encode(), token_bytes[:-1])],
        [(TOKEN_HEADER.encode(), token_bytes)] * 2, [(TOKEN_HEADER.encode(), token_bytes), (TOKEN_HEADER.encode(), b"x")]]

    @st.composite
    def request(draw) -> tuple[bytes, bytes]:
        broken = draw(st.sampled_from(BREAK))
        method = draw(st.sampled_from(GOOD_METHODS))
        path = draw(st.sampled_from(ROUTES))
        token_headers = draw(st.sampled_from(tokens))
        rnd = draw(st.randoms(use_true_random=True))
        if broken == "method":
            method = rnd.choice([rnd.choice(ODD_METHODS), _no_separators(rnd.randbytes(rnd.randint(1, 12))),
                                 b"G" * rnd.randint(50, 5000)])
        if broken == "path":
            path = rnd.choice([rnd.choice(ODD_PATHS), b"/" + b"".join(rnd.choices(PATH_PARTS, k=rnd.randint(1, 8))),
                               b"/" + _no_separators(rnd.randbytes(rnd.randint(1, 20)))])
        elif broken == "huge path":
            path = b"/" + b"a" * rnd.randint(2000, 20000)
        elif rnd.random() < 0.05:
            path = rnd.choice(ODD_PATHS)
        query = _query(rnd, path, name_pool)
        target = path if query is None else path + b"?" + query
        version = rnd.choice(ODD_VERSIONS) if broken == "version" else b"HTTP/1.1" if rnd.random() < 0.95 else b"HTTP/1.0"
        eol = rnd.choice(ODD_LINE_ENDS) if broken == "line end" else b"\r\n"
        sp = rnd.choice([b"  ", b"\t", b" \t"]) if broken == "spacing" else b" "
        headers = list(token_headers) + rnd.sample(COMMON_HEADERS, rnd.choice([0, 0, 0, 1, 1, 2, 3]))
        headers += [(_header_name(rnd), rnd.randbytes(rnd.randint(0, 30)).translate(None, b"\r\n\x00\x7f")
                     .translate(bytes.maketrans(bytes(range(32)), b" " * 32)))
                    for _ in range(rnd.choice([0, 0, 1, 2]))]
        if broken == "header":
            headers.insert(rnd.randint(0, len(headers)), rnd.choice(BAD_HEADERS))
        elif broken == "many headers":
            headers += [(b"X-H%d" % i, b"v") for i in range(rnd.randint(55, 70))]
        elif broken == "huge header":
            headers.append((_header_name(rnd), b"h" * rnd.randint(1000, 20000)))
        rnd.shuffle(headers)
        lines = [method + sp + target + (sp + version if version else b"")]
        lines += [name + b":" + rnd.choice([b" ", b" ", b" ", b"", b"\t"]) + value for name, value in headers]
        if broken == "raw line":
            lines.insert(rnd.randint(1, len(lines)), rnd.choice(RAW_LINES))
        return method, eol.join(lines) + eol + eol

    return request()


class _Oracle:
    """httptools' own verdict on a request, the parser the extension's server uses."""

    def __init__(self) -> None:
        self.headers = self.messages = 0

    def on_headers_complete(self) -> None:
        self.headers += 1

    def on_message_complete(self) -> None:
        self.messages += 1


def parser_verdict(data: bytes) -> tuple[str, bool]:
    """("error" | "upgrade" | "incomplete" | "ok", whether the connection could carry another request)."""
    oracle = _Oracle()
    parser = httptools.HttpRequestParser(oracle)
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        return "upgrade", False
    except httptools.HttpParserError:
        return "error", False
    if not oracle.headers:
        return "incomplete", False
    reusable = oracle.headers == oracle.messages == 1 and parser.should_keep_alive() and parser.get_http_version() == "1.1"
    return "ok", reusable


# The server's answer to a request httptools cannot parse (http_limits.py: JSON, like every error).
PARSE_ERROR = b'{"error":"BadRequest","message":"Invalid HTTP request received."}'


class FuzzClient:
    """Sends raw requests, on a kept-alive connection when both sides allow it, else on a new one."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.sent = 0
        self.new_connections = 0
        self.closed_without_response = 0
        self.statuses: Counter[str] = Counter()

    def _connect(self) -> socket.socket:
        self.new_connections += 1
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def drop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def exchange(self, method: bytes, data: bytes, reusable: bool) -> tuple[http.client.HTTPResponse, bytes] | None:
        """The response and its body, or None when the server closed the connection without one."""
        for attempt in (0, 1):
            reused = self.sock is not None
            sock = self.sock if reused else self._connect()
            self.sock = None
            try:
                sock.sendall(data)
                response = http.client.HTTPResponse(sock, method=method.decode("latin-1"))
                response.begin()
                body = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                sock.close()
                if reused and attempt == 0:
                    continue  # the kept-alive connection had been closed meanwhile: retry on a new one
                return None
            except BaseException:
                sock.close()
                raise
            if reusable and not response.will_close:
                self.sock = sock
            else:
                sock.close()
            return response, body
        return None


def check_fuzz_response(method: bytes, data: bytes, response: http.client.HTTPResponse, body: bytes,
                        secrets: list[bytes]) -> None:
    request = data[:300]
    assert response.version == 11, request  # an HTTP/1.1 status line
    assert 100 <= response.status < 500, f"{response.status} {body[:200]!r} for {request!r}"
    if response.status >= 400 and method != b"HEAD" and body != PARSE_ERROR:
        error = json.loads(body)  # JSON {"error", "message"}; AWS's routes {"__type", "message"} (issue 16)
        assert set(error) in ({"error", "message"}, {"__type", "message"}), (body, request)
    if response.status != 200:
        assert not any(secret in body for secret in secrets), request


def test_fuzz_malformed_requests(layer_dir, moto, names, tmp_path):
    handle = launch(layer_dir, moto, tmp_path / "fuzz", names.config)
    try:
        parameters = [PARAMETER[0], names.secure, f"{names.prefix}/allowed/present", f"{names.prefix}/allowed/absent",
                      f"{names.prefix}/other", "/aws/reference/secretsmanager/secret_info", "no-such-name"]
        secret_names = [SECRET[0], f"{names.secret_prefix}/allowed/present", f"{names.secret_prefix}/other", "no-such-name"]
        pool = {"/parameters": parameters, "/systemsmanager/parameters/get": parameters, "/secrets": secret_names,
                "/secretsmanager/get": secret_names, "/dynamodb": [ITEM, "DynamoDbTable-pKey1-none"],
                "/refresh": parameters + secret_names + [ITEM]}
        secret_values = {SECRET[1], names.secure_value, "allowed-secret-value", "unlisted-secret-value"}
        secret_bytes = [value.encode() for value in secret_values]
        client = FuzzClient(handle.port)
        not_sent = Counter()

        @settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(request_strategy(handle.token, pool))
        def fuzz(request):
            method, data = request
            verdict, reusable = parser_verdict(data)
            if verdict == "incomplete":
                not_sent[verdict] += 1
                assume(False)  # the server would wait HEADER_TIMEOUT for the rest: not a quick example
            answer = client.exchange(method, data, reusable)
            client.sent += 1
            if answer is None:
                client.closed_without_response += 1
                assert verdict == "error", f"closed without a response: {data[:300]!r}"
                return
            response, body = answer
            client.statuses[f"{response.status}{' (parser)' if body == PARSE_ERROR else ''}"] += 1
            check_fuzz_response(method, data, response, body, secret_bytes)

        started = time.monotonic()
        try:
            fuzz()
        finally:
            client.drop()
        elapsed = time.monotonic() - started
        items = json.loads(handle.request("/stats").body)["items"]
        print(f"fuzz: {client.sent} requests in {elapsed:.1f} s over {client.new_connections} connections, "
              f"{client.closed_without_response} closed without a response, {dict(not_sent)} not sent; "
              f"statuses {dict(sorted(client.statuses.items()))}; {items} entries cached")
        assert client.sent >= FUZZ_EXAMPLES

        assert handle.extension.process.poll() is None, "the extension died under the fuzz"
        reply = handle.read("parameters", PARAMETER[0])
        assert (reply.status, reply.text) == (200, PARAMETER[1])
        assert handle.read("secrets", SECRET[0]).text == SECRET[1]
        assert handle.request("/health", token=None).status == 200
        assert "Traceback" not in handle.output
        # Its own secrets (the session scan checks them all); a variable: asserting the call would print the output.
        leaks = secret_leaks(handle.output, handle.token, secret_values, ())
        assert not leaks
    finally:
        close_and_check(handle)
