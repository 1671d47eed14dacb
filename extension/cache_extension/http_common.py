"""What every route shares: the request and response, JSON errors, and the rules for query parameters."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, unquote_plus

MAX_NAME_LENGTH = 2048
MAX_QUERY_LENGTH = 8192

# Requests carry no body (POST /refresh takes its arguments in the query) and modest headers. The server
# (http_protocol.py) enforces the URL and header limits on the bytes as they arrive; app.py's Guard checks
# the parsed request again.
MAX_BODY = 1024
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024  # names and values
MAX_URL_BYTES = 16 * 1024  # the request target: path and query (the query alone: MAX_QUERY_LENGTH)

# Headers a proxy adds when it relays a request (RFC 7239 Forwarded, RFC 9110 Via, the de facto X-Forwarded-*
# family and nginx's X-Real-IP). The function calls the extension directly; a relayed request is an SSRF
# path into the sandbox, so any of them is refused.
PROXY_HEADERS = frozenset({"forwarded", "via", "x-real-ip", "x-forwarded-for", "x-forwarded-host",
                           "x-forwarded-proto", "x-forwarded-port"})
_PROXY_HEADER_NAMES = frozenset(name.encode("ascii") for name in PROXY_HEADERS)

JSON = b"application/json"


def is_proxy_header(name: bytes) -> bool:
    """name: lower case, as the server gives it. Any X-Forwarded-* counts, not only the listed ones."""
    return name in _PROXY_HEADER_NAMES or name.startswith(b"x-forwarded-")


class Request:
    """One parsed request: method, the percent-decoded path, the raw query, headers with lower-case names,
    the peer's (host, port)."""

    __slots__ = ("method", "path", "query", "headers", "client", "_params")

    def __init__(self, method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]],
                 client: tuple[str, int] | None) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.client = client
        self._params: dict[str, list[str]] | None = None

    def params(self) -> dict[str, list[str]]:
        """The query's parameters, decoded exactly as Starlette did: parse_qsl (blank values kept) of the
        latin-1 text, each key and value percent-decoded as UTF-8."""
        if self._params is None:
            text = self.query.decode("latin-1")
            if "&" not in text:  # one pair (the common case): what parse_qsl makes of it, without its loop
                key, _, value = text.partition("=")
                pairs = [(unquote_plus(key), unquote_plus(value))] if text else []
            else:
                pairs = parse_qsl(text, keep_blank_values=True)
            params: dict[str, list[str]] = {}
            for key, value in pairs:
                params.setdefault(key, []).append(value)
            self._params = params
        return self._params


class Response:
    """status, headers as lower-case (name, value) bytes, body. The server adds content-length, date and
    connection: close, and drops the body for HEAD."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes, content_type: bytes | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else []
        if content_type is not None:
            self.headers.insert(0, (b"content-type", content_type))

    def header(self, name: bytes, value: str) -> Response:
        self.headers.append((name, value.encode("latin-1")))
        return self


class HTTPError(Exception):
    """A request the route cannot serve: answered as error(status, code for the status, detail)."""

    CODES = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers

    def response(self) -> Response:
        response = error(self.status, self.CODES.get(self.status, "HTTPError"), self.detail)
        for name, value in (self.headers or {}).items():
            response.header(name.lower().encode("latin-1"), value)
        return response


def json_body(content) -> bytes:
    """Compact JSON, UTF-8, as Starlette's JSONResponse wrote it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def json_response(content, status: int = 200) -> Response:
    return Response(status, json_body(content), JSON)


def error(status: int, code: str, message: str) -> Response:
    return json_response({"error": code, "message": message}, status)


def query_value(request: Request, key: str, *, required: bool = True) -> str | None:
    """A query parameter given at most once, non-empty and of sane length, or an HTTPError(400)."""
    if len(request.query) > MAX_QUERY_LENGTH:
        raise HTTPError(400, "the query string is too long")
    values = request.params().get(key)
    if not values:
        if required:
            raise HTTPError(400, f"query parameter '{key}' is required")
        return None
    if len(values) > 1:
        raise HTTPError(400, f"query parameter '{key}' is repeated")
    value = values[0]
    if not value:
        raise HTTPError(400, f"query parameter '{key}' is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise HTTPError(400, f"query parameter '{key}' is longer than {MAX_NAME_LENGTH} characters")
    return value


def either(request: Request, first: str, second: str) -> tuple[str | None, str | None]:
    """Two optional query parameters of which at most one may be given."""
    values = query_value(request, first, required=False), query_value(request, second, required=False)
    if all(values):
        raise HTTPError(400, f"give '{first}' or '{second}', not both")
    return values
