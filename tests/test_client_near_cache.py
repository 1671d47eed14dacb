"""The Python client's near cache, against a small loopback HTTP server that answers with chosen headers:
what is kept and for how long, what a refresh drops, the off switch, the bound. The same behaviour against
the real extension is in the contract table (tests/contract/cases.json, the "near cache:" cases)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Upstream:
    """A loopback server standing in for the extension: GETs answer `text` with `cache_control`; a POST to
    /refresh answers `refresh_status`. Counts GETs by path."""

    def __init__(self) -> None:
        self.cache_control: str | None = "max-age=60"
        self.text = "v1"
        self.content_type = "text/plain; charset=utf-8"
        self.refresh_status = 200
        self.gets: list[str] = []
        self.hold = None  # a threading.Event a GET waits for before answering, when set
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.gets.append(self.path)
                body, hold = outer.text.encode(), outer.hold
                if hold is not None:
                    hold.wait(5)
                self.send_response(200)
                self.send_header("Content-Type", outer.content_type)
                if outer.cache_control is not None:
                    self.send_header("Cache-Control", outer.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                body = json.dumps({"refreshed": [], "failed": []} if outer.refresh_status == 200
                                  else {"error": "Boom", "message": "refused"}).encode()
                self.send_response(outer.refresh_status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    server = Upstream()
    yield server
    server.close()


@pytest.fixture
def client(python_client, upstream, monkeypatch):
    monkeypatch.delenv("CACHE_EXTENSION_CLIENT_CACHE", raising=False)
    made = python_client.CacheClient(port=upstream.port, token="t0k")
    yield made
    made.close()


def test_kept_for_max_age(client, upstream):
    assert [client.get_parameter("p") for _ in range(5)] == ["v1"] * 5
    assert upstream.gets == ["/parameters?name=p"]
    assert client.get_secret("p") == "v1"  # another route: its own entry
    assert len(upstream.gets) == 2


@pytest.mark.parametrize("header", [None, "max-age=0", "no-store, max-age=60", "max-age=60, no-cache", "max-age=abc",
                                    "max-age=-5", "max-age=1.5", "private", "", "max-age=60, max-age=60"])
def test_not_kept(client, upstream, header):
    upstream.cache_control = header
    client.get_parameter("p")
    client.get_parameter("p")
    assert len(upstream.gets) == 2


@pytest.mark.parametrize("header", ["max-age=60", "MAX-AGE=60", "public,  max-age=60 ", 'max-age="60"', "max-age = 60",
                                    "max-age=999999999999999999999"])
def test_max_age_forms(client, upstream, header):
    upstream.cache_control = header
    client.get_parameter("p")
    client.get_parameter("p")
    assert len(upstream.gets) == 1


def test_expiry_on_a_monotonic_clock(python_client, client, upstream, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(python_client.time, "monotonic", lambda: now[0])
    upstream.cache_control = "max-age=2"
    client.get_parameter("p")
    now[0] += 1.999
    client.get_parameter("p")
    assert len(upstream.gets) == 1
    now[0] += 0.001  # max-age=2 counts from the answer's arrival: expired now
    upstream.text = "v2"
    assert client.get_parameter("p") == "v2"
    assert len(upstream.gets) == 2


def test_refresh_drops_that_name_only(client, upstream):
    for name in ("a", "b"):
        client.get_parameter(name)
        client.get_secret(name)
    client.refresh("a", "secrets")  # only the secret a
    client.get_parameter("a"), client.get_secret("a"), client.get_parameter("b")
    assert upstream.gets.count("/secrets?name=a") == 2 and upstream.gets.count("/parameters?name=a") == 1
    client.refresh("a")  # every route
    client.get_parameter("a"), client.get_secret("a"), client.get_secret("b")
    assert upstream.gets.count("/parameters?name=a") == 2 and upstream.gets.count("/secrets?name=a") == 3
    assert upstream.gets.count("/secrets?name=b") == 1


def test_refresh_all_drops_everything_even_when_refused(python_client, client, upstream):
    client.get_parameter("a")
    upstream.text, upstream.content_type = '{"n": 1}', "application/json"
    client.get_item("T-1")
    upstream.refresh_status = 500
    with pytest.raises(python_client.CacheExtensionError):
        client.refresh_all()
    client.get_parameter("a"), client.get_item("T-1")
    assert len(upstream.gets) == 4


def test_an_answer_in_flight_during_a_refresh_is_not_kept(client, upstream):
    """A read sent before a refresh may carry the old value: it is returned, not kept."""
    upstream.hold = threading.Event()
    reader = threading.Thread(target=client.get_parameter, args=("p",))
    reader.start()
    for _ in range(500):  # bounded: until the GET has arrived
        if upstream.gets:
            break
        threading.Event().wait(0.01)
    assert upstream.gets
    refresher = threading.Thread(target=client.refresh, args=("p",))
    refresher.start()  # drops p, then waits for the connection the reader holds
    threading.Event().wait(0.05)
    upstream.hold.set()
    reader.join(5), refresher.join(5)
    upstream.hold = None
    client.get_parameter("p")
    assert len(upstream.gets) == 2


def test_returned_objects_are_fresh(client, upstream):
    upstream.text, upstream.content_type = '{"list": [1], "n": 1.5}', "application/json"
    first = client.get_item("T-1")
    first["list"].append(2)
    assert client.get_item("T-1") == {"list": [1], "n": pytest.approx(1.5)}
    upstream.text, upstream.content_type = '{"a": [1]}', "text/plain; charset=utf-8"
    parsed = client.get_parameter("j", transform="json")
    parsed["a"].append(2)
    assert client.get_parameter("j", transform="json") == {"a": [1]} and len(upstream.gets) == 2


@pytest.mark.parametrize("setting, kept", [("off", False), ("OFF", False), ("0", False), ("no", False), ("False", False),
                                            ("on", True), ("yes", True), ("1", True), ("TRUE", True), ("", True)])
def test_switch_by_environment(python_client, upstream, monkeypatch, setting, kept):
    monkeypatch.setenv("CACHE_EXTENSION_CLIENT_CACHE", setting)
    made = python_client.CacheClient(port=upstream.port, token="t0k")
    made.get_parameter("p"), made.get_parameter("p")
    assert len(upstream.gets) == (1 if kept else 2)
    assert f"near_cache={kept}" in repr(made)
    made.close()


def test_option_wins_over_environment(python_client, upstream, monkeypatch):
    monkeypatch.setenv("CACHE_EXTENSION_CLIENT_CACHE", "on")
    made = python_client.CacheClient(port=upstream.port, token="t0k", near_cache=False)
    made.get_parameter("p"), made.get_parameter("p")
    assert len(upstream.gets) == 2
    monkeypatch.setenv("CACHE_EXTENSION_CLIENT_CACHE", "definitely")  # not read when the option is given
    python_client.CacheClient(port=upstream.port, near_cache=True).close()


def test_bad_switch_is_a_clear_error(python_client, monkeypatch):
    monkeypatch.setenv("CACHE_EXTENSION_CLIENT_CACHE", "sometimes")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-not-in-messages")
    with pytest.raises(python_client.CacheExtensionError) as raised:
        python_client.CacheClient()
    message = str(raised.value)
    assert "CACHE_EXTENSION_CLIENT_CACHE" in message and "on, off" in message and "sometimes" not in message
    assert "session-token-not-in-messages" not in message and raised.value.status == 0


def test_bounded(python_client, client, upstream, monkeypatch):
    now = [50.0]
    monkeypatch.setattr(python_client.time, "monotonic", lambda: now[0])
    upstream.cache_control = "max-age=10"
    client.get_parameter("expiring")
    upstream.cache_control = "max-age=60"
    now[0] += 5
    for i in range(python_client.NEAR_CACHE_MAX - 1):
        client.get_parameter(f"p{i}")
    assert len(client._near) == python_client.NEAR_CACHE_MAX
    now[0] += 6  # "expiring" has expired: making room drops it first
    client.get_parameter("new")
    assert len(client._near) == python_client.NEAR_CACHE_MAX and ("parameters", "p0") in client._near
    client.get_parameter("newer")  # none expired: the oldest kept (p0) goes
    assert len(client._near) == python_client.NEAR_CACHE_MAX and ("parameters", "p0") not in client._near
    gets = len(upstream.gets)
    client.get_parameter("p1"), client.get_parameter("newer")
    assert len(upstream.gets) == gets


def test_module_functions_share_the_default_client(python_client, upstream, monkeypatch):
    monkeypatch.delenv("CACHE_EXTENSION_CLIENT_CACHE", raising=False)
    monkeypatch.setenv("CACHE_EXTENSION_PORT", str(upstream.port))
    monkeypatch.setenv("CACHE_EXTENSION_TOKEN", "t0k")  # without a token nothing would be sent (MissingToken)
    monkeypatch.setattr(python_client, "_default", None)
    assert python_client.get_parameter("p") == python_client.get_parameter("p") == "v1"
    assert len(upstream.gets) == 1
    python_client.default_client().close()
