"""The HTTP API: routes, the token and loopback rules, and errors. It reads the store, never AWS."""

from __future__ import annotations

import asyncio
import hmac
import logging
from concurrent.futures import Future

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .fetchers import FetchError
from .store import NotConfigured, Store

log = logging.getLogger("cache_extension.http")

TOKEN_HEADER = b"x-aws-parameters-secrets-token"
MAX_NAME_LENGTH = 2048
MAX_QUERY_LENGTH = 8192


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


class Guard:
    """ASGI middleware: every request carries the token and comes straight from the function.

    X-Forwarded-For means a proxy relayed the request (an SSRF path into the sandbox), so it is refused.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        presented = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                return await error(400, "ForwardedRequest", "requests relayed with X-Forwarded-For are refused")(scope, receive, send)
            if name == TOKEN_HEADER:
                if presented is not None:
                    return await error(400, "BadRequest", "the token header is repeated")(scope, receive, send)
                presented = value
        if presented is None:
            response = error(401, "MissingToken", "header X-Aws-Parameters-Secrets-Token is required")
        elif not hmac.compare_digest(presented, self.token):
            response = error(403, "InvalidToken", "header X-Aws-Parameters-Secrets-Token does not match")
        else:
            return await self.app(scope, receive, send)
        await response(scope, receive, send)


def query_name(request: Request) -> str:
    """The single `name` query parameter, or an HTTPException(400)."""
    if len(request.scope["query_string"]) > MAX_QUERY_LENGTH:
        raise HTTPException(400, "the query string is too long")
    names = request.query_params.getlist("name")
    if not names:
        raise HTTPException(400, "query parameter 'name' is required")
    if len(names) > 1:
        raise HTTPException(400, "query parameter 'name' is repeated")
    name = names[0]
    if not name:
        raise HTTPException(400, "query parameter 'name' is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise HTTPException(400, f"query parameter 'name' is longer than {MAX_NAME_LENGTH} characters")
    return name


def reader(store: Store, source: str):
    async def read(request: Request) -> Response:
        name = query_name(request)
        try:
            result = store.read(source, name)
        except NotConfigured:
            log.debug("refused %s read of a name not in the config", source)
            return error(404, "NotConfigured", f"the name is not configured under '{source}' in config.yaml")
        if isinstance(result, Future):
            try:
                result = await asyncio.wrap_future(result)
            except FetchError as exc:
                return error(exc.status, exc.code, exc.message)
        headers = {"X-Cache": result.state, "Age": str(int(result.age))}
        return Response(result.value.body, headers=headers, media_type=result.value.content_type)

    return read


async def http_error(request: Request, exc: HTTPException) -> Response:
    codes = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}
    response = error(exc.status_code, codes.get(exc.status_code, "HTTPError"), exc.detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def internal_error(request: Request, exc: Exception) -> Response:
    log.error("request failed with %s", type(exc).__name__)  # the type only: a message could quote a value
    return error(500, "InternalError", "the extension failed to answer this request")


def create_app(store: Store, token: str) -> ASGIApp:
    routes = [Route(f"/{source}", reader(store, source), methods=["GET"]) for source in ("parameters", "secrets", "dynamodb")]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: internal_error})
    return Guard(app, token)
