"""The HTTP API: routes, the token and loopback rules, and errors. It reads the store, never AWS.

App.handle answers a parsed Request. What needs no waiting (a cache hit, every refusal, /health, /stats)
is answered at once with a Response; only a read that must wait for an in-flight fetch (or a forced
refresh) returns a coroutine, which the server runs as a Task.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
from concurrent.futures import Future
from typing import Awaitable, Callable, Union

from .config import Config, Item
from .fetchers import FetchError
from .http_common import (MAX_HEADER_BYTES, MAX_HEADERS, HTTPError, Request, Response, error, is_proxy_header,
                          json_response, query_value)
from .http_limits import announces_body
from .json_keys import MemberError, member
from .metrics import Metrics
from .refresh import BUCKET_RATE, BUCKET_SIZE, TokenBucket, refresher
from .store import Result, Store

log = logging.getLogger("cache_extension.http")

TEXT = b"text/plain; charset=utf-8"
TOKEN_HEADER = b"x-aws-parameters-secrets-token"
# The Secrets Manager Agent also takes the token in X-Vault-Token (its default ssrf_headers); accepted on the
# agent's routes only, so that our own routes keep one header.
VAULT_HEADER = b"x-vault-token"

Answer = Union[Response, Awaitable[Response]]
Fail = Callable[[int, str, str], Response]  # (status, code, message) -> the error response
Handler = Callable[[Request], Answer]

# Requests carry no body and modest headers: MAX_BODY, MAX_HEADERS, MAX_HEADER_BYTES (http_common.py), enforced
# as the bytes arrive by the server (http_protocol.py) and checked here again.
# Methods per path: GET (and HEAD, answered like GET without the body) everywhere, POST only to force a refresh.
POST_PATHS = frozenset({"/refresh"})
ALLOWED = frozenset({"GET", "HEAD"})


def is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1")


class Guard:
    """Every request carries the token and comes straight from the function.

    The sockets are bound to loopback, and the peer is checked again here. A proxy header (Forwarded, Via,
    X-Forwarded-*, X-Real-IP) means a proxy relayed the request (an SSRF path into the sandbox), so it is
    refused.
    """

    def __init__(self, token: str, open_paths: frozenset[str] = frozenset(),
                 agent_paths: frozenset[str] = frozenset(), agent_prefixes: tuple[str, ...] = ()) -> None:
        self.token = token.encode("utf-8")
        self.open_paths = open_paths  # answered without a token: they say nothing about any value
        # The Secrets Manager Agent's routes: X-Vault-Token accepted too, and a missing token is 403 as there.
        self.agent_paths = agent_paths
        self.agent_prefixes = agent_prefixes

    def is_agent_route(self, path: str) -> bool:
        return path in self.agent_paths or path.startswith(self.agent_prefixes)

    def refuse(self, request: Request) -> Response | None:
        """The error response for a request that may not go on, or None."""
        client = request.client
        if client and not is_loopback(client[0]):
            return error(403, "NotLoopback", "only the function in this sandbox may call the extension")
        method, path = request.method, request.path
        if method not in ALLOWED and not (method == "POST" and path in POST_PATHS):
            allow = "GET, HEAD, POST" if path in POST_PATHS else "GET, HEAD"
            response = error(405, "MethodNotAllowed", f"{method[:16]} is not allowed here (allowed: {allow})")
            return response.header(b"allow", allow)
        headers = request.headers
        if len(headers) > MAX_HEADERS:
            return error(431, "HeadersTooLarge", f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes")
        presented: dict[bytes, bytes] = {}
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if is_proxy_header(name):
                return error(400, "ForwardedRequest",
                             "requests relayed by a proxy (Forwarded, Via, X-Forwarded-*, X-Real-IP) are refused")
            if announces_body(name, value):
                return error(413, "BodyTooLarge", "requests carry no body (arguments go in the query)")
            if name == TOKEN_HEADER or name == VAULT_HEADER:
                if name in presented:
                    return error(400, "BadRequest", "the token header is repeated")
                presented[name] = value
        if size > MAX_HEADER_BYTES:
            return error(431, "HeadersTooLarge", f"at most {MAX_HEADERS} headers and {MAX_HEADER_BYTES} bytes")
        if path in self.open_paths:
            return None
        agent = self.is_agent_route(path)
        if not agent:
            presented.pop(VAULT_HEADER, None)
        if not presented:
            # 401 on our routes; the agent answers 403 for a missing token as for a wrong one.
            return error(403 if agent else 401, "MissingToken", "header X-Aws-Parameters-Secrets-Token is required")
        # Every token header given must match (both compared, in constant time, whatever the first says).
        matches = [hmac.compare_digest(value, self.token) for value in presented.values()]
        if not all(matches):
            return error(403, "InvalidToken", "header X-Aws-Parameters-Secrets-Token does not match")
        return None


def not_configured(source: str, fail: Fail = error) -> Response:
    log.debug("refused %s read of a name not in the config", source)
    return fail(404, "NotConfigured", f"the name is not configured or allowed under '{source}' in config.yaml")


# X-Cache state -> the counter it adds to.
STATE_COUNTERS = {"hit": "Hits", "miss": "Misses", "stale": "StaleServed"}


def lookup(store: Store, item: Item | None, source: str, metrics: Metrics | None,
           answer: Callable[[Result], Response], fail: Fail = error) -> Answer:
    """The item's value answered by `answer`, or the error response: at once when the cache can say, else a
    coroutine that waits for the in-flight fetch. No item means the config neither lists nor allows the name."""
    if item is None:
        return not_configured(source, fail)
    result = store.read(item)
    if isinstance(result, Future):
        if not result.done():
            return waited(result, source, metrics, answer, fail)
        try:
            result = result.result()  # a failure the store still holds: no need to wait
        except FetchError as exc:
            return _failed(exc, source, metrics, fail)
    return _served(result, source, metrics, answer)


async def waited(future: Future, source: str, metrics: Metrics | None, answer: Callable[[Result], Response],
                 fail: Fail = error):
    try:
        # shield: a client that hangs up must not cancel a fetch other readers share.
        result = await asyncio.shield(asyncio.wrap_future(future))
    except FetchError as exc:
        return _failed(exc, source, metrics, fail)
    return _served(result, source, metrics, answer)


def _served(result: Result, source: str, metrics: Metrics | None, answer: Callable[[Result], Response]) -> Response:
    if metrics is not None:
        metrics.count(source, STATE_COUNTERS[result.state])
    return answer(result)


def _failed(exc: FetchError, source: str, metrics: Metrics | None, fail: Fail = error) -> Response:
    if metrics is not None:
        metrics.count(source, "Misses")
    return fail(exc.status, exc.code, exc.message)


def cache_headers(result: Result) -> list[tuple[bytes, bytes]]:
    """X-Cache, Age, and Cache-Control's max-age: whole seconds of freshness left, rounded down so that a
    client's copy never outlives ours; 0 for stale values and misses."""
    return [(b"x-cache", result.state.encode("ascii")), (b"age", b"%d" % int(result.age)),
            (b"cache-control", b"max-age=%d" % int(result.fresh_for))]


def value_response(result: Result) -> Response:
    """The original sample's routes: the body is the value itself."""
    value = result.value
    return Response(200, value.body, value.content_type.encode("latin-1"), cache_headers(result))


def member_response(key: str) -> Callable[[Result], Response]:
    """key=K: one top-level member of a JSON object value, as text (json_keys.py)."""
    def answer(result: Result) -> Response:
        value = result.value
        try:
            text = member(value.body, value.content_type, key)
        except MemberError as exc:
            return error(exc.status, exc.code, exc.message)
        return Response(200, text.encode("utf-8"), TEXT, cache_headers(result))

    return answer


def reader(config: Config, store: Store, source: str, metrics: Metrics | None = None) -> Handler:
    keyed = source != "dynamodb"  # an item is already a JSON object: its attributes are the client's to pick

    def read(request: Request) -> Answer:
        item = config.resolve(source, query_value(request, "name"))
        key = query_value(request, "key", required=False)
        if key is not None and not keyed:
            raise HTTPError(400, "query parameter 'key' is for /parameters and /secrets, not /dynamodb")
        return lookup(store, item, source, metrics, member_response(key) if key is not None else value_response)

    return read


def internal_error(exc: BaseException) -> Response:
    log.error("request failed with %s", type(exc).__name__)  # the type only: a message could quote a value
    return error(500, "InternalError", "the extension failed to answer this request")


def not_found(request: Request) -> Response:
    # No redirect from "/parameters/" to "/parameters": it would point at whatever Host the request named.
    return HTTPError(404, "Not Found").response()


class App:
    """The Guard, then a route by exact path. A route's methods: GET (HEAD answered alike) or POST."""

    def __init__(self, guard: Guard, routes: dict[str, tuple[frozenset[str], Handler]],
                 prefixes: dict[str, tuple[frozenset[str], Handler]] | None = None) -> None:
        self.guard = guard
        self.routes = routes
        self.prefixes = prefixes or {}  # routes that take the rest of the path as an argument (the agent's /v1/)

    def handle(self, request: Request) -> Answer:
        try:
            refusal = self.guard.refuse(request)
            if refusal is not None:
                return refusal
            route = self.routes.get(request.path) or self._by_prefix(request.path)
            if route is None:
                return not_found(request)
            methods, handler = route
            if request.method not in methods:
                raise HTTPError(405, "Method Not Allowed", {"Allow": ", ".join(sorted(methods))})
            answer = handler(request)
        except HTTPError as exc:
            return exc.response()
        except Exception as exc:
            return internal_error(exc)
        return answer if isinstance(answer, Response) else self._finish(answer)

    def _by_prefix(self, path: str) -> tuple[frozenset[str], Handler] | None:
        for prefix, route in self.prefixes.items():
            if path.startswith(prefix):
                return route
        return None

    @staticmethod
    async def _finish(answer: Awaitable[Response]) -> Response:
        try:
            return await answer
        except HTTPError as exc:
            return exc.response()
        except Exception as exc:
            return internal_error(exc)


def create_app(config: Config, store: Store, token: str, *, metrics: Metrics | None = None,
               ready: threading.Event | None = None) -> App:
    def health(request: Request) -> Response:
        """Readiness only (no token): 200 once INIT's prefetch is done, 503 before."""
        if ready is None or ready.is_set():
            return json_response({"status": "ready"})
        return json_response({"status": "starting"}, 503)

    def stats(request: Request) -> Response:
        """The counters (token required); never a value, never a name."""
        return json_response({"items": len(store), **(metrics.snapshot() if metrics else {})})

    from . import aws_routes

    get = frozenset({"GET", "HEAD"})
    bucket = TokenBucket(BUCKET_SIZE, BUCKET_RATE)  # POST /refresh and the agent's refreshNow=true share it
    routes: dict[str, tuple[frozenset[str], Handler]] = {
        f"/{source}": (get, reader(config, store, source, metrics)) for source in ("parameters", "secrets", "dynamodb")}
    routes.update({
        "/health": (get, health),
        "/stats": (get, stats),
        "/refresh": (frozenset({"POST"}), refresher(config, store, bucket)),
    })
    compatible = aws_routes.routes(config, store, bucket, metrics)
    routes.update((path, (get, handler)) for path, handler in compatible.items())
    prefixes = {aws_routes.AGENT_PREFIX: (get, aws_routes.agent_path_route(config, store, bucket, metrics))}
    guard = Guard(token, open_paths=frozenset({"/health", "/ping"}), agent_paths=aws_routes.AGENT_PATHS,
                  agent_prefixes=(aws_routes.AGENT_PREFIX,))
    return App(guard, routes, prefixes)
