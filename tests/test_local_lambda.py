"""Tests of the local emulators themselves: the Extensions API emulator and the moto server."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from botocore.config import Config

from local_lambda.aws import (
    SAMPLE_PARAMETER,
    SAMPLE_SECRET,
    SAMPLE_TABLE,
    MotoServer,
    create_sample_resources,
    free_port,
    lambda_environment,
)
from local_lambda.extensions_api import (
    ExtensionCrashed,
    ExtensionsApiEmulator,
    InitFailed,
)

BASE = "/2020-01-01/extension"

# A throwaway extension. MODE selects the (mis)behaviour under test.
FAKE_EXTENSION = """\
#!{python}
import json, os, sys, time, urllib.error, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2020-01-01/extension"
NAME = os.path.basename(sys.argv[0])
MODE = os.environ.get("MODE", "good")
EVENTS = [e for e in os.environ.get("EVENTS", "INVOKE,SHUTDOWN").split(",") if e]


def call(method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(API + path, data=data, method=method, headers=headers or {{}})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


if MODE == "exit":
    print("giving up before register", flush=True)
    sys.exit(1)
if MODE == "sleep":
    time.sleep(60)
    sys.exit(0)

name = "wrong-" + NAME if MODE == "wrong_name" else NAME
status, headers, body = call(
    "POST", "/register", {{"events": EVENTS}},
    {{"Lambda-Extension-Name": name, "Lambda-Extension-Accept-Feature": "accountId"}},
)
print("register", status, json.dumps(body), flush=True)
if status != 200:
    sys.exit(1)
ident = headers["Lambda-Extension-Identifier"]

if MODE == "init_error":
    status, _, _ = call(
        "POST", "/init/error",
        {{"errorMessage": "bad config", "errorType": "Extension.ConfigInvalid", "stackTrace": []}},
        {{"Lambda-Extension-Identifier": ident, "Lambda-Extension-Function-Error-Type": "Extension.ConfigInvalid"}},
    )
    print("init/error", status, flush=True)
    sys.exit(1)

while True:
    status, headers, event = call("GET", "/event/next", None, {{"Lambda-Extension-Identifier": ident}})
    if status != 200:
        print("next failed", status, flush=True)
        sys.exit(1)
    detail = event.get("requestId") or event.get("shutdownReason")
    print("event", event["eventType"], detail, headers["Lambda-Extension-Event-Identifier"], flush=True)
    if event["eventType"] == "INVOKE" and MODE == "crash_on_invoke":
        sys.exit(3)
    if event["eventType"] == "SHUTDOWN" and MODE != "ignore_shutdown":
        sys.exit(0)
"""


def write_extension(directory: Path, name: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(FAKE_EXTENSION.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def ext_env(mode: str = "good", **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "MODE": mode, **extra}


def api(
    emulator: ExtensionsApiEmulator,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    *,
    raw: bytes | None = None,
) -> tuple[int, Any, Any]:
    """One request to the emulator from the test itself: (status, headers, JSON body)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        f"http://{emulator.address}{path}", data=data, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def emulator() -> Any:
    with ExtensionsApiEmulator(region="us-west-2") as emu:
        yield emu


@pytest.fixture
def ext_dir(tmp_path: Path) -> Path:
    return tmp_path / "extensions"


# -- Extensions API emulator -----------------------------------------------------------------


def test_register_invoke_shutdown_flow(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    ext = emulator.launch(write_extension(ext_dir, "good-ext"), ext_env())
    emulator.wait_init(timeout=10)

    assert ext.name == "good-ext"
    assert ext.identifier and ext.events == ["INVOKE", "SHUTDOWN"]
    assert ext.registered_at is not None and ext.init_done_at is not None
    assert ext.launched_at < ext.registered_at <= ext.init_done_at
    assert wait_for(lambda: "register 200" in ext.output)
    registered = json.loads(ext.output.split("register 200 ", 1)[1].splitlines()[0])
    assert registered == {
        "functionName": "cache-extension-example",
        "functionVersion": "$LATEST",
        "handler": "app.handler",
        "accountId": "123456789012",
    }

    before = time.time() * 1000
    event = emulator.invoke("req-1", timeout=5)
    assert event["eventType"] == "INVOKE" and event["requestId"] == "req-1"
    assert before < event["deadlineMs"] <= time.time() * 1000 + 5000
    assert event["invokedFunctionArn"] == (
        "arn:aws:lambda:us-west-2:123456789012:function:cache-extension-example"
    )
    assert event["tracing"]["type"] == "X-Amzn-Trace-Id"
    assert event["tracing"]["value"].startswith("Root=1-")
    assert wait_for(lambda: "event INVOKE req-1" in ext.output)

    emulator.invoke("req-2", timeout=5)
    assert wait_for(lambda: "event INVOKE req-2" in ext.output)

    result = emulator.shutdown(timeout=2)
    assert set(result) == {"good-ext"}
    assert result["good-ext"] is not None and result["good-ext"] < 2
    assert ext.wait_exit(1) == 0
    assert "event SHUTDOWN spindown" in ext.output
    assert ext.exited_at is not None and ext.exited_at >= ext.init_done_at

    calls = [(c.call, c.status) for c in emulator.calls if c.extension == "good-ext"]
    assert calls[0] == ("register", 200)
    assert calls[1:] == [("event/next", 200)] * 3  # two INVOKEs and the SHUTDOWN


def test_invoke_only_waits_for_subscribers(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    invoked = emulator.launch(write_extension(ext_dir, "both"), ext_env())
    shutdown_only = emulator.launch(
        write_extension(ext_dir, "shutdown-only"), ext_env(EVENTS="SHUTDOWN")
    )
    emulator.wait_init(timeout=10)
    assert shutdown_only.events == ["SHUTDOWN"]

    emulator.invoke("only-one", timeout=5)
    assert wait_for(lambda: "event INVOKE only-one" in invoked.output)
    assert "INVOKE" not in shutdown_only.output

    result = emulator.shutdown(timeout=2)
    assert result["both"] is not None and result["shutdown-only"] is not None


def test_register_with_wrong_name_fails_init(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    ext = emulator.launch(write_extension(ext_dir, "named"), ext_env("wrong_name"))
    with pytest.raises(InitFailed) as failure:
        emulator.wait_init(timeout=10)
    assert "register 403" in ext.output
    assert "Extension.InvalidExtensionName" in ext.output
    assert failure.value.errors[0]["error_type"] == "Extension.Crash"
    assert "register 403" in str(failure.value)  # outputs are part of the message


def test_init_error_is_recorded_and_fails_init(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    ext = emulator.launch(write_extension(ext_dir, "broken"), ext_env("init_error"))
    with pytest.raises(InitFailed) as failure:
        emulator.wait_init(timeout=10)
    assert ext.init_errors == [
        {
            "error_type": "Extension.ConfigInvalid",
            "body": {
                "errorMessage": "bad config",
                "errorType": "Extension.ConfigInvalid",
                "stackTrace": [],
            },
        }
    ]
    assert failure.value.errors[0]["extension"] == "broken"
    assert failure.value.errors[0]["error_type"] == "Extension.ConfigInvalid"
    assert ext.wait_exit(2) == 1
    assert "init/error 202" in ext.output


def test_exit_before_init_fails_fast(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    ext = emulator.launch(write_extension(ext_dir, "quitter"), ext_env("exit"))
    started = time.monotonic()
    with pytest.raises(InitFailed) as failure:
        emulator.wait_init(timeout=10)
    assert time.monotonic() - started < 5  # detected by the exit, not by the timeout
    assert failure.value.errors == [
        {
            "extension": "quitter",
            "error_type": "Extension.Crash",
            "body": "exited with code 1 before Init finished",
        }
    ]
    assert "giving up before register" in str(failure.value)
    assert ext.registered_at is None


def test_wait_init_times_out(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    emulator.launch(write_extension(ext_dir, "sleeper"), ext_env("sleep"))
    with pytest.raises(TimeoutError, match="sleeper"):
        emulator.wait_init(timeout=0.3)


def test_shutdown_kills_extension_that_ignores_it(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    ext = emulator.launch(write_extension(ext_dir, "stubborn"), ext_env("ignore_shutdown"))
    emulator.wait_init(timeout=10)
    started = time.monotonic()
    result = emulator.shutdown(timeout=0.5)
    elapsed = time.monotonic() - started
    assert result == {"stubborn": None}
    assert 0.5 <= elapsed < 2.0
    assert ext.wait_exit(1) is not None and ext.process is not None
    assert ext.process.returncode < 0  # killed by a signal
    assert wait_for(lambda: "event SHUTDOWN spindown" in ext.output)


def test_crash_during_invoke_is_reported(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    emulator.launch(write_extension(ext_dir, "crasher"), ext_env("crash_on_invoke"))
    emulator.wait_init(timeout=10)
    with pytest.raises(ExtensionCrashed, match="crasher"):
        emulator.invoke(timeout=5)


def test_register_validation(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    # The extension just sleeps; the test speaks the protocol in its name.
    emulator.launch(write_extension(ext_dir, "puppet"), ext_env("sleep"))
    register = f"{BASE}/register"
    events = {"events": ["INVOKE", "SHUTDOWN"]}

    status, _, body = api(emulator, "POST", register, events, {"Lambda-Extension-Name": "nobody"})
    assert status == 403 and set(body) == {"errorMessage", "errorType"}
    status, _, _ = api(emulator, "POST", register, events)  # no name at all
    assert status == 403

    name = {"Lambda-Extension-Name": "puppet"}
    assert api(emulator, "POST", register, {"events": ["INVOKE", "BOGUS"]}, name)[0] == 400
    assert api(emulator, "POST", register, {"events": "INVOKE"}, name)[0] == 400
    assert api(emulator, "POST", register, None, name, raw=b"{not json")[0] == 400

    status, headers, body = api(emulator, "POST", register, {"events": ["SHUTDOWN"]}, name)
    assert status == 200
    identifier = headers["Lambda-Extension-Identifier"]
    assert "accountId" not in body  # feature not requested
    status, _, body = api(emulator, "POST", register, events, name)
    assert status == 403  # registers once

    status, _, body = api(emulator, "GET", f"{BASE}/event/next", None, {"Lambda-Extension-Identifier": "nope"})
    assert status == 403 and body["errorType"]
    assert api(emulator, "GET", f"{BASE}/event/next")[0] == 403

    ident = {"Lambda-Extension-Identifier": identifier}
    assert api(emulator, "POST", f"{BASE}/init/error", {}, ident)[0] == 400  # no error type
    assert api(emulator, "POST", f"{BASE}/init/error", {}, {"Lambda-Extension-Function-Error-Type": "X.Y"})[0] == 403
    status, _, body = api(
        emulator, "POST", f"{BASE}/exit/error", None,
        {**ident, "Lambda-Extension-Function-Error-Type": "Extension.Boom"}, raw=b"not json",
    )
    assert (status, body) == (202, {"status": "OK"})
    assert emulator.extensions[0].exit_errors == [{"error_type": "Extension.Boom", "body": "not json"}]

    # event/next from a thread: it marks Init done and blocks until the emulator closes.
    answer: list[int] = []
    thread = threading.Thread(
        target=lambda: answer.append(api(emulator, "GET", f"{BASE}/event/next", None, ident)[0]),
        daemon=True,
    )
    thread.start()
    assert wait_for(lambda: emulator.extensions[0].init_done_at is not None)
    assert api(emulator, "POST", register, events, name)[0] == 403
    status, _, _ = api(
        emulator, "POST", f"{BASE}/init/error", {},
        {**ident, "Lambda-Extension-Function-Error-Type": "Extension.Late"},
    )
    assert status == 403  # Init is over
    emulator.wait_init(timeout=1)

    emulator.close()
    thread.join(timeout=5)
    assert not thread.is_alive() and answer == [500]


def test_unknown_path_and_wrong_method(emulator: ExtensionsApiEmulator) -> None:
    assert api(emulator, "GET", "/2020-01-01/extension/nope")[0] == 404
    assert api(emulator, "GET", "/2018-06-01/runtime/invocation/next")[0] == 404
    status, headers, _ = api(emulator, "GET", f"{BASE}/register")
    assert status == 405 and headers["Allow"] == "POST"
    assert api(emulator, "POST", f"{BASE}/event/next", {})[0] == 405
    assert api(emulator, "PUT", f"{BASE}/exit/error", {})[0] == 405


def test_close_is_idempotent_and_kills_processes(ext_dir: Path) -> None:
    emulator = ExtensionsApiEmulator().start()
    ext = emulator.launch(write_extension(ext_dir, "sleepy"), ext_env("sleep"))
    emulator.close()
    emulator.close()
    assert ext.wait_exit(2) is not None


# -- moto server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Any:
    with MotoServer() as server:
        create_sample_resources(server)
        yield server


@pytest.fixture
def aws(moto: MotoServer) -> Any:
    moto.reset_calls()
    moto.clear_faults()
    yield moto
    moto.clear_faults()


def test_sample_resources_read_back(aws: MotoServer) -> None:
    ssm = aws.client("ssm")
    name, value = SAMPLE_PARAMETER
    parameter = ssm.get_parameters(Names=[name])["Parameters"][0]
    assert (parameter["Value"], parameter["Type"]) == (value, "String")

    secret_id, secret_value = SAMPLE_SECRET
    secrets = aws.client("secretsmanager")
    values = secrets.batch_get_secret_value(SecretIdList=[secret_id])["SecretValues"]
    assert values[0]["SecretString"] == secret_value

    dynamodb = aws.client("dynamodb")
    key = {"pKey": {"S": "pKey1"}, "sKey": {"S": "sKey1"}}
    response = dynamodb.batch_get_item(RequestItems={SAMPLE_TABLE: {"Keys": [key]}})
    item = response["Responses"][SAMPLE_TABLE][0]
    assert item["Data"] == {"S": "DynamoDB sample data"}
    assert {"N", "BOOL", "L", "M"} <= {next(iter(v)) for v in item.values()}

    # Idempotent: moto's state outlives a server within the process.
    create_sample_resources(aws)


def test_calls_are_counted_per_operation(aws: MotoServer) -> None:
    ssm = aws.client("ssm")
    ssm.get_parameters(Names=[SAMPLE_PARAMETER[0]])
    ssm.get_parameters(Names=[SAMPLE_PARAMETER[0]])
    aws.client("secretsmanager").batch_get_secret_value(SecretIdList=[SAMPLE_SECRET[0]])
    assert aws.calls("AmazonSSM.GetParameters") == 2
    assert aws.calls("secretsmanager.BatchGetSecretValue") == 1
    assert aws.calls("DynamoDB_20120810.BatchGetItem") == 0
    assert aws.calls() == 3
    aws.reset_calls()
    assert aws.calls() == 0


def test_fail_injects_exactly_n_errors(aws: MotoServer) -> None:
    # total_max_attempts=1: one request per call, no retries (max_attempts counts retries).
    ssm = aws.client("ssm", config=Config(retries={"total_max_attempts": 1}))
    aws.fail("AmazonSSM.GetParameters", status=503, code="ThrottlingException", times=2)
    for _ in range(2):
        with pytest.raises(botocore.exceptions.ClientError) as error:
            ssm.get_parameters(Names=[SAMPLE_PARAMETER[0]])
        assert error.value.response["Error"]["Code"] == "ThrottlingException"
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    parameters = ssm.get_parameters(Names=[SAMPLE_PARAMETER[0]])["Parameters"]
    assert parameters[0]["Value"] == SAMPLE_PARAMETER[1]
    assert aws.calls("AmazonSSM.GetParameters") == 3  # failed requests count too


def test_fail_until_cleared_and_delay(aws: MotoServer) -> None:
    secrets = aws.client("secretsmanager", config=Config(retries={"total_max_attempts": 1}))
    aws.fail("secretsmanager.BatchGetSecretValue")
    for _ in range(3):
        with pytest.raises(botocore.exceptions.ClientError):
            secrets.batch_get_secret_value(SecretIdList=[SAMPLE_SECRET[0]])
    aws.clear_faults()
    secrets.batch_get_secret_value(SecretIdList=[SAMPLE_SECRET[0]])

    aws.delay("secretsmanager.BatchGetSecretValue", 0.5, times=1)
    started = time.monotonic()
    secrets.batch_get_secret_value(SecretIdList=[SAMPLE_SECRET[0]])
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    secrets.batch_get_secret_value(SecretIdList=[SAMPLE_SECRET[0]])
    assert time.monotonic() - started < 0.5


def test_lambda_environment_does_not_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "real-account")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREAL")
    env = lambda_environment(
        endpoint="http://127.0.0.1:1", region="eu-west-1", token="tok", task_root="/var/task",
        extra={"CACHE_EXTENSION_TTL": "30s"},
    )
    assert "AWS_PROFILE" not in env
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SESSION_TOKEN"] == "tok"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_CONFIG_FILE"] == env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert env["CACHE_EXTENSION_TTL"] == "30s"
    assert env["PATH"] == os.environ["PATH"]


def test_free_port() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
