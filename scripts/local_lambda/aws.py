"""The AWS side of a local run: moto's real HTTP server on loopback.

The extension reaches it through ``AWS_ENDPOINT_URL`` with an unmodified boto3, so the
whole HTTP path (signing, JSON protocols, errors, retries) is exercised. A thin WSGI
middleware counts requests per operation and injects faults and delays.

moto keeps its state per process: every MotoServer in one process shares it (and so does
any ``mock_aws`` in the same process). ``reset()`` wipes it.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import Counter
from http import HTTPStatus
from typing import Any, Callable, Iterable

import boto3
from botocore.config import Config
from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from .ports import free_port  # noqa: F401 (the tests and scripts import it from here too)

SAMPLE_PARAMETER = ("CacheExtensions_Parameter1", "MyParameter")
SAMPLE_SECRET = ("secret_info", "MySecret")
SAMPLE_TABLE = "DynamoDbTable"
SAMPLE_ITEM: dict[str, Any] = {
    "pKey": {"S": "pKey1"},
    "sKey": {"S": "sKey1"},
    "Data": {"S": "DynamoDB sample data"},
    # Typed attributes, so clients see real JSON types rather than only strings.
    "Count": {"N": "42"},
    "Enabled": {"BOOL": True},
    "Tags": {"L": [{"S": "cache"}, {"S": "example"}]},
    "Settings": {"M": {"ttlSeconds": {"N": "300"}, "mode": {"S": "refresh-ahead"}}},
}

DUMMY_CREDENTIAL = "testing"

StartResponse = Callable[..., Any]


class _QuietHandler(MotoRequestHandler):
    """moto's request handler without werkzeug's line per request."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _Fault:
    def __init__(self, times: int | None, **details: Any) -> None:
        self.remaining = times  # None: until cleared
        self.details = details


class MotoServer:
    """moto's WSGI app served by werkzeug on a loopback port, in a daemon thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._app = DomainDispatcherApplication(create_backend_app)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()
        self._failures: dict[str, _Fault] = {}
        self._delays: dict[str, _Fault] = {}

    @property
    def endpoint(self) -> str:
        if self._server is None:
            raise RuntimeError("MotoServer not started")
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> MotoServer:
        if self._server is not None:
            raise RuntimeError("MotoServer already started")
        self._server = make_server(
            self.host, self.port, self._middleware, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="moto-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._server = None
        self._thread = None

    def __enter__(self) -> MotoServer:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- counting and faults -------------------------------------------------------------

    def calls(self, operation: str | None = None) -> int:
        """Requests seen, for one operation ("AmazonSSM.GetParameters") or in total."""
        with self._lock:
            if operation is None:
                return sum(self._calls.values())
            return self._calls[operation]

    def call_counts(self) -> dict[str, int]:
        """All per-operation counts (handy in assertion messages)."""
        with self._lock:
            return dict(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def fail(
        self,
        operation: str,
        *,
        status: int = 500,
        code: str = "InternalFailure",
        times: int | None = None,
        match: str | None = None,
    ) -> None:
        """Make the next `times` requests for `operation` fail with an AWS JSON error.

        With `match`, only requests whose body contains that text fail (say, one parameter's name).
        """
        with self._lock:
            self._failures[operation] = _Fault(times, status=status, code=code, match=match)

    def delay(self, operation: str, seconds: float, *, times: int | None = None) -> None:
        """Sleep `seconds` before handling the next `times` requests for `operation`."""
        with self._lock:
            self._delays[operation] = _Fault(times, seconds=seconds)

    def clear_faults(self) -> None:
        with self._lock:
            self._failures.clear()
            self._delays.clear()

    def reset(self) -> None:
        """Wipe moto's state (all services, whole process) through moto's own reset API."""
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def client(self, service: str, region: str = "us-west-2", *, config: Config | None = None) -> Any:
        """A boto3 client for this server, with dummy credentials."""
        session = boto3.session.Session(
            aws_access_key_id=DUMMY_CREDENTIAL,
            aws_secret_access_key=DUMMY_CREDENTIAL,
            aws_session_token=DUMMY_CREDENTIAL,
            region_name=region,
        )
        return session.client(service, endpoint_url=self.endpoint, config=config)

    # -- WSGI middleware -----------------------------------------------------------------

    def _middleware(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/moto-api/"):
            return self._app(environ, start_response)  # moto's control plane: not counted
        operation = _operation(environ)
        body = _buffer_body(environ)
        with self._lock:
            self._calls[operation] += 1
            delay = _take(self._delays, operation, body)
            failure = _take(self._failures, operation, body)
        if delay is not None:
            time.sleep(delay["seconds"])
        if failure is not None:
            return _error_response(environ, start_response, failure["status"], failure["code"])
        return self._app(environ, start_response)


def _operation(environ: dict[str, Any]) -> str:
    """ "<prefix>.<Action>" from X-Amz-Target (JSON protocols); a best effort otherwise."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target
    query = environ.get("QUERY_STRING", "")
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "Action" and value:
            return value
    return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"


def _buffer_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back, so faults can match on it and moto still reads it."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _take(faults: dict[str, _Fault], operation: str, body: bytes = b"") -> dict[str, Any] | None:
    """Consume one use of the fault for `operation`, if any applies (caller holds the lock)."""
    fault = faults.get(operation)
    if fault is None:
        return None
    match = fault.details.get("match")
    if match is not None and match.encode("utf-8") not in body:
        return None
    if fault.remaining is not None:
        fault.remaining -= 1
        if fault.remaining <= 0:
            del faults[operation]
    return fault.details


def aws_error(code: str) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of an AWS JSON 1.1 error, which botocore parses into a ClientError with `code`."""
    body = json.dumps({"__type": code, "message": "injected fault"}).encode()
    headers = [
        ("Content-Type", "application/x-amz-json-1.1"),
        ("x-amzn-ErrorType", code),
        ("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000"),
        ("Content-Length", str(len(body))),
    ]
    return headers, body


def _error_response(
    environ: dict[str, Any], start_response: StartResponse, status: int, code: str
) -> list[bytes]:
    # Drain the request body so the connection stays in a sane state.
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > 0:
        environ["wsgi.input"].read(length)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    headers, body = aws_error(code)
    start_response(f"{status} {reason}", headers)
    return [body]


def put_secret(client: Any, name: str, value: str | bytes) -> None:
    """Create the secret, or give it a new current version (text as SecretString, bytes as SecretBinary)."""
    kind = "SecretBinary" if isinstance(value, bytes) else "SecretString"
    try:
        client.create_secret(Name=name, **{kind: value})
    except client.exceptions.ResourceExistsException:
        client.put_secret_value(SecretId=name, **{kind: value})


def create_sample_resources(server: MotoServer, region: str = "us-west-2") -> None:
    """Create the resources of AWS's original cache-extension-demo sample.

    Idempotent (moto's state outlives a server within a process): existing resources get
    their sample values back. These requests are counted; call reset_calls() afterwards.
    """
    ssm = server.client("ssm", region)
    name, value = SAMPLE_PARAMETER
    ssm.put_parameter(Name=name, Value=value, Type="String", Overwrite=True)

    put_secret(server.client("secretsmanager", region), *SAMPLE_SECRET)

    dynamodb = server.client("dynamodb", region)
    try:
        dynamodb.create_table(
            TableName=SAMPLE_TABLE,
            KeySchema=[
                {"AttributeName": "pKey", "KeyType": "HASH"},
                {"AttributeName": "sKey", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pKey", "AttributeType": "S"},
                {"AttributeName": "sKey", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
    except dynamodb.exceptions.ResourceInUseException:
        pass
    dynamodb.put_item(TableName=SAMPLE_TABLE, Item=SAMPLE_ITEM)


def lambda_environment(
    *,
    endpoint: str,
    region: str,
    token: str,
    config: str | None = None,
    task_root: str | None = None,
    function_name: str = "cache-extension-example",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment Lambda gives an extension, pointed at a local AWS endpoint.

    Built from scratch: nothing from os.environ but PATH, so a developer's real AWS
    credentials or profile can never leak into a local run.

    The extension finds its config through CACHE_EXTENSION_CONFIG: `config` (a path), else
    `task_root`/config.yaml. There is no LAMBDA_TASK_ROOT: Lambda (and the emulator's launch(), as
    AWS's RIE) keeps it from extensions; launch_runtime() gives it to the runtime.
    """
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIAL,
        "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIAL,
        "AWS_SESSION_TOKEN": token,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    if config is not None or task_root is not None:
        env["CACHE_EXTENSION_CONFIG"] = config if config is not None else os.path.join(str(task_root), "config.yaml")
    env.update(extra or {})
    return env


