"""Read values the Lambda cache extension holds, with one local HTTP call.

    from cache_extension_client import get_parameter, get_secret, get_item

    region = get_parameter("/app/region")
    db = get_secret("app/db", transform="json")
    password = get_secret("app/db", key="password")  # one top-level key of a JSON object secret
    item = get_item("Table-hash-sort")  # numbers exact: int, or Decimal with a fraction or exponent
    refresh("/app/region")  # fetch it from AWS again now, past its TTL

Standard library only: it ships in the layer at /opt/python, which Python runtimes put on sys.path.
One keep-alive connection per client, reused across calls and invocations, on a plain socket (_transport.py).

The port comes from CACHE_EXTENSION_PORT, else PARAMETERS_SECRETS_EXTENSION_HTTP_PORT (AWS's Parameters and
Secrets extension's), else 4000; the token from CACHE_EXTENSION_TOKEN, else AWS_TOKEN (the Secrets Manager
Agent's), else AWS_SESSION_TOKEN, else AWS_CONTAINER_AUTHORIZATION_TOKEN (Lambda SnapStart has no session
token); an empty variable counts as unset. The extension chooses its port and token the same way. With no
token (none of them set, or ``token=""``), every call that would ask the extension raises CacheExtensionError
with code "MissingToken" and status 0 before it connects: nothing is sent. Offline values need no token.

DynamoDB numbers carry up to 38 significant digits, more than a float holds: get_item returns a whole number
as an int and any other number as a decimal.Decimal, every digit kept (boto3 gives Decimal for both).

Near cache: a value the extension answers with ``Cache-Control: max-age=N`` (the whole seconds it stays fresh
there) is kept in this process for N seconds, and reads of it in that time make no HTTP call at all (about a
microsecond instead of a loopback round trip). A kept copy never outlives the extension's own freshness;
``refresh(name)`` drops that name and ``refresh_all()`` everything before they ask the extension, but another
process's refresh does not reach this process's copy before its max-age runs out. Turn it off with
``CacheClient(near_cache=False)`` or ``CACHE_EXTENSION_CLIENT_CACHE=off`` (on/off, true/false, 1/0, yes/no).
At most 1,000 values are kept per client.

For tests without an extension, give values instead of a port, either in code,
``CacheClient(values={"parameters": {...}, "secrets": {...}, "dynamodb": {...}})``, or in a JSON file of
that shape named by the environment variable CACHE_EXTENSION_CLIENT_VALUES. A parameter or secret given as a
string is the value as stored in AWS (bytes in code: a binary secret); any other JSON value (dict, list, number,
boolean) stands for a value whose text is that JSON: read, it is its compact JSON text (numbers of the file as
written), with transform="json" the parsed value, with "binary" an error. An item is a dict. Anything else, None
included, is refused when the client is made: ValueError for values in code, CacheExtensionError for the file,
naming the section and the name, never the value.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
import time
from typing import Any
from urllib.parse import quote

from . import _keys, _offline
from ._transport import BadAnswer, Connection

__all__ = [
    "CacheClient", "get_parameter", "get_secret", "get_item", "refresh", "refresh_all",
    "CacheExtensionError", "NotFoundError", "UpstreamError", "ExtensionUnavailableError",
]

TOKEN_HEADER = "X-Aws-Parameters-Secrets-Token"
TRANSFORMS = (None, "json", "binary")
OFFLINE_SECTIONS = _offline.SECTIONS  # also the sources a refresh may name
# Failures of a GET while the extension starts: no connection yet, or one closed before any answer.
STARTUP_FAILURES = (ConnectionRefusedError, ConnectionResetError)
MAX_RETRY_AFTER = 2**31  # seconds: a larger Retry-After counts as this (RFC 9110 1.2.2's rule for delta-seconds)
# Where the token comes from, first non-empty one wins: the extension reads the same variables in this order.
TOKEN_VARIABLES = ("CACHE_EXTENSION_TOKEN", "AWS_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN")
# Where the port comes from, the same way: ours, else AWS's Parameters and Secrets extension's, else 4000.
PORT_VARIABLES = ("CACHE_EXTENSION_PORT", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
NEAR_CACHE_VARIABLE = "CACHE_EXTENSION_CLIENT_CACHE"
NEAR_CACHE_SWITCH = {"on": True, "true": True, "1": True, "yes": True, "off": False, "false": False, "0": False, "no": False}
NEAR_CACHE_MAX = 1000  # values kept per client: bounded whatever names a function reads
# The same words in every client: what to set when there is no token. Without one the extension answers 401, so the
# client says so itself, before it connects, rather than send a request that must fail.
MISSING_TOKEN = ("no token for the cache extension, so nothing was sent: set CACHE_EXTENSION_TOKEN to the "
                 "extension's token (on Lambda, AWS_SESSION_TOKEN, or AWS_CONTAINER_AUTHORIZATION_TOKEN with "
                 "SnapStart, is set for you; AWS_TOKEN is read too)")


class CacheExtensionError(Exception):
    """The extension answered with an error. `status` is the HTTP status (0 without one), `code` its
    `error` field, `retry_after` the answer's Retry-After in seconds (a float; the extension sends one, at least
    1, with 429 RateLimited), None without one in delta-seconds form: digits only, so an HTTP-date, a fraction
    or anything else is ignored. Messages name the route and the name, never a value."""

    def __init__(self, message: str, status: int = 0, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after


class NotFoundError(CacheExtensionError):
    """404: not configured in config.yaml, or not found upstream."""


class UpstreamError(CacheExtensionError):
    """502/504: AWS failed and the extension had nothing to serve."""


class ExtensionUnavailableError(CacheExtensionError):
    """The extension did not answer: not running, still starting past the bound, or timed out."""


class CacheClient:
    def __init__(self, *, port: int | None = None, token: str | None = None, timeout: float = 1.0,
                 startup_timeout: float = 2.0, refresh_timeout: float = 5.0, values: dict | None = None,
                 near_cache: bool | None = None) -> None:
        env = os.environ
        self.port = int(port if port is not None else next((env[n] for n in PORT_VARIABLES if env.get(n)), 4000))
        self._token = token if token is not None else next((env[n] for n in TOKEN_VARIABLES if env.get(n)), "")
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.refresh_timeout = refresh_timeout  # a refresh waits for AWS (the extension bounds that at 4 s)
        if values is None and env.get("CACHE_EXTENSION_CLIENT_VALUES"):
            self._values = _load_values(env["CACHE_EXTENSION_CLIENT_VALUES"])
        else:
            self._values = _offline.check(values) if values is not None else None
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # one connection: one request at a time
        if near_cache is None:
            near_cache = _near_cache_setting(env.get(NEAR_CACHE_VARIABLE, ""))
        # (route, name) -> (monotonic expiry, value): read without a lock (a dict lookup is atomic), written
        # under _near_lock. _generation counts drops, so that an answer that was in flight during a refresh is
        # not kept after it.
        self._near: dict[tuple[str, str], tuple[float, Any]] | None = {} if near_cache else None
        self._near_lock = threading.Lock()
        self._generation = 0

    def __repr__(self) -> str:  # the token stays out of reprs and logs
        return f"CacheClient(port={self.port}, offline={self._values is not None}, near_cache={self._near is not None})"

    def get_parameter(self, name: str, transform: str | None = None, *, key: str | None = None) -> Any:
        """An SSM parameter (or /aws/reference/secretsmanager/ID): str, or as transformed. key="K": only the
        top-level key K of a JSON object value, as text (then transformed)."""
        return self._read("parameters", name, transform, key)

    def get_secret(self, name: str, transform: str | None = None, *, key: str | None = None) -> Any:
        """A Secrets Manager secret: str (bytes for a binary secret), or as transformed. key="password": only
        that top-level key of a JSON object secret, as text (a non-string member as its JSON text); an absent
        key raises NotFoundError (code KeyNotFound), a value that is not a JSON object CacheExtensionError
        (status 400, code NotJsonObject)."""
        return self._read("secrets", name, transform, key)

    def _read(self, route: str, name: str, transform: str | None, key: str | None) -> Any:
        value = self._get(route, name)
        if key is not None:
            # Picked here from the whole value, which the near cache keeps: reading several keys of one secret
            # costs one request. The same rule as the extension's key= (_keys.py).
            value, problem = _keys.member(value, key)
            if problem is not None:
                status, code, message = problem
                kind = NotFoundError if status == 404 else CacheExtensionError
                raise kind(f"/{route} {name!r}: HTTP {status} {code}: {message}", status, code)
        return _transform(value, transform, route, name)

    def get_item(self, key: str) -> dict:
        """A DynamoDB item, by its TABLE-HASH[-SORT] address or configured name, as a dict. Numbers keep every
        digit: a whole number is an int, any other (a fraction or an exponent) a Decimal."""
        value = self._get("dynamodb", key)
        if not isinstance(value, bytes):
            return _copy(value)
        from decimal import Decimal  # here, not at import: about 1 ms of a function's cold start

        return json.loads(value, parse_float=Decimal)

    def refresh(self, name: str, source: str | None = None) -> dict:
        """Fetch NAME from AWS again now, past its TTL (POST /refresh), in SOURCE (parameters, secrets or
        dynamodb) or, without one, in every source that configures or allows it. Returns the extension's answer,
        ``{"refreshed": [{"source": ..., "name": ...}], "failed": []}``; a failed refresh raises as a failed read
        does (NotFoundError, UpstreamError), too many refreshes too fast a CacheExtensionError with status 429,
        code "RateLimited" and `retry_after`, the seconds until one is allowed again. With offline values: nothing
        to refresh, empty lists."""
        _check_name(name)
        if source is not None and source not in OFFLINE_SECTIONS:
            raise ValueError(f"source must be one of {', '.join(OFFLINE_SECTIONS)} or None, got {source!r}")
        query = f"name={quote(name, safe='')}" + (f"&source={source}" if source else "")
        self._forget(name, source)
        return self._refresh(query, f"/refresh {name!r}" + (f" in {source}" if source else ""))

    def refresh_all(self) -> dict:
        """Fetch every configured item from AWS again now (POST /refresh?all=true). Returns
        ``{"refreshed": [...], "failed": [{"source", "name", "status", "error"}, ...]}``: failures are listed,
        not raised."""
        self._forget(None, None)
        return self._refresh("all=true", "/refresh all")

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- transport ----------------------------------------------------------------------

    def _get(self, route: str, name: str) -> Any:
        near = self._near
        if near is not None:  # the fast path: no lock, no HTTP
            kept = near.get((route, name))
            if kept is not None and kept[0] > time.monotonic():
                return kept[1]
        _check_name(name)
        if self._values is not None:
            section = self._values.get(route, {})
            if name not in section:
                raise NotFoundError(f"/{route} {name!r} is not among the offline values", 404, "NotConfigured")
            return section[name]
        what = f"/{route} {name!r}"
        generation = self._generation
        content_type, body, max_age = self._call("GET", f"/{route}?name={quote(name, safe='')}", what, self.timeout)
        value = body if not content_type.startswith("text/") else body.decode("utf-8")
        if max_age and near is not None:
            self._keep((route, name), time.monotonic() + max_age, value, generation)
        return value

    def _keep(self, key: tuple[str, str], expires: float, value: Any, generation: int) -> None:
        near = self._near
        with self._near_lock:
            if generation != self._generation:
                return  # a refresh dropped entries while this answer was on its way: it may predate the refresh
            if key not in near and len(near) >= NEAR_CACHE_MAX:
                now = time.monotonic()
                for stale in [k for k, (until, _) in near.items() if until <= now]:
                    del near[stale]
                if len(near) >= NEAR_CACHE_MAX:
                    del near[next(iter(near))]  # the oldest kept
            near[key] = (expires, value)

    def _forget(self, name: str | None, source: str | None) -> None:
        """Drop NAME (in SOURCE, else in every route), or everything for None: before a refresh is sent."""
        if self._near is None:
            return
        with self._near_lock:
            self._generation += 1
            if name is None:
                self._near.clear()
                return
            for route in (source,) if source else OFFLINE_SECTIONS:
                self._near.pop((route, name), None)

    def _refresh(self, query: str, what: str) -> dict:
        if self._values is not None:
            return {"refreshed": [], "failed": []}  # offline: the values never go stale
        _, body, _ = self._call("POST", f"/refresh?{query}", what, self.refresh_timeout)
        try:
            result = json.loads(body)
        except ValueError:
            result = None
        if not isinstance(result, dict):
            raise CacheExtensionError(f"{what}: the extension's answer is not a JSON object", 200)
        return result

    def _call(self, method: str, path: str, what: str, timeout: float) -> tuple[str, bytes, int]:
        """One request; (content type, body, Cache-Control max-age or 0) of a 200. While the extension starts, a refused connection is
        retried, and for a GET (idempotent) also a connection closed before any answer and 503. A POST is never
        sent twice. Without a token, nothing: the MissingToken error."""
        if not self._token:
            raise CacheExtensionError(f"{what}: {MISSING_TOKEN}", 0, "MissingToken")
        retried = STARTUP_FAILURES if method == "GET" else (ConnectionRefusedError,)
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.01
        with self._lock:
            while True:
                try:
                    status, content_type, body, retry_after, max_age = self._request(method, path, timeout)
                except retried as exc:
                    reason = type(exc).__name__
                    status = None
                except (TimeoutError, OSError, BadAnswer) as exc:
                    self._drop()
                    raise ExtensionUnavailableError(
                        f"{what}: no answer from the cache extension on 127.0.0.1:{self.port} "
                        f"within {timeout} s ({type(exc).__name__})") from None
                if status == 200:
                    return content_type, body, max_age
                if status is not None and (status != 503 or method != "GET"):
                    raise _error(status, body, what, retry_after)
                if status == 503:
                    reason = "503 not ready"
                if time.monotonic() + delay > deadline:
                    raise ExtensionUnavailableError(
                        f"{what}: the cache extension is not reachable on 127.0.0.1:{self.port} "
                        f"after {self.startup_timeout} s ({reason})", 503 if status == 503 else 0,
                        retry_after=retry_after if status == 503 else None)
                time.sleep(delay)  # the extension may still be starting: back off briefly
                delay = min(delay * 2, 0.1)

    def _request(self, method: str, path: str, timeout: float) -> tuple[int, str, bytes, float | None, int]:
        if method != "GET":
            # Never sent twice, so on a new connection: one the extension closed while idle (say while Lambda
            # froze us) cannot fail it after it was sent.
            self._drop()
        request = self._request_bytes(method, path)
        for attempt in (1, 2):
            reused = self._connection is not None
            if reused:
                self._connection.sock.settimeout(timeout)
            else:
                self._connection = Connection(self.port, timeout)
            try:
                status, headers, body, will_close = self._connection.exchange(request)
            except (ConnectionResetError, BrokenPipeError):
                self._drop()
                if reused and attempt == 1:
                    continue  # the kept-alive connection was closed (e.g. while Lambda froze us): reconnect once
                raise
            except BaseException:
                self._drop()
                raise
            if will_close:
                self._drop()
            return (status, headers.get("content-type", ""), body, _retry_after(headers.get("retry-after")),
                    _max_age(headers.get("cache-control")))
        raise AssertionError("unreachable")

    def _request_bytes(self, method: str, path: str) -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{TOKEN_HEADER}: {self._token}\r\n"
        if method == "POST":
            head += "Content-Length: 0\r\n"
        try:
            request = (head + "\r\n").encode("ascii")
        except UnicodeEncodeError:
            request = b""
        if not request or "\r" in self._token or "\n" in self._token:
            # Never sent, never echoed: a header cannot carry it, and CR or LF would inject headers.
            raise CacheExtensionError("the token has characters an HTTP header cannot carry")
        return request

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not name:
        raise TypeError("name must be a non-empty string")


def _near_cache_setting(value: str) -> bool:
    if not value:
        return True  # empty counts as unset
    setting = NEAR_CACHE_SWITCH.get(value.lower())
    if setting is None:
        raise CacheExtensionError(f"{NEAR_CACHE_VARIABLE} is not one of on, off, true, false, 1, 0, yes, no "
                                  "(any case; empty counts as on)")
    return setting


def _max_age(value: str | None) -> int:
    """Cache-Control's max-age in whole seconds, 0 when absent, not digits, or with no-store or no-cache."""
    if not value:
        return 0
    max_age = None
    for directive in value.lower().split(","):
        key, _, argument = directive.partition("=")
        key = key.strip()
        if key in ("no-store", "no-cache"):
            return 0
        if key == "max-age":
            seconds = _delta_seconds(argument.strip().strip('"'))
            if max_age is not None or seconds is None:
                return 0  # two max-age directives: stale, as RFC 9111 4.2.1 says
            max_age = seconds
    return max_age or 0


def _retry_after(value: str | None) -> float | None:
    """Retry-After in delta-seconds (RFC 9110: digits only) as seconds, else None: an HTTP-date, a fraction,
    a sign or any other text is ignored, never raised."""
    seconds = _delta_seconds((value or "").strip(" \t"))
    return None if seconds is None else float(seconds)


def _delta_seconds(text: str) -> int | None:
    """RFC 9110's delta-seconds (digits only) as an int capped at MAX_RETRY_AFTER, else None."""
    if not (text.isascii() and text.isdigit()):  # ASCII: str.isdigit() also takes "²" or "٣"
        return None
    digits = text.lstrip("0") or "0"  # the length bounds int(): a long digit string is just the cap
    return MAX_RETRY_AFTER if len(digits) > 10 else min(int(digits), MAX_RETRY_AFTER)


def _error(status: int, body: bytes, what: str, retry_after: float | None = None) -> CacheExtensionError:
    try:
        detail = json.loads(body)
        code, message = str(detail.get("error")), str(detail.get("message"))
    except (ValueError, AttributeError):
        code, message = None, "no details"
    text = f"{what}: HTTP {status} {code}: {message}"
    kind = NotFoundError if status == 404 else UpstreamError if status in (502, 504) else CacheExtensionError
    return kind(text, status, code, retry_after)


def _transform(value: Any, transform: str | None, route: str, name: str) -> Any:
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of json, binary or None, got {transform!r}")
    if transform is None:
        return str(value) if isinstance(value, str) else value
    if transform == "json":
        try:
            return json.loads(value)
        except ValueError:
            raise CacheExtensionError(f"/{route} {name!r}: the value is not valid JSON") from None
    if isinstance(value, bytes):
        return value
    if isinstance(value, _offline.JsonText):  # base64 text is given as a string, never as a JSON value
        raise CacheExtensionError(f"/{route} {name!r}: transform 'binary' needs base64 text, and the offline value "
                                  "is a JSON value")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise CacheExtensionError(f"/{route} {name!r}: the value is not valid base64") from None


def _copy(value: Any) -> Any:
    """A substituted value, detached from the caller's: deepcopy, as it may hold Decimals, which JSON can't."""
    if not isinstance(value, (dict, list)):
        return value
    import copy

    return copy.deepcopy(value)


def _load_values(path: str) -> dict:
    try:
        return _offline.check(_offline.load(path))  # items' numbers exact, as get_item's are
    except (OSError, ValueError) as exc:
        # the error names the section and the name a check refused, never the file's content
        why = str(exc) if type(exc) is ValueError and str(exc).startswith("offline values") else type(exc).__name__
        raise CacheExtensionError(f"CACHE_EXTENSION_CLIENT_VALUES={path!r}: {why}") from None


_default: CacheClient | None = None
_default_lock = threading.Lock()


def default_client() -> CacheClient:
    """The shared client behind the module-level functions, created on first use."""
    global _default
    client = _default
    if client is None:  # no lock once it exists: the module functions stay on the near cache's fast path
        with _default_lock:
            if _default is None:
                _default = CacheClient()
            client = _default
    return client


def get_parameter(name: str, transform: str | None = None, *, key: str | None = None) -> Any:
    return default_client().get_parameter(name, transform, key=key)


def get_secret(name: str, transform: str | None = None, *, key: str | None = None) -> Any:
    return default_client().get_secret(name, transform, key=key)


def get_item(key: str) -> dict:
    return default_client().get_item(key)


def refresh(name: str, source: str | None = None) -> dict:
    return default_client().refresh(name, source)


def refresh_all() -> dict:
    return default_client().refresh_all()
