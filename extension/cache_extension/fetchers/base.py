"""The fetcher interface, the error type every source maps its failures to, and boto3 clients.

Fetchers never know about HTTP or the cache: they turn configured items into values (or errors).
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

if TYPE_CHECKING:
    from ..config import Item

# Short timeouts: a cache that hangs on AWS is worse than none. botocore makes one attempt per call:
# retries belong to the store's policy (backoff with full jitter, a circuit per source), so every
# call is counted and bounded in one place.
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 3.0
MAX_ATTEMPTS = 1

log = logging.getLogger("cache_extension.fetchers")

# AWS error codes that mean "it is not there" rather than "AWS failed".
NOT_FOUND_CODES = frozenset(
    {"ParameterNotFound", "ParameterVersionNotFound", "ResourceNotFoundException", "ItemNotFound"}
)
# Codes that mean "AWS is busy or failing": worth retrying after a backoff (as are 5xx, timeouts, resets).
THROTTLING_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "RequestThrottled",
    "RequestThrottledException", "LimitExceededException", "SlowDown",
})
SERVER_CODES = frozenset({
    "InternalFailure", "InternalError", "InternalServerError", "InternalServerErrorException",
    "InternalServiceError", "InternalServiceErrorException", "ServiceUnavailable", "ServiceUnavailableException",
})

# Codes that fail a whole call whatever it asks for (credentials, signing): splitting the batch cannot help.
WHOLE_CALL_CODES = frozenset({
    "NoCredentials", "UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException",
    "IncompleteSignature", "MissingAuthenticationToken", "ExpiredToken", "ExpiredTokenException",
    "SignatureDoesNotMatch", "UnknownOperationException",
})


@dataclass(frozen=True)
class Value:
    """A fetched value, already in the bytes the HTTP layer sends."""

    body: bytes
    content_type: str
    # What AWS said about the value besides the value itself (ARN, version, type, dates), for the
    # AWS-compatible routes. Never secret.
    meta: dict | None = field(default=None, compare=False)

    def __repr__(self) -> str:  # values are secrets: never let one reach a log line or traceback
        return f"Value(<{len(self.body)} bytes>, {self.content_type!r})"


class FetchError(Exception):
    """An upstream failure with nothing in it but a code: AWS messages can quote request data."""

    def __init__(self, code: str, status: int, message: str, *, transient: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status  # what the HTTP layer answers when nothing is servable: 400, 404, 502 or 504
        self.message = message
        self.transient = transient  # worth retrying later: throttling, 5xx, timeouts, resets

    @classmethod
    def from_code(cls, code: str, operation: str, http_status: int = 0) -> FetchError:
        """An error AWS answered with a code: 404 when the code means "not there", else 502."""
        transient = code in THROTTLING_CODES or code in SERVER_CODES or http_status >= 500
        return cls(code, 404 if code in NOT_FOUND_CODES else 502, f"{operation} failed with {code}",
                   transient=transient)

    @classmethod
    def from_exception(cls, exc: BaseException, operation: str) -> FetchError:
        """Map a botocore exception (or anything else) to a code and status, without its text."""
        if isinstance(exc, FetchError):
            return exc
        response = getattr(exc, "response", None)
        if isinstance(response, dict):  # botocore ClientError
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return cls.from_code(str(response.get("Error", {}).get("Code") or "UnknownError"), operation, status)
        name = type(exc).__name__
        if name in ("ReadTimeoutError", "ConnectTimeoutError"):
            return cls("Timeout", 504, f"{operation} timed out", transient=True)
        if name in ("EndpointConnectionError", "ConnectionClosedError", "ProxyConnectionError",
                    "ConnectionError", "ConnectionResetError", "ConnectionRefusedError", "BrokenPipeError",
                    "HTTPClientError"):
            return cls("ConnectionError", 502, f"{operation} could not reach AWS", transient=True)
        if name == "ParamValidationError":  # botocore refused the request before sending it (say, a short VersionId)
            return cls("InvalidParameter", 400, f"{operation} refused the request's parameters")
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            return cls("NoCredentials", 502, f"{operation} has no AWS credentials")
        return cls(name, 502, f"{operation} failed with {name}")


def not_found(what: str) -> FetchError:
    return FetchError("NotFound", 404, f"{what} was not found upstream")


class ClientFactory:
    """botocore clients, created on first use per (service, region) and shared by all threads.

    botocore rather than boto3: the extension needs no resources, and the endpoint still comes from
    botocore's own configuration, so AWS_ENDPOINT_URL(_SSM, ...) points it at an emulator unchanged.
    """

    def __init__(self, metrics: Any = None, roles: Any = None) -> None:
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[tuple, Any] = {}
        self._metrics = metrics
        self._roles = roles  # roles.RoleSessions: made on the first call with a role_arn

    def get(self, service: str, region: str, role: Any = None) -> Any:
        """A client for the service in the region: with the extension's credentials, or the role's (roles.py)."""
        key = (service, region, role)
        client = self._clients.get(key)
        if client is not None:
            return client
        if role is not None:
            if self._roles is None:
                from .roles import RoleSessions

                with self._lock:
                    if self._roles is None:
                        self._roles = RoleSessions(lambda sts_region: self.get("sts", sts_region))
            session = self._roles.session(role, region)
        with self._lock:  # sessions are not thread-safe; clients are
            client = self._clients.get(key)
            if client is None:
                import botocore.session
                from botocore.config import Config

                if self._session is None:
                    self._session = botocore.session.get_session()
                config = Config(
                    connect_timeout=CONNECT_TIMEOUT,
                    read_timeout=READ_TIMEOUT,
                    retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
                    max_pool_connections=16,
                    user_agent_extra="lambda-cache-extension",
                )
                client = (session if role is not None else self._session).create_client(
                    service, region_name=region, config=config)
                if self._metrics is not None:
                    _count_calls(client, self._metrics)
                self._clients[key] = client
        return client


def _count_calls(client: Any, metrics: Any) -> None:
    """Count every AWS API call (after botocore's retries) with its error code and latency."""
    import time

    prefix = client.meta.service_model.service_name

    def done(event_name: str, context: dict, code: str | None) -> None:
        started = context.get("cache_extension_started")
        elapsed = time.monotonic() - started if started is not None else 0.0
        metrics.upstream_call(f"{prefix}:{event_name.rsplit('.', 1)[-1]}", elapsed, code)

    def before(context, **_):
        context["cache_extension_started"] = time.monotonic()

    def after(event_name, http_response, parsed, context, **_):
        failed = http_response.status_code >= 300
        code = (parsed.get("Error", {}).get("Code") or str(http_response.status_code)) if failed else None
        done(event_name, context, code)

    def error(event_name, exception, context, **_):
        done(event_name, context, type(exception).__name__)

    client.meta.events.register("before-call", before)
    client.meta.events.register("after-call", after)
    client.meta.events.register("after-call-error", error)


class Fetcher:
    """One AWS source. Subclasses set `source` and `batch_size` and implement `fetch_batch`."""

    source = ""
    operation = ""  # the AWS API call named in errors and logs
    batch_size = 1

    def __init__(self, clients: ClientFactory) -> None:
        self.clients = clients

    def get_many(self, items: Sequence[Item]) -> dict[str, Value | FetchError]:
        """Fetch up to `batch_size` items; one outcome per item name, never an exception."""
        outcomes: dict[str, Value | FetchError] = {}
        for group in _by_region(items):
            outcomes.update(self.isolated(group, self.fetch_batch, self.operation))
        for item in items:  # a response that silently left an item out is an error too
            outcomes.setdefault(item.name, FetchError("NoResult", 502, f"{self.operation} returned no result"))
        return outcomes

    def fetch_batch(self, items: Sequence[Item]) -> dict[str, Value | FetchError]:
        """Fetch items that share a region, in as few calls as the API allows."""
        raise NotImplementedError

    def split(self, items: Sequence[Item]) -> list[Sequence[Item]]:
        """Two parts of a batch whose call failed, to find the item(s) the failure belongs to."""
        half = len(items) // 2
        return [items[:half], items[half:]]

    def isolated(self, items: Sequence[Item], call: Callable[[Sequence[Item]], dict], operation: str,
                 ) -> dict[str, Value | FetchError]:
        """call(items), never raising. A batch call fails whole for one bad item (a DynamoDB table that does not
        exist, a name AWS refuses, a reference to a missing secret): when it fails for good (not throttling or
        an outage, which the store retries and its circuit counts), the batch is asked again in halves, down to
        the item(s) the error belongs to, so the others are fetched and the error is reported for the bad ones
        only. Bisection keeps it to about 2 calls per level for one bad item, and a budget bounds the calls
        whatever fails (say, a role denied the whole API): at most 4 * log2(n) extra calls."""
        budget = [4 * max(1, math.ceil(math.log2(max(len(items), 2))))]
        return self._isolated(items, call, operation, budget)

    def _isolated(self, items: Sequence[Item], call: Callable, operation: str, budget: list[int]) -> dict:
        try:
            return call(items)
        except Exception as exc:  # one failed call fails its items, not the process
            error = FetchError.from_exception(exc, operation)
        parts = [part for part in self.split(items) if part] if len(items) > 1 else []
        if error.transient or error.code in WHOLE_CALL_CODES or len(parts) < 2 or budget[0] < len(parts):
            return {item.name: error for item in items}
        budget[0] -= len(parts)
        log.info("%s failed with %s for %d items: asking again in parts, to find the item(s) it belongs to",
                 operation, error.code, len(items))
        outcomes: dict[str, Value | FetchError] = {}
        for part in parts:
            outcomes.update(self._isolated(part, call, operation, budget))
        return outcomes


def _by_region(items: Iterable[Item]) -> list[list[Item]]:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.region, []).append(item)
    return list(groups.values())


def text_value(text: str, meta: dict | None = None) -> Value:
    return Value(text.encode("utf-8"), "text/plain; charset=utf-8", meta)


def metadata(response: dict, fields: tuple[str, ...]) -> dict:
    """The named fields of an AWS response, dates as RFC 3339 (as AWS's Go SDK writes them in JSON)."""
    meta = {}
    for name in fields:
        value = response.get(name)
        if isinstance(value, datetime):
            value = value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        meta[name] = value
    return meta
