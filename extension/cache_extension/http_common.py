"""What every route shares: JSON error responses and the rules for query parameters."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

MAX_NAME_LENGTH = 2048
MAX_QUERY_LENGTH = 8192

# Requests carry no body (POST /refresh takes its arguments in the query) and modest headers. The server
# (http_limits.py) enforces the URL and header limits on the bytes as they arrive; app.py's Guard checks
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


def is_proxy_header(name: bytes) -> bool:
    """name: lower case, as uvicorn gives it. Any X-Forwarded-* counts, not only the listed ones."""
    return name in _PROXY_HEADER_NAMES or name.startswith(b"x-forwarded-")


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def query_value(request: Request, key: str, *, required: bool = True) -> str | None:
    """A query parameter given at most once, non-empty and of sane length, or an HTTPException(400)."""
    if len(request.scope["query_string"]) > MAX_QUERY_LENGTH:
        raise HTTPException(400, "the query string is too long")
    values = request.query_params.getlist(key)
    if not values:
        if required:
            raise HTTPException(400, f"query parameter '{key}' is required")
        return None
    if len(values) > 1:
        raise HTTPException(400, f"query parameter '{key}' is repeated")
    value = values[0]
    if not value:
        raise HTTPException(400, f"query parameter '{key}' is empty")
    if len(value) > MAX_NAME_LENGTH:
        raise HTTPException(400, f"query parameter '{key}' is longer than {MAX_NAME_LENGTH} characters")
    return value


def either(request: Request, first: str, second: str) -> tuple[str | None, str | None]:
    """Two optional query parameters of which at most one may be given."""
    values = query_value(request, first, required=False), query_value(request, second, required=False)
    if all(values):
        raise HTTPException(400, f"give '{first}' or '{second}', not both")
    return values
