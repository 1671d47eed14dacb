"""The HTTP API: routes, the token and loopback rules, and errors. It reads the store, never AWS."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import threading
from concurrent.futures import Future
from urllib.parse import unquote_plus

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .config import Config, Item
from .http_common import (MAX_BODY, MAX_HEADER_BYTES, MAX_HEADERS, MAX_NAME_LENGTH, either, error, is_proxy_header,
                          query_value)
from .fetchers import FetchError
from .metrics import Metrics
from .refresh import refresher
from .store import Result, Store

log = logging.getLogger("cache_extension.http")

TOKEN_HEADER = b"x-aws-parameters-secrets-token"


# Requests carry no body and modest headers: MAX_BODY, MAX_HEADERS, MAX_HEADER_BYTES (http_common.py), enforced
# as the bytes arrive by the server (http_limits.py) and checked here again.
# Methods per path: GET (and HEAD, which Starlette answers like GET without the body) everywhere,
# POST only to force a refresh.
POST_PATHS = frozenset({"/refresh"})
ALLOWED = frozenset({"GET", "HEAD"})


def is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1")


class Guard:
    """ASGI middleware: every request carries the token and comes straight from the function.

    The sockets are bound to loopback, and the peer is checked again here. A proxy header (Forwarded, Via,
    X-Forwarded-*, X-Real-IP) means a proxy relayed the request (an SSRF path into the sandbox), so it is
    refused.
    """

    def __init__(self, app: ASGIApp, token: str, open_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.token = token.encode("utf-8")
        self.open_paths = open_paths  # answered without a token: they say nothing about any value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        response = self.refuse(scope)
        if response is None:
            try:
                return await self.app(scope, receive, send)
            except Exception:
                # Starlette has answered 500 and logged the type (internal_error), then re-raises for the
                # server to log a traceback, which could quote a value: it stops here.
                return
        await response(scope, receive, send)

    def refuse(self, scope: Scope) -> Response | None:
        """The error response for a request that may not go on, or None."""
        client = scope.get("client")
        if client and not is_loopback(client[0]):
            return error(403, "NotLoopback", "only the function in this sandbox may call the extension")
        method, path = scope["method"], scope["path"]
        if method not in ALLOWED and not (method == "POST" and path in POST_PATHS):
            allow = "GET, HEAD, POST" if path in POST_PATHS else "GET, HEAD"
            response = error(405, "MethodNotAllowed", f"{method[:16]} is not allowed here (allowed: {allow})")
            response.headers["Allow"] = allow
            return response
        headers = scope["headers"]
        if len(headers) > MAX_HEADERS:
            return error(431, "HeadersTooLarge", f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes")
        presented = None
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if is_proxy_header(name):
                return error(400, "ForwardedRequest",
                             "requests relayed by a proxy (Forwarded, Via, X-Forwarded-*, X-Real-IP) are refused")
            if name == b"transfer-encoding" or (
                    name == b"content-length" and not (value.isdigit() and int(value) <= MAX_BODY)):
                return error(413, "BodyTooLarge", "requests carry no body (arguments go in the query)")
            if name == TOKEN_HEADER:
                if presented is not None:
                    return error(400, "BadRequest", "the token header is repeated")
                presented = value
        if size > MAX_HEADER_BYTES:
            return error(431, "HeadersTooLarge", f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes")
        if path in self.open_paths:
            return None
        if presented is None:
            return error(401, "MissingToken", "header X-Aws-Parameters-Secrets-Token is required")
        if not hmac.compare_digest(presented, self.token):
            return error(403, "InvalidToken", "header X-Aws-Parameters-Secrets-Token does not match")
        return None


def not_configured(source: str) -> Response:
    log.debug("refused %s read of a name not in the config", source)
    return error(404, "NotConfigured", f"the name is not configured or allowed under '{source}' in config.yaml")


# X-Cache state -> the counter it adds to.
STATE_COUNTERS = {"hit": "Hits", "miss": "Misses", "stale": "StaleServed"}


async def fetch(store: Store, item: Item | None, source: str, metrics: Metrics | None = None) -> Result | Response:
    """The item's value from the cache (waiting for an in-flight fetch), or the error response.
    No item means the config neither lists nor allows the name."""
    if item is None:
        return not_configured(source)
    result = store.read(item)
    if isinstance(result, Future):
        try:
            # shield: a client that hangs up must not cancel a fetch other readers share.
            result = await asyncio.shield(asyncio.wrap_future(result))
        except FetchError as exc:
            if metrics is not None:
                metrics.count(source, "Misses")
            return error(exc.status, exc.code, exc.message)
    if metrics is not None:
        metrics.count(source, STATE_COUNTERS[result.state])
    return result


def max_age(result: Result) -> str:
    """Whole seconds of freshness left, rounded down so that a client's copy never outlives ours; 0 for stale
    values and misses."""
    return f"max-age={int(result.fresh_for)}"


def cache_headers(result: Result) -> dict[str, str]:
    return {"X-Cache": result.state, "Age": str(int(result.age)), "Cache-Control": max_age(result)}


def reader(config: Config, store: Store, source: str, metrics: Metrics | None = None):
    """The original sample's routes: the body is the value itself."""

    async def read(request: Request) -> Response:
        result = await fetch(store, config.resolve(source, query_value(request, "name")), source, metrics)
        if isinstance(result, Response):
            return result
        return Response(result.value.body, headers=cache_headers(result), media_type=result.value.content_type)

    return read


def ssm_compatible(config: Config, store: Store, metrics: Metrics | None = None):
    """AWS Parameters and Secrets extension's GET /systemsmanager/parameters/get: GetParameter's JSON."""

    async def get(request: Request) -> Response:
        name = query_value(request, "name")
        version, label = either(request, "version", "label")
        decrypt = (query_value(request, "withDecryption", required=False) or "false").lower()
        if decrypt not in ("true", "false"):
            raise HTTPException(400, "query parameter 'withDecryption' must be true or false")
        if version and not version.isdigit():
            raise HTTPException(400, "query parameter 'version' must be a number")
        selector = version or label
        item = config.resolve_version("parameters", name, f"{name}:{selector}" if selector else name)
        result = await fetch(store, item, "parameters", metrics)
        if isinstance(result, Response):
            return result
        meta = dict(result.value.meta or {})
        if meta.get("Type") == "SecureString" and decrypt != "true":
            # Values are cached decrypted only; the ciphertext is of no use inside the function.
            return error(400, "DecryptionRequired", "this is a SecureString: add withDecryption=true")
        meta["Value"] = result.value.body.decode("utf-8")
        parameter = {key: meta.get(key) for key in sorted(meta)}
        return json_response({"Parameter": parameter, "ResultMetadata": {}}, result)

    return get


def secrets_compatible(config: Config, store: Store, metrics: Metrics | None = None):
    """AWS Parameters and Secrets extension's GET /secretsmanager/get: GetSecretValue's JSON."""

    async def get(request: Request) -> Response:
        secret_id = query_value(request, "secretId")
        version_id, stage = either(request, "versionId", "versionStage")
        item = config.resolve_version("secrets", secret_id, secret_id, version_stage=stage, version_id=version_id)
        result = await fetch(store, item, "secrets", metrics)
        if isinstance(result, Response):
            return result
        value = result.value
        binary = value.content_type == "application/octet-stream"
        body = dict(value.meta or {})
        body["SecretBinary"] = base64.b64encode(value.body).decode("ascii") if binary else None
        body["SecretString"] = None if binary else value.body.decode("utf-8")
        body = {key: body.get(key) for key in sorted(body)}
        body["ResultMetadata"] = {}
        return json_response(body, result)

    return get


def json_response(body: dict, result: Result) -> Response:
    return Response(json.dumps(body, ensure_ascii=False).encode("utf-8"), headers=cache_headers(result),
                    media_type="application/json")


async def http_error(request: Request, exc: HTTPException) -> Response:
    codes = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}
    response = error(exc.status_code, codes.get(exc.status_code, "HTTPError"), exc.detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def internal_error(request: Request, exc: Exception) -> Response:
    log.error("request failed with %s", type(exc).__name__)  # the type only: a message could quote a value
    return error(500, "InternalError", "the extension failed to answer this request")


class FastHits:
    """ASGI: a cache hit (or a stale value being refreshed) on the sample's routes, answered without
    building Starlette's request, routing and response objects: the hot path of the whole extension. Anything else (misses, errors, other
    routes, HEAD, unusual queries) goes on to the Starlette app, which answers it in full."""

    ROUTES = {"/parameters": "parameters", "/secrets": "secrets", "/dynamodb": "dynamodb"}

    def __init__(self, app: ASGIApp, config: Config, store: Store, metrics: Metrics | None) -> None:
        self.app = app
        self.config = config
        self.store = store
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source = self.ROUTES.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        query = scope.get("query_string", b"")
        if source is not None and query.startswith(b"name=") and b"&" not in query and len(query) <= MAX_NAME_LENGTH:
            # The same decoding as Starlette's query parser (latin-1 bytes, then UTF-8 percent-escapes).
            name = unquote_plus(query[5:].decode("latin-1"))
            try:
                item = self.config.resolve(source, name) if name else None
                result = self.store.read(item) if item is not None else None
            except Exception:
                result = None  # the full path below meets the same failure and answers it properly
            if isinstance(result, Result):
                if self.metrics is not None:
                    self.metrics.count(source, STATE_COUNTERS[result.state])
                value = result.value
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", value.content_type.encode("latin-1")),
                    (b"content-length", str(len(value.body)).encode("latin-1")),
                    (b"x-cache", result.state.encode("latin-1")), (b"age", str(int(result.age)).encode("latin-1")),
                    (b"cache-control", max_age(result).encode("latin-1"))]})
                await send({"type": "http.response.body", "body": value.body})
                return
        await self.app(scope, receive, send)


def create_app(config: Config, store: Store, token: str, *, metrics: Metrics | None = None,
               ready: threading.Event | None = None) -> ASGIApp:
    async def health(request: Request) -> Response:
        """Readiness only (no token): 200 once INIT's prefetch is done, 503 before."""
        if ready is None or ready.is_set():
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "starting"}, status_code=503)

    async def stats(request: Request) -> Response:
        """The counters (token required); never a value, never a name."""
        return JSONResponse({"items": len(store), **(metrics.snapshot() if metrics else {})})

    routes = [Route(f"/{source}", reader(config, store, source, metrics), methods=["GET"])
              for source in ("parameters", "secrets", "dynamodb")]
    routes += [
        Route("/systemsmanager/parameters/get", ssm_compatible(config, store, metrics), methods=["GET"]),
        Route("/secretsmanager/get", secrets_compatible(config, store, metrics), methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/refresh", refresher(config, store), methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: internal_error})
    # No redirect from "/parameters/" to "/parameters": it would point at whatever Host the request named.
    app.router.redirect_slashes = False
    return Guard(FastHits(app, config, store, metrics), token, open_paths=frozenset({"/health"}))
