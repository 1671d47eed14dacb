"""The Python client's HTTP/1.1 on a plain socket, against raw loopback servers that answer in every odd way:
what is accepted, what counts as the extension being unavailable, and what never goes out."""

from __future__ import annotations

import pytest

from test_clients import answer, raw_server

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"


def read_through(python_client, replies: list[bytes | None], **options):
    listener, requests = raw_server(replies)
    client = python_client.CacheClient(port=listener.getsockname()[1], token="t0k", near_cache=False,
                                       startup_timeout=0.2, **options)
    try:
        return client.get_parameter("p"), requests
    finally:
        client.close()
        listener.close()


@pytest.mark.parametrize("reply", [
    OK + b"Content-Length: 5\r\n\r\nhello",
    OK + b"Connection: close\r\n\r\nhello",                      # no length: the body ends with the connection
    b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello",
    OK + b"Content-Length:5\r\nX-Long: " + b"x" * 20000 + b"\r\n\r\nhello",
])
def test_answers_the_extension_could_send(python_client, reply):
    value, requests = read_through(python_client, [reply])
    assert value == "hello"
    assert requests[0].startswith("GET /parameters?name=p HTTP/1.1\r\nHost: 127.0.0.1:")
    assert "X-Aws-Parameters-Secrets-Token: t0k\r\n" in requests[0]


@pytest.mark.parametrize("reply", [
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",                               # not HTTP
    b"HTTP/1.1 OK\r\n\r\n",                                        # no status code
    OK + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    OK + b"Content-Length: 10\r\n\r\nhello",                       # closed in the middle of the body
    OK + b"Content-Length: -1\r\n\r\n",
    OK + b"no colon here\r\n\r\n",
    OK + b"X-Endless: " + b"y" * 70000,                            # headers that never end
    b"HTTP/1.1 200",                                               # closed in the middle of the headers
])
def test_garbled_answers_are_the_extension_unavailable(python_client, reply):
    with pytest.raises(python_client.ExtensionUnavailableError) as raised:
        read_through(python_client, [reply])
    assert "t0k" not in str(raised.value)


def test_extra_bytes_after_the_body_close_the_connection(python_client):
    """More than Content-Length promised: the value is read, and the connection is not used again."""
    listener, requests = raw_server([OK + b"Content-Length: 2\r\n\r\nv1GARBAGE", answer(b"200 OK", b'"v2"')])
    client = python_client.CacheClient(port=listener.getsockname()[1], token="t0k", near_cache=False)
    try:
        assert client.get_parameter("p") == "v1"
        assert client._connection is None
        assert client.get_item("T-1") == "v2"  # a new connection (the raw server answers one per connection)
        assert len(requests) == 2
    finally:
        client.close()
        listener.close()


@pytest.mark.parametrize("token", ["t0k\r\nX-Injected: 1", "t0k\nX", "tök"])
def test_a_token_no_header_can_carry_is_never_sent(python_client, token):
    listener, requests = raw_server([answer(b"200 OK", b'"v"')])
    client = python_client.CacheClient(port=listener.getsockname()[1], token=token, near_cache=False)
    try:
        with pytest.raises(python_client.CacheExtensionError) as raised:
            client.get_parameter("p")
        assert type(raised.value) is python_client.CacheExtensionError and token not in str(raised.value)
        assert requests == []
    finally:
        client.close()
        listener.close()


def test_the_client_imports_no_http_client(layer_dir):
    """The function's cold start pays for what the client imports: not http.client and the email package."""
    import subprocess
    import sys

    code = (f"import sys; sys.path.insert(0, {str(layer_dir / 'python')!r}); import cache_extension_client; "
            "print(sorted(m for m in ('http.client', 'email.parser', 'urllib.request') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-E", "-S", "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("ours, aws, expected", [
    ("4100", "2773", 4100), ("", "2773", 2773), (None, "2773", 2773), (None, None, 4000), ("", "", 4000),
])
def test_the_port_comes_from_ours_else_aws_extensions_variable(python_client, monkeypatch, ours, aws, expected):
    """As the extension chooses its port (settings.py): CACHE_EXTENSION_PORT, else AWS's
    PARAMETERS_SECRETS_EXTENSION_HTTP_PORT, else 4000; an explicit port wins over both."""
    for name, value in (("CACHE_EXTENSION_PORT", ours), ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", aws)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert python_client.CacheClient().port == expected
    assert python_client.CacheClient(port=4321).port == 4321
