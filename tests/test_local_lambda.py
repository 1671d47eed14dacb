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
    InvokeTimedOut,
    LambdaEmulator,
    RuntimeExited,
    new_trace_id,
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


print("env", json.dumps(dict(os.environ), sort_keys=True), flush=True)
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
    print(f"ERROR [{{NAME}}] bad config", flush=True)  # as the cache extension logs it
    status, _, _ = call(
        "POST", "/init/error",
        {{"errorMessage": "bad config", "errorType": "Extension.ConfigInvalid", "stackTrace": []}},
        {{"Lambda-Extension-Identifier": ident, "Lambda-Extension-Function-Error-Type": "Extension.ConfigInvalid"}},
    )
    print("init/error", status, flush=True)
    sys.exit(1)

if MODE == "slow_next":
    time.sleep(float(os.environ.get("DELAY", "0.5")))  # a long Extension init: prefetching, say
while True:
    status, headers, event = call("GET", "/event/next", None, {{"Lambda-Extension-Identifier": ident}})
    if status != 200:
        print("next failed", status, flush=True)
        sys.exit(1)
    detail = event.get("requestId") or event.get("shutdownReason")
    print("event", event["eventType"], detail, headers.get("Lambda-Extension-Event-Identifier"), flush=True)
    print("json", json.dumps(event), flush=True)
    if event["eventType"] == "INVOKE" and MODE == "crash_on_invoke":
        sys.exit(3)
    if event["eventType"] == "INVOKE" and MODE == "slow_invoke":
        time.sleep(float(os.environ.get("DELAY", "0.5")))  # work after the runtime's response
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
    assert "tracing" not in event  # as RIE: no trace id on the invoke, no tracing
    assert wait_for(lambda: "event INVOKE req-1" in ext.output)

    event = emulator.invoke("req-2", timeout=5, trace_id="Root=1-5e1b4151-5ac6c58f5b5daa6532e4c8e0;Sampled=0")
    assert event["tracing"] == {"type": "X-Amzn-Trace-Id", "value": "Root=1-5e1b4151-5ac6c58f5b5daa6532e4c8e0;Sampled=0"}
    assert wait_for(lambda: "event INVOKE req-2" in ext.output)

    result = emulator.shutdown(timeout=2)
    assert set(result) == {"good-ext"}
    assert result["good-ext"] is not None and result["good-ext"] < 2
    assert ext.wait_exit(1) == 0
    assert "event SHUTDOWN SandboxTerminated None" in ext.output  # RIE's reason on SIGTERM, no event id
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
    assert ext.wait_exit(10) == 1  # reported, then exited, as Lambda asks: still one error, its own type
    with pytest.raises(InitFailed) as failure:
        emulator.wait_init(timeout=10)
    assert len(failure.value.errors) == 1, failure.value.errors
    assert str(failure.value).startswith("Init failed: broken: Extension.ConfigInvalid\n")
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


def test_echo_tags_each_line_once_and_errors_do_not_repeat_it(ext_dir: Path, capsys: pytest.CaptureFixture) -> None:
    """run-local's view: output echoed as it comes, tagged with the process's name unless the line names it."""
    with ExtensionsApiEmulator(echo=True) as emulator:
        ext = emulator.launch(write_extension(ext_dir, "broken"), ext_env("init_error"))
        assert ext.wait_exit(10) == 1
        with pytest.raises(InitFailed) as failure:
            emulator.wait_init(timeout=10)
    echoed = capsys.readouterr().out
    assert "\nERROR [broken] bad config\n" in "\n" + echoed  # not "[broken] ERROR [broken] ..."
    assert "[broken] init/error 202" in echoed
    assert str(failure.value) == "Init failed: broken: Extension.ConfigInvalid"  # the output is above, not again


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
    assert wait_for(lambda: "event SHUTDOWN SandboxTerminated" in ext.output)


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
    # RIE answers every register error with 403 and its own error types.
    status, _, body = api(emulator, "POST", register, {"events": ["INVOKE", "BOGUS"]}, name)
    assert (status, body) == (403, {"errorMessage": "BOGUS: ErrorInvalidEventType", "errorType": "Extension.InvalidEventType"})
    status, _, body = api(emulator, "POST", register, {"events": "INVOKE"}, name)
    assert (status, body["errorType"]) == (403, "InvalidRequestFormat")
    status, _, body = api(emulator, "POST", register, None, name, raw=b"{not json")
    assert (status, body["errorType"]) == (403, "InvalidRequestFormat")

    status, headers, body = api(emulator, "POST", register, {"events": ["SHUTDOWN"]}, name)
    assert status == 200
    identifier = headers["Lambda-Extension-Identifier"]
    assert "accountId" not in body  # feature not requested
    status, _, body = api(emulator, "POST", register, events, name)
    assert (status, body["errorType"]) == (403, "Extension.InvalidExtensionState")  # registers once
    assert body["errorMessage"].startswith("State transition from Registered to Registered failed for extension puppet")

    status, _, body = api(emulator, "GET", f"{BASE}/event/next", None, {"Lambda-Extension-Identifier": "nope"})
    assert (status, body["errorType"]) == (403, "Extension.InvalidExtensionIdentifier")
    status, _, body = api(emulator, "GET", f"{BASE}/event/next", None,
                          {"Lambda-Extension-Identifier": "00000000-0000-0000-0000-000000000000"})
    assert (status, body["errorType"]) == (403, "Extension.UnknownExtensionIdentifier")
    status, _, body = api(emulator, "GET", f"{BASE}/event/next")
    assert (status, body["errorType"]) == (403, "Extension.MissingExtensionIdentifier")

    ident = {"Lambda-Extension-Identifier": identifier}
    status, _, body = api(emulator, "POST", f"{BASE}/init/error", {}, ident)  # no error type
    assert (status, body["errorType"]) == (403, "Extension.MissingHeader")
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
    assert status == 403  # Init is over (Extension.InvalidExtensionState)
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


# -- Runtime API ---------------------------------------------------------------------------------

RUNTIME = "/2018-06-01/runtime"

# A throwaway runtime: the loop of a custom runtime, with urllib. MODE selects the (mis)behaviour.
FAKE_RUNTIME = """\
import json, os, sys, time, urllib.error, urllib.request

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"
MODE = os.environ.get("MODE", "echo")
ENV_KEYS = ["AWS_LAMBDA_RUNTIME_API", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_FUNCTION_NAME",
            "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "AWS_SESSION_TOKEN",
            "AWS_LAMBDA_LOG_GROUP_NAME"]


def call(method, path, body=None, headers=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(API + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


if MODE == "sleep":
    time.sleep(60)
    sys.exit(0)
if MODE == "exit":
    print("crashing during init", flush=True)
    sys.exit(4)
if MODE == "init_error":
    print(f"ERROR [{{NAME}}] bad config", flush=True)  # as the cache extension logs it
    status, _, _ = call("POST", "/init/error",
                        {"errorMessage": "No module named 'app'", "errorType": "Runtime.ImportModuleError", "stackTrace": []},
                        {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
    print("init/error", status, flush=True)
    sys.exit(1)
if MODE == "slow_init":
    time.sleep(float(os.environ.get("DELAY", "0.5")))  # the function's module code

while True:
    status, headers, body = call("GET", "/invocation/next")
    if status != 200:
        print("next failed", status, flush=True)
        sys.exit(1)
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    print("invoke", request_id, flush=True)
    if MODE == "exit_on_invoke":
        sys.exit(2)
    if MODE == "no_response":
        time.sleep(60)
    if MODE == "hang_once" and not os.path.exists(os.environ["MARKER"]):
        open(os.environ["MARKER"], "w").close()
        time.sleep(60)
    if MODE == "error":
        document = {"errorMessage": "it broke", "errorType": "ValueError", "stackTrace": ["line 1"]}
        status, _, _ = call("POST", f"/invocation/{request_id}/error", document,
                            {"Lambda-Runtime-Function-Error-Type": "Unhandled"})
        print("error", status, flush=True)
        continue
    if MODE == "error_text":
        status, _, _ = call("POST", f"/invocation/{request_id}/error", b"plain text",
                            {"Lambda-Runtime-Function-Error-Type": "Runtime.Custom"})
        continue
    if MODE == "raw":
        status, _, _ = call("POST", f"/invocation/{request_id}/response", b"not json")
        continue
    wrong, _, _ = call("POST", "/invocation/not-a-request-id/response", {})
    answer = {
        "event": json.loads(body),
        "headers": {k: v for k, v in headers.items() if k.lower().startswith("lambda-runtime-")},
        "content_type": headers.get("Content-Type"),
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "all_env": dict(os.environ),
        "wrong_id_status": wrong,
    }
    status, _, _ = call("POST", f"/invocation/{request_id}/response", answer)
    again, _, _ = call("POST", f"/invocation/{request_id}/response", answer)
    print("response", status, "again", again, flush=True)
"""


def write_runtime(directory: Path) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fake_runtime.py"
    path.write_text(FAKE_RUNTIME)
    return [sys.executable, "-u", str(path)]


def runtime_env(mode: str = "echo", **extra: str) -> dict[str, str]:
    # No LAMBDA_TASK_ROOT: launch_runtime sets it from cwd.
    return lambda_environment(endpoint="http://127.0.0.1:9", region="us-west-2", token="session-token",
                              extra={"MODE": mode, **extra})


@pytest.fixture
def lam() -> Any:
    with LambdaEmulator(region="us-west-2", handler="app.handler") as emu:
        yield emu


def test_extensions_api_emulator_is_the_lambda_emulator() -> None:
    assert ExtensionsApiEmulator is LambdaEmulator


def test_runtime_invoke_round_trip(lam: LambdaEmulator, ext_dir: Path, tmp_path: Path) -> None:
    ext = lam.launch(write_extension(ext_dir, "good-ext"), ext_env())
    runtime = lam.launch_runtime(write_runtime(tmp_path), runtime_env(), cwd=str(tmp_path))
    lam.wait_init(timeout=10)
    assert runtime.init_done_at is not None and runtime.launched_at >= ext.registered_at

    trace = new_trace_id()
    result = lam.invoke({"hello": "world"}, timeout=5, trace_id=trace)
    assert result.ok and result.error is None
    answer = result.response
    assert json.loads(result.payload) == answer
    assert answer["event"] == {"hello": "world"}
    headers = answer["headers"]
    # One request id for the runtime and the extensions.
    assert headers["Lambda-Runtime-Aws-Request-Id"] == result.request_id == result.event["requestId"]
    assert int(headers["Lambda-Runtime-Deadline-Ms"]) == result.event["deadlineMs"]
    assert headers["Lambda-Runtime-Invoked-Function-Arn"] == result.event["invokedFunctionArn"] == (
        "arn:aws:lambda:us-west-2:123456789012:function:cache-extension-example"
    )
    assert headers["Lambda-Runtime-Trace-Id"] == result.event["tracing"]["value"] == trace
    assert answer["content_type"] == "application/json"
    assert answer["wrong_id_status"] == 400  # InvalidRequestID
    assert answer["env"] == {
        "AWS_LAMBDA_RUNTIME_API": lam.address,
        "_HANDLER": "app.handler",
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "AWS_LAMBDA_FUNCTION_NAME": "cache-extension-example",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_REGION": "us-west-2",
        "AWS_SESSION_TOKEN": "session-token",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/cache-extension-example",
    }
    assert 0 < result.duration < 5
    assert result.init_duration is not None and result.init_duration == lam.init_duration
    assert result.init_duration >= runtime.init_done_at - ext.launched_at - 1e-6
    assert wait_for(lambda: f"event INVOKE {result.request_id}" in ext.output)
    assert wait_for(lambda: "response 202 again 403" in runtime.output)  # one answer per invocation

    second = lam.invoke(None, request_id="req-2", timeout=5)
    assert second.request_id == "req-2" and second.response["event"] == {}
    # As RIE: without a trace id, no tracing for the extensions and no Lambda-Runtime-Trace-Id for the runtime.
    assert "tracing" not in second.event and "Lambda-Runtime-Trace-Id" not in second.response["headers"]
    assert second.init_duration is None  # only the cold invoke reports Init
    assert wait_for(lambda: "event INVOKE req-2" in ext.output and "invoke req-2" in runtime.output)
    with pytest.raises(ValueError, match="already used"):
        lam.invoke({}, request_id="req-2", timeout=5)

    runtime_calls = [(c.call, c.status) for c in lam.calls if c.call.startswith("runtime/")]
    assert runtime_calls[:4] == [
        ("runtime/invocation/next", 200),
        ("runtime/invocation/response", 400),
        ("runtime/invocation/response", 202),
        ("runtime/invocation/response", 403),
    ]


def test_init_ends_when_the_runtime_is_ready(lam: LambdaEmulator, ext_dir: Path, tmp_path: Path) -> None:
    ext = lam.launch(write_extension(ext_dir, "quick"), ext_env())
    runtime = lam.launch_runtime(write_runtime(tmp_path), runtime_env("slow_init", DELAY="0.6"), cwd=str(tmp_path))
    with pytest.raises(RuntimeError, match="wait_init"):
        lam.invoke({}, timeout=1)  # not before Init is over
    lam.wait_init(timeout=10)
    assert ext.init_done_at is not None and runtime.init_done_at is not None
    assert runtime.init_done_at - runtime.launched_at >= 0.6
    assert runtime.init_done_at > ext.init_done_at  # the extension was ready long before
    assert lam.init_duration == pytest.approx(runtime.init_done_at - ext.launched_at)
    assert lam.invoke({}, timeout=5).init_duration == pytest.approx(lam.init_duration)


def test_init_ends_when_the_extensions_are_ready(ext_dir: Path, tmp_path: Path) -> None:
    with LambdaEmulator(register_delay=0.3) as lam:
        ext = lam.launch(write_extension(ext_dir, "slow"), ext_env("slow_next", DELAY="0.6"))
        started = time.monotonic()
        runtime = lam.launch_runtime(write_runtime(tmp_path), runtime_env(), cwd=str(tmp_path))
        # Extension init first: the runtime starts once every extension has registered.
        assert time.monotonic() - started >= 0.25
        assert ext.registered_at is not None and runtime.launched_at >= ext.registered_at
        lam.wait_init(timeout=10)
        assert ext.init_done_at is not None and runtime.init_done_at is not None
        assert ext.init_done_at > runtime.init_done_at
        assert ext.init_done_at - ext.registered_at >= 0.6
        assert lam.init_duration == pytest.approx(ext.init_done_at - ext.launched_at)


def test_invoke_waits_for_the_extensions(lam: LambdaEmulator, ext_dir: Path, tmp_path: Path) -> None:
    ext = lam.launch(write_extension(ext_dir, "busy"), ext_env("slow_invoke", DELAY="0.5"))
    lam.launch_runtime(write_runtime(tmp_path), runtime_env(), cwd=str(tmp_path))
    lam.wait_init(timeout=10)
    started = time.monotonic()
    result = lam.invoke({}, timeout=5)
    elapsed = time.monotonic() - started
    assert result.ok
    assert elapsed >= 0.5  # the extension's work after the response is part of the invoke
    assert result.duration < 0.5  # but not of the function's Duration
    assert result.post_runtime_duration >= 0.4
    assert ext.idle


def test_function_error(lam: LambdaEmulator, tmp_path: Path) -> None:
    runtime = lam.launch_runtime(write_runtime(tmp_path), runtime_env("error"), cwd=str(tmp_path))
    lam.wait_init(timeout=10)
    result = lam.invoke({}, timeout=5)
    assert not result.ok and result.error is not None
    assert (result.error.error_type, result.error.message) == ("ValueError", "it broke")
    assert result.response == {"errorMessage": "it broke", "errorType": "ValueError", "stackTrace": ["line 1"]}
    assert wait_for(lambda: "error 202" in runtime.output)
    # The environment lives on: the next invoke works the same way.
    assert lam.invoke({}, timeout=5).error.error_type == "ValueError"


def test_function_error_type_from_header_and_raw_payloads(tmp_path: Path) -> None:
    with LambdaEmulator() as lam:
        lam.launch_runtime(write_runtime(tmp_path / "a"), runtime_env("error_text"), cwd=str(tmp_path))
        lam.wait_init(timeout=10)
        result = lam.invoke({}, timeout=5)
        assert result.error is not None
        assert (result.error.error_type, result.error.message) == ("Runtime.Custom", "plain text")
        assert result.payload == b"plain text" and result.response is None
    with LambdaEmulator() as lam:
        lam.launch_runtime(write_runtime(tmp_path / "b"), runtime_env("raw"), cwd=str(tmp_path))
        lam.wait_init(timeout=10)
        result = lam.invoke(b'["raw", "event"]', timeout=5)
        assert result.ok and result.payload == b"not json" and result.response is None


def test_runtime_init_error_fails_init(lam: LambdaEmulator, ext_dir: Path, tmp_path: Path) -> None:
    lam.launch(write_extension(ext_dir, "fine"), ext_env())
    runtime = lam.launch_runtime(write_runtime(tmp_path), runtime_env("init_error"), cwd=str(tmp_path))
    with pytest.raises(InitFailed) as failure:
        lam.wait_init(timeout=10)
    assert failure.value.errors[0] == {
        "runtime": "runtime",
        "error_type": "Runtime.ImportModuleError",
        "body": {"errorMessage": "No module named 'app'", "errorType": "Runtime.ImportModuleError", "stackTrace": []},
    }
    assert runtime.wait_exit(2) == 1
    assert "init/error 202" in runtime.output


def test_runtime_exit_during_init_fails_fast(lam: LambdaEmulator, tmp_path: Path) -> None:
    lam.launch_runtime(write_runtime(tmp_path), runtime_env("exit"), cwd=str(tmp_path))
    started = time.monotonic()
    with pytest.raises(InitFailed) as failure:
        lam.wait_init(timeout=10)
    assert time.monotonic() - started < 5
    assert failure.value.errors == [
        {"runtime": "runtime", "error_type": "Runtime.ExitError", "body": "exited with code 4 before Init finished"}
    ]
    assert "crashing during init" in str(failure.value)


def test_runtime_exit_during_invoke(lam: LambdaEmulator, ext_dir: Path, tmp_path: Path) -> None:
    lam.launch(write_extension(ext_dir, "watcher"), ext_env())
    lam.launch_runtime(write_runtime(tmp_path), runtime_env("exit_on_invoke"), cwd=str(tmp_path))
    lam.wait_init(timeout=10)
    result = lam.invoke({}, request_id="doomed", timeout=5)
    assert result.error is not None and result.error.error_type == "Runtime.ExitError"
    assert "exit status 2" in result.error.message and result.response["errorType"] == "Runtime.ExitError"
    with pytest.raises(RuntimeExited):
        lam.invoke({}, timeout=5)


def test_invoke_timeout_is_bounded(lam: LambdaEmulator, tmp_path: Path) -> None:
    lam.launch_runtime(write_runtime(tmp_path), runtime_env("no_response"), cwd=str(tmp_path))
    lam.wait_init(timeout=10)
    started = time.monotonic()
    result = lam.invoke({}, timeout=0.5)
    # RIE answers 200 with this text; no extension registered, so the runtime is killed at once.
    assert result.timed_out and result.payload == b"Task timed out after 0.50 seconds"
    assert result.error is not None and result.error.error_type == "Sandbox.Timedout"
    assert time.monotonic() - started < 2


def test_runtime_api_protocol(lam: LambdaEmulator, tmp_path: Path) -> None:
    # The runtime just sleeps; the test speaks the protocol in its name.
    lam.launch_runtime(write_runtime(tmp_path), runtime_env("sleep"), cwd=str(tmp_path))
    assert api(lam, "GET", f"{RUNTIME}/nope")[0] == 404
    status, headers, _ = api(lam, "POST", f"{RUNTIME}/invocation/next", {})
    assert status == 405 and headers["Allow"] == "GET"
    assert api(lam, "GET", f"{RUNTIME}/invocation/x/response")[0] == 405
    status, _, body = api(lam, "POST", f"{RUNTIME}/invocation/unknown/response", {})
    assert status == 400 and body["errorType"] == "InvalidRequestID"

    events: list[Any] = []

    def next_invocation() -> None:
        request = urllib.request.Request(f"http://{lam.address}{RUNTIME}/invocation/next")
        with urllib.request.urlopen(request, timeout=10) as response:
            events.append((response.status, dict(response.headers), json.loads(response.read())))

    poller = threading.Thread(target=next_invocation, daemon=True)
    poller.start()
    lam.wait_init(timeout=5)  # the first invocation/next ends the runtime's Init
    results: list[Any] = []
    invoker = threading.Thread(target=lambda: results.append(lam.invoke({"n": 1}, request_id="r/1", timeout=5)), daemon=True)
    invoker.start()
    poller.join(timeout=5)
    status, headers, event = events[0]
    assert status == 200 and event == {"n": 1}
    assert headers["Lambda-Runtime-Aws-Request-Id"] == "r/1"
    assert int(headers["Lambda-Runtime-Deadline-Ms"]) > time.time() * 1000
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:cache-extension-example")
    assert "Lambda-Runtime-Trace-Id" not in headers  # no trace id on the invoke (RIE leaves the header out)

    path = f"{RUNTIME}/invocation/r%2F1/response"  # request ids are URL-encoded in the path
    status, _, body = api(lam, "POST", path, {"answer": 42})
    assert (status, body) == (202, {"status": "OK"})
    invoker.join(timeout=5)
    assert results and results[0].response == {"answer": 42}
    status, _, body = api(lam, "POST", path, {"answer": 43})
    assert status == 403 and body["errorType"] == "InvalidStateTransition"
    status, _, _ = api(lam, "POST", f"{RUNTIME}/init/error", {"errorType": "X"}, {"Lambda-Runtime-Function-Error-Type": "X"})
    assert status == 403  # Init is over


def test_shutdown_stops_the_runtime_first(lam: LambdaEmulator, ext_dir: Path, tmp_path: Path) -> None:
    ext = lam.launch(write_extension(ext_dir, "last"), ext_env())
    runtime = lam.launch_runtime(write_runtime(tmp_path), runtime_env(), cwd=str(tmp_path))
    lam.wait_init(timeout=10)
    lam.invoke({}, timeout=5)
    result = lam.shutdown(timeout=2)
    assert set(result) == {"last"} and result["last"] is not None
    assert runtime.wait_exit(1) is not None and runtime.exited_at is not None
    assert ext.exited_at is not None and runtime.exited_at <= ext.exited_at
    assert "event SHUTDOWN SandboxTerminated" in ext.output
    with pytest.raises(RuntimeError):
        lam.invoke({}, timeout=1)


def test_close_kills_the_runtime(tmp_path: Path) -> None:
    lam = LambdaEmulator().start()
    runtime = lam.launch_runtime(write_runtime(tmp_path), runtime_env("sleep"), cwd=str(tmp_path))
    lam.close()
    assert runtime.wait_exit(2) is not None


def test_runtime_is_launched_once_and_after_the_extensions(lam: LambdaEmulator, ext_dir: Path, tmp_path: Path) -> None:
    lam.launch_runtime(write_runtime(tmp_path), runtime_env("sleep"), cwd=str(tmp_path))
    with pytest.raises(RuntimeError, match="already"):
        lam.launch_runtime(write_runtime(tmp_path), runtime_env("sleep"), cwd=str(tmp_path))
    with pytest.raises(RuntimeError, match="before the runtime"):
        lam.launch(write_extension(ext_dir, "late"), ext_env())


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
        endpoint="http://127.0.0.1:1", region="eu-west-1", token="tok", config="/var/task/config.yaml",
        extra={"CACHE_EXTENSION_TTL": "30s"},
    )
    # The extension's config comes through CACHE_EXTENSION_CONFIG: Lambda keeps LAMBDA_TASK_ROOT from extensions.
    assert env["CACHE_EXTENSION_CONFIG"] == "/var/task/config.yaml" and "LAMBDA_TASK_ROOT" not in env
    assert lambda_environment(endpoint="http://127.0.0.1:1", region="eu-west-1", token="tok",
                              task_root="/opt/app")["CACHE_EXTENSION_CONFIG"] == "/opt/app/config.yaml"
    assert "AWS_PROFILE" not in env
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_SESSION_TOKEN"] == "tok"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert env["AWS_CONFIG_FILE"] == env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert env["CACHE_EXTENSION_TTL"] == "30s"
    assert env["PATH"] == os.environ["PATH"]


def test_free_port() -> None:
    port = free_port()
    assert 1024 <= port <= 65535


# -- agreement with AWS's Runtime Interface Emulator (RIE) ------------------------------------------


def extension_env_seen(ext: Any) -> dict[str, str]:
    assert wait_for(lambda: "env {" in ext.output)
    return json.loads(ext.output.split("env ", 1)[1].splitlines()[0])


def test_extensions_get_no_runtime_only_variables(lam: LambdaEmulator, ext_dir: Path) -> None:
    runtime_only = {"LAMBDA_TASK_ROOT": "/var/task", "_HANDLER": "app.handler", "LAMBDA_RUNTIME_DIR": "/var/runtime",
                    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
                    "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000", "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
                    "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129", "_AWS_XRAY_DAEMON_PORT": "2000",
                    "_X_AMZN_TRACE_ID": "Root=1-x"}
    ext = lam.launch(write_extension(ext_dir, "env-ext"), ext_env(**runtime_only, CUSTOMER_VAR="kept"))
    lam.wait_init(timeout=10)
    seen = extension_env_seen(ext)
    assert not set(runtime_only) & set(seen)
    assert seen["CUSTOMER_VAR"] == "kept" and seen["AWS_LAMBDA_RUNTIME_API"] == lam.address
    # what RIE was seen to give extensions too (tests/test_parity.py): the function's names and the log stream
    assert seen["AWS_LAMBDA_FUNCTION_NAME"] == lam.function_name and seen["AWS_LAMBDA_LOG_STREAM_NAME"] == lam.log_stream


def test_shutdown_and_invoke_events_as_rie_sends_them(lam: LambdaEmulator, ext_dir: Path) -> None:
    lam.launch(write_extension(ext_dir, "puppet"), ext_env("sleep"))
    status, headers, _ = api(lam, "POST", f"{BASE}/register", {"events": ["INVOKE", "SHUTDOWN"]},
                             {"Lambda-Extension-Name": "puppet"})
    assert status == 200
    ident = {"Lambda-Extension-Identifier": headers["Lambda-Extension-Identifier"]}
    answers: list[Any] = []

    def next_event() -> None:
        request = urllib.request.Request(f"http://{lam.address}{BASE}/event/next", headers=ident)
        with urllib.request.urlopen(request, timeout=10) as response:
            answers.append((dict(response.headers), response.read()))

    poller = threading.Thread(target=next_event, daemon=True)
    poller.start()
    lam.wait_init(timeout=5)
    invoker = threading.Thread(target=lambda: lam.invoke("req-1", timeout=5), daemon=True)
    invoker.start()
    poller.join(timeout=5)
    invoke_headers, invoke_body = answers[0]
    assert invoke_headers["Content-Type"] == "application/json"
    assert invoke_headers["Lambda-Extension-Event-Identifier"]
    assert list(json.loads(invoke_body)) == ["eventType", "deadlineMs", "requestId", "invokedFunctionArn"]

    poller = threading.Thread(target=next_event, daemon=True)
    poller.start()
    invoker.join(timeout=5)
    before = time.time() * 1000
    result = lam.shutdown(timeout=0.5)  # the puppet never exits by itself
    poller.join(timeout=5)
    assert result == {"puppet": None}
    shutdown_headers, shutdown_body = answers[1]
    assert "Lambda-Extension-Event-Identifier" not in shutdown_headers
    assert shutdown_headers["Content-Type"] == "text/plain; charset=utf-8"
    event = json.loads(shutdown_body)
    assert list(event) == ["eventType", "deadlineMs", "shutdownReason"]
    assert (event["eventType"], event["shutdownReason"]) == ("SHUTDOWN", "SandboxTerminated")
    assert before + 400 <= event["deadlineMs"] <= time.time() * 1000 + 500


def test_register_answers_as_rie(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    import http.client

    emulator.launch(write_extension(ext_dir, "puppet"), ext_env("sleep"))
    host, port = emulator.address.split(":")

    def register(extra: dict[str, str]) -> tuple[int, Any, Any]:
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request("POST", f"{BASE}/register", json.dumps({"events": ["SHUTDOWN"]}),
                               {"Lambda-Extension-Name": "puppet", **extra})
            response = connection.getresponse()
            return response.status, response.headers, json.loads(response.read())
        finally:
            connection.close()

    # The extension's own client asks for Connection: close; RIE's Go server answers so.
    status, headers, body = register({"Connection": "close"})
    assert status == 200 and headers["Connection"] == "close"
    assert body == {"functionName": "cache-extension-example", "functionVersion": "$LATEST", "handler": "app.handler"}
    status, headers, body = register({})
    assert headers.get("Connection") is None  # kept alive when not asked otherwise
    assert (status, body["errorType"]) == (403, "Extension.InvalidExtensionState")


def test_timeout_resets_the_environment(lam: LambdaEmulator, ext_dir: Path, tmp_path: Path) -> None:
    ext = lam.launch(write_extension(ext_dir, "watcher"), ext_env())
    runtime = lam.launch_runtime(write_runtime(tmp_path), runtime_env("hang_once", MARKER=str(tmp_path / "hung")),
                                 cwd=str(tmp_path))
    lam.wait_init(timeout=10)
    started = time.monotonic()
    result = lam.invoke({}, request_id="too-slow", timeout=0.5)
    assert result.timed_out and result.payload == b"Task timed out after 0.50 seconds"
    assert time.monotonic() - started < 3  # the timeout, then SHUTDOWN: the extension exits at once
    assert lam.resets == ["Timeout"]
    assert "event SHUTDOWN Timeout None" in ext.output
    assert ext.wait_exit(1) == 0 and runtime.wait_exit(1) is not None  # every process is gone

    again = lam.invoke({"n": 2}, timeout=5)  # a new INIT first: the same extension and runtime, started again
    assert again.ok and again.response["event"] == {"n": 2}
    assert again.init_duration is not None and again.init_duration == lam.init_duration
    new_ext, new_runtime = lam.extensions[0], lam.runtime
    assert new_ext is not ext and new_runtime is not runtime and lam.retired == [ext]
    assert lam.retired_runtimes == [runtime]
    assert new_ext.name == "watcher" and new_runtime.command == runtime.command
    assert extension_env_seen(new_ext) == extension_env_seen(ext)
    assert wait_for(lambda: f"event INVOKE {again.request_id}" in new_ext.output)
    assert lam.invoke({}, timeout=5).init_duration is None


def test_timeout_without_runtime_resets_and_raises(emulator: ExtensionsApiEmulator, ext_dir: Path) -> None:
    ext = emulator.launch(write_extension(ext_dir, "slowpoke"), ext_env("slow_invoke", DELAY="3"))
    emulator.wait_init(timeout=10)
    with pytest.raises(InvokeTimedOut):
        emulator.invoke("late", timeout=0.3)
    assert ext.wait_exit(3) is not None and emulator.resets == ["Timeout"]
    emulator.invoke("fresh", timeout=5)  # after a new INIT
    assert emulator.extensions[0] is not ext and "event INVOKE fresh" in emulator.extensions[0].output


MI_HANDLER = """\
import os, time

def handler(event, context):
    time.sleep(event.get("sleep", 0))
    return {"pid": os.getpid(), "env": {k: os.environ.get(k) for k in
            ("AWS_LAMBDA_MAX_CONCURRENCY", "AWS_LAMBDA_INITIALIZATION_TYPE")}}
"""


def test_managed_instances_refuse_invoke_subscriptions(ext_dir: Path) -> None:
    with LambdaEmulator(max_concurrency=2) as lam:
        ext = lam.launch(write_extension(ext_dir, "wants-invoke"), ext_env())
        with pytest.raises(InitFailed) as failure:
            lam.wait_init(timeout=10)
        assert failure.value.errors[0]["error_type"] == "Extension.Crash"
        assert 'register 403 {"errorMessage": "INVOKE: ErrorInvalidEventType", "errorType": "Extension.InvalidEventType"}' in ext.output


def test_managed_instances_run_invokes_concurrently(ext_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(MI_HANDLER)
    env = runtime_env()
    with LambdaEmulator(max_concurrency=2) as lam:
        ext = lam.launch(write_extension(ext_dir, "shutdown-only"), ext_env(EVENTS="SHUTDOWN"))
        lam.launch_runtime([sys.executable, "-m", "awslambdaric", "app.handler"], env, cwd=str(tmp_path))
        lam.wait_init(timeout=20)
        seen = extension_env_seen(ext)
        assert seen["AWS_LAMBDA_INITIALIZATION_TYPE"] == "lambda-managed-instances"
        assert seen["AWS_LAMBDA_MAX_CONCURRENCY"] == "2"  # as RIE gives it (tests/test_parity.py)
        assert "AWS_LAMBDA_LOG_STREAM_NAME" not in seen
        results: list[Any] = []
        threads = [threading.Thread(target=lambda: results.append(lam.invoke({"sleep": 1.0}, timeout=10)), daemon=True)
                   for _ in range(2)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        assert wait_for(lambda: lam._in_flight == 2, timeout=5)
        third = lam.invoke({}, timeout=5)  # a third while two are in flight: no idle runtime worker
        assert third.error is not None and third.error.error_type == "Runtime.Unavailable"
        for thread in threads:
            thread.join(timeout=10)
        assert time.monotonic() - started < 1.9  # the two ran at the same time
        assert [r.ok for r in results] == [True, True]
        assert len({r.response["pid"] for r in results}) == 2  # one worker process each
        assert results[0].response["env"] == {"AWS_LAMBDA_MAX_CONCURRENCY": "2",
                                              "AWS_LAMBDA_INITIALIZATION_TYPE": "lambda-managed-instances"}
        assert "event INVOKE" not in ext.output  # no INVOKE events on Managed Instances
        timed_out = lam.invoke({"sleep": 3}, timeout=0.5)  # fails that invoke only: no reset
        assert timed_out.timed_out and timed_out.response == {
            "errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 0.50 seconds"}
        assert lam.resets == [] and lam.invoke({}, timeout=5).ok
        result = lam.shutdown()
        assert result["shutdown-only"] is not None and "event SHUTDOWN spindown" in ext.output


def test_emulator_modules_are_split_by_role() -> None:
    from local_lambda import extensions_api
    from local_lambda.extensions_api import ApiCall, EmulatorError, Extension, Runtime  # noqa: F401

    folder = Path(extensions_api.__file__).parent
    for name in ("extensions_api", "emulator_http", "emulator_requests", "emulator_processes", "emulator_model"):
        lines = len((folder / f"{name}.py").read_text().splitlines())
        assert lines <= 520, f"{name}.py has {lines} lines"
