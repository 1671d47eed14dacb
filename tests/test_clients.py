"""Every client, from the built layer tree, against the real extension: the shared contract table
(tests/contract/cases.json), reads while the extension is still starting, and each example function."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
import xml.etree.ElementTree as ElementTree
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import PATH, ROOT, SECRET_VALUES, close_and_check, launch
from contract.resources import (CASES, CONFIG, EXACT_NUMBERS, SECRET_VALUES as CONTRACT_SECRETS, create_contract_resources,
                                fail_denied)
from contract.trap import Trap
from java_maven import JAVA_CLIENT, failures, run_maven, run_maven_gated, surefire_class_path, surefire_outcomes
from local_lambda.aws import SAMPLE_ITEM, free_port
from local_lambda.layer import JAVA_CLIENT_JAR

ALL_CASES = json.loads(CASES.read_text())["cases"]
STARTUP_DELAY = 1.0  # the emulator holds register back this long: the port stays closed meanwhile
NODE_TESTS = ROOT / "tests" / "clients" / "nodejs"
JAVA_TESTS = ROOT / "tests" / "clients" / "java"
# The clients' token chain, first non-empty one wins; a case's "env" replaces all three (cases.json's "about").
TOKEN_VARIABLES = ("CACHE_EXTENSION_TOKEN", "AWS_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN")
# What a case's "env" replaces (cases.json's "about"): the token variables and AWS's port variable.
ENV_CASE_VARIABLES = (*TOKEN_VARIABLES, "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is needed for the client tests (Node.js 18+ and a JDK 11+ are on the CI machine)"
    return path


def run(command: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def contract_extension(layer_dir, moto, tmp_path_factory):
    SECRET_VALUES.update(CONTRACT_SECRETS)
    create_contract_resources(moto)
    fail_denied(moto)
    handle = launch(layer_dir, moto, tmp_path_factory.mktemp("contract"), CONFIG.read_text())
    yield handle
    moto.clear_faults()
    close_and_check(handle)


@pytest.fixture(scope="module")
def contract_trap():
    """cases.json's "$TRAP_PORT": counts connections; a runner's test fails if a case made any (trap.py)."""
    with Trap() as trap:
        yield trap


@pytest.fixture(scope="module")
def contract_env(contract_extension, contract_trap) -> dict[str, str]:
    return {"CACHE_EXTENSION_PORT": str(contract_extension.port), "AWS_SESSION_TOKEN": contract_extension.token,
            "CONTRACT_CASES": str(CASES), "CONTRACT_DOWN_PORT": str(free_port()),
            "CONTRACT_TRAP_PORT": str(contract_trap.port)}


def assert_nothing_trapped(trap: Trap, before: int = 0) -> None:
    """The cases that point a client at "$TRAP_PORT" must make no connection at all (none since `before`)."""
    made = trap.count() - before
    assert made == 0, f"{made} connection(s) reached the trap port: a client sent without a token"


@pytest.fixture(scope="module")
def java_build(tmp_path_factory) -> Path:
    """Where the Java client's Maven build writes (classes, surefire reports), shared by this module's runs."""
    return tmp_path_factory.mktemp("java-maven")


@pytest.fixture(scope="module")
def java_classpath(layer_dir, tmp_path_factory) -> str:
    """The client jar from the layer tree, plus InvokeExample and the example function compiled against it."""
    jar = layer_dir / "java" / "lib" / JAVA_CLIENT_JAR
    assert jar.exists(), "the layer build did not produce the Java client"
    classes = tmp_path_factory.mktemp("java-classes")
    sources = [str(JAVA_TESTS / "InvokeExample.java")]
    sources += sorted(str(p) for p in (ROOT / "function-example" / "java" / "src").rglob("*.java"))
    run([tool("javac"), "--release", "11", "-encoding", "UTF-8", "-cp", str(jar), "-d", str(classes), *sources], os.environ.copy())
    return f"{jar}{os.pathsep}{classes}"


def node_env(layer_dir, env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **env, "NODE_PATH": str(layer_dir / "nodejs" / "node_modules")}


# --- the Python client ------------------------------------------------------------------------------


def run_python_case(module, case: dict, down_port: str):
    options = dict(case.get("client", {}))
    kwargs = {}
    if "port" in options:
        kwargs["port"] = int(down_port if options["port"] == "$DOWN_PORT" else options["port"])
    if "token" in options:
        kwargs["token"] = options["token"]
    if "timeoutMs" in options:
        kwargs["timeout"] = options["timeoutMs"] / 1000
    if "startupTimeoutMs" in options:
        kwargs["startup_timeout"] = options["startupTimeoutMs"] / 1000
    if "values" in options:
        kwargs["values"] = options["values"]
    if "nearCache" in options:
        kwargs["near_cache"] = options["nearCache"]
    client = module.CacheClient(**kwargs)
    steps = case.get("steps") or [case] * case.get("repeat", 1)
    try:
        for step in steps:  # a failure ends the steps
            if "pauseMs" in step:
                time.sleep(step["pauseMs"] / 1000)
            else:
                result = call_python_case(client, step)
        return result
    finally:
        client.close()


def served_reads(port: str, token: str) -> int:
    """Reads the extension has served (cases.json's "requests"): Hits, Misses and StaleServed of every source."""
    with urllib.request.urlopen(urllib.request.Request(
            f"http://127.0.0.1:{port}/stats", headers={"X-Aws-Parameters-Secrets-Token": token}), timeout=5) as answer:
        cache = json.load(answer)["cache"]
    return sum(counters[name] for counters in cache.values() for name in ("Hits", "Misses", "StaleServed"))


def call_python_case(client, case: dict):
    if case["call"] == "refresh":
        return client.refresh(case["name"], case.get("source"))
    if case["call"] == "refreshAll":
        return client.refresh_all()
    if case["call"] == "item":
        return client.get_item(case["name"])
    call = client.get_parameter if case["call"] == "parameter" else client.get_secret
    if "key" in case:
        return call(case["name"], transform=case.get("transform"), key=case["key"])
    return call(case["name"], transform=case.get("transform"))


def as_numbers(value):
    """JSON data with every number a Decimal (a float by its repr, as JSON writes it), so that 2 and 2.0
    compare equal, and a Decimal the Python client gives with them."""
    if isinstance(value, dict):
        return {key: as_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_numbers(item) for item in value]
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return Decimal(repr(value) if isinstance(value, float) else value)
    return value


def check_exact(value, exact: dict[str, str]) -> None:
    """The "exact" expectation of cases.json: at each path, a number (int or Decimal) equal to the decimal text."""
    for path, text in exact.items():
        got = value
        for step in path.split("."):
            got = got[int(step)] if isinstance(got, list) else got[step]
        assert type(got) in (int, Decimal), f"{path}: a {type(got).__name__}, not an int or a Decimal"
        assert Decimal(got) == Decimal(text), f"{path}: {got} is not {text}"


def includes(value, expected) -> bool:
    """The "includes" expectation of cases.json: objects may have more members, arrays more elements, in any order."""
    if isinstance(expected, dict):
        return isinstance(value, dict) and all(k in value and includes(value[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(value, list) and all(any(includes(got, want) for got in value) for want in expected)
    return value == expected


def case_environment(case: dict, token: str, port: str = "", down_port: str = "", trap_port: str = "",
                     values_file: str = "") -> dict[str, str]:
    """The variables a case with "env" gives the client: "$TOKEN" is the extension's token, "$PORT" its port,
    "$DOWN_PORT" a port nothing listens on, "$TRAP_PORT" one that counts connections, "$VALUES_FILE" the file
    holding the case's valuesFile."""
    assert "token" not in case.get("client", {}), f"{case['id']}: a case with env gives no token option"
    places = {"$TOKEN": token, "$PORT": port, "$DOWN_PORT": down_port, "$TRAP_PORT": trap_port,
              "$VALUES_FILE": values_file}
    return {name: places.get(value, value) for name, value in case["env"].items()}


def check_python_case(module, case: dict, down_port: str, token: str) -> None:
    """Runs a case with the client's environment as it is: a case with "env" must have it applied already."""
    expect = case["expect"]
    if "requests" in expect:
        before = served_reads(os.environ["CACHE_EXTENSION_PORT"], token)
        try:
            check_case_result(module, case, down_port, token)
        finally:
            served = served_reads(os.environ["CACHE_EXTENSION_PORT"], token) - before
        assert served == expect["requests"], f"the extension served {served} reads, not {expect['requests']}"
    else:
        check_case_result(module, case, down_port, token)


def check_case_result(module, case: dict, down_port: str, token: str) -> None:
    expect = case["expect"]
    tokens = [token, case.get("client", {}).get("token"), *(os.environ.get(name) for name in TOKEN_VARIABLES)]
    if "error" in expect:
        kinds = {"NotFound": module.NotFoundError, "Unavailable": module.ExtensionUnavailableError,
                 "Upstream": module.UpstreamError, "Error": module.CacheExtensionError}
        with pytest.raises(module.CacheExtensionError) as raised:
            run_python_case(module, case, down_port)
        assert type(raised.value) is kinds[expect["error"]], repr(raised.value)
        if "status" in expect:
            assert raised.value.status == expect["status"]
        if "code" in expect:
            assert raised.value.code == expect["code"]
        if "retryAfterAtLeast" in expect:
            assert raised.value.retry_after is not None and raised.value.retry_after >= expect["retryAfterAtLeast"], \
                raised.value.retry_after
        for text in filter(None, tokens):
            assert text not in str(raised.value)
        for text in expect.get("messageIncludes", []):
            assert text in str(raised.value), raised.value
        for text in expect.get("messageExcludes", []):
            assert text not in str(raised.value), f"the error message shows {text!r}"
        return
    value = run_python_case(module, case, down_port)
    if "value" in expect:
        assert value == expect["value"]
    elif "json" in expect:
        assert as_numbers(value) == as_numbers(expect["json"])
    elif "includes" in expect:
        assert includes(as_numbers(value), as_numbers(expect["includes"])), value
    elif "exact" in expect:
        check_exact(value, expect["exact"])
    else:
        assert value == base64.b64decode(expect["base64"])


@pytest.mark.parametrize("case", [c for c in ALL_CASES if not c.get("startup")], ids=lambda c: c["id"])
def test_python_client_contract(python_client, contract_env, contract_trap, monkeypatch, tmp_path, case):
    for name, value in contract_env.items():
        monkeypatch.setenv(name, value)
    for name in ("CACHE_EXTENSION_TOKEN", "AWS_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                 "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", "CACHE_EXTENSION_CLIENT_CACHE"):
        monkeypatch.delenv(name, raising=False)
    values_file = tmp_path / "values.json"
    if "valuesFile" in case:  # given to the client through CACHE_EXTENSION_CLIENT_VALUES="$VALUES_FILE"
        assert "env" in case, f"{case['id']}: a case with valuesFile names it in its env"
        values_file.write_text(json.dumps(case["valuesFile"]), encoding="utf-8")
    if "env" in case:  # the client reads os.environ, set for this case only (monkeypatch undoes it)
        for name in ENV_CASE_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        for name, value in case_environment(case, contract_env["AWS_SESSION_TOKEN"], contract_env["CACHE_EXTENSION_PORT"],
                                            contract_env["CONTRACT_DOWN_PORT"], contract_env["CONTRACT_TRAP_PORT"],
                                            str(values_file)).items():
            monkeypatch.setenv(name, value)
    trapped = contract_trap.count()
    check_python_case(python_client, case, contract_env["CONTRACT_DOWN_PORT"], contract_env["AWS_SESSION_TOKEN"])
    assert_nothing_trapped(contract_trap, trapped)


def test_python_client_offline_values_from_a_file(python_client, tmp_path, monkeypatch):
    values = tmp_path / "values.json"
    values.write_text(json.dumps({"parameters": {"/p": '{"a": 1}'}, "dynamodb": {"T-1": {"id": "1"}}}))
    monkeypatch.setenv("CACHE_EXTENSION_CLIENT_VALUES", str(values))
    client = python_client.CacheClient(port=free_port())
    assert client.get_parameter("/p", transform="json") == {"a": 1}
    assert client.get_item("T-1") == {"id": "1"}
    with pytest.raises(python_client.NotFoundError):
        client.get_secret("missing")
    with pytest.raises(ValueError):
        client.get_parameter("/p", transform="yaml")


def test_python_client_offline_json_values(python_client, tmp_path, monkeypatch):
    """The offline values' rule (contract cases "offline values file: ..."), in code too: a string is the value as
    stored; any other JSON value reads as its compact JSON text (numbers of the file as written), parses with
    transform json and is refused by binary; None and items that are not dicts are refused when the client is made,
    naming the section and the name, never the value."""
    client = python_client.CacheClient(values={
        "parameters": {"o": {"a": 1, "b": [True, None, "é"]}, "n": 5, "f": 2.5, "d": Decimal("1.50"), "s": '{"a": 1}'},
        "secrets": {"t": True, "bin": b"\x00\xff"}})
    assert [client.get_parameter(name) for name in ("o", "n", "f", "d", "s")] == [
        '{"a":1,"b":[true,null,"é"]}', "5", "2.5", "1.50", '{"a": 1}']
    assert type(client.get_parameter("o")) is str
    assert client.get_parameter("o", transform="json") == {"a": 1, "b": [True, None, "é"]}
    assert client.get_secret("t") == "true" and client.get_secret("bin") == b"\x00\xff"
    for read in (lambda: client.get_secret("t", transform="binary"), lambda: client.get_parameter("o", transform="binary")):
        with pytest.raises(python_client.CacheExtensionError, match="JSON value"):
            read()
    for values, says in (({"parameters": {"p": None}}, "parameters 'p' is null"),
                         ({"secrets": {"s": {1, 2}}}, "secrets 's' is a set"),
                         ({"secrets": {"s": float("nan")}}, "secrets 's' is a number"),
                         ({"dynamodb": {"T": "item-text-not-shown"}}, "dynamodb 'T' must be an item"),
                         ({"dynamodb": {"T": [{"id": "1"}]}}, "dynamodb 'T' must be an item")):
        with pytest.raises(ValueError, match=says) as refused:
            python_client.CacheClient(values=values)
        assert "item-text-not-shown" not in str(refused.value)
    values = tmp_path / "values.json"
    values.write_text('{"parameters": {"x": {"n": [1.50, 1e3, 0.0000001, -0]}}, "dynamodb": {"T": {"n": 1.50}}}')
    monkeypatch.setenv("CACHE_EXTENSION_CLIENT_VALUES", str(values))
    client = python_client.CacheClient()
    assert client.get_parameter("x") == '{"n":[1.50,1e3,0.0000001,-0]}'  # numbers as written in the file
    item = client.get_item("T")
    assert item == {"n": Decimal("1.50")} and type(item["n"]) is Decimal
    values.write_text('{"secrets": {"good": "good-value-not-shown", "bad": null}}')
    with pytest.raises(python_client.CacheExtensionError, match="secrets 'bad' is null") as refused:
        python_client.CacheClient()
    assert "good-value-not-shown" not in str(refused.value)


def test_python_client_keys(python_client):
    """key=: one top-level key of a JSON object value (the contract's "key: ..." cases), its arguments, and errors
    that never quote the value."""
    client = python_client.CacheClient(values={
        "parameters": {"o": {"a": {"b": [1, Decimal("2.50")]}, "s": "t"}, "text": '{"n": 1.50, "n": 2}'},
        "secrets": {"plain": "plain-secret-not-shown", "bin": b"\x00\xff"}})
    assert client.get_parameter("o", key="a") == '{"b":[1,2.50]}' and client.get_parameter("o", key="s") == "t"
    assert client.get_parameter("text", key="n") == "2"  # the last of a repeated key
    assert client.get_parameter("o", "json", key="a") == {"b": [1, 2.5]}
    with pytest.raises(python_client.NotFoundError) as absent:
        client.get_parameter("o", key="b")  # top level only
    assert (absent.value.status, absent.value.code) == (404, "KeyNotFound")
    for name in ("plain", "bin"):
        with pytest.raises(python_client.CacheExtensionError) as refused:
            client.get_secret(name, key="user")
        assert (refused.value.status, refused.value.code) == (400, "NotJsonObject")
        assert "plain-secret-not-shown" not in str(refused.value)
    with pytest.raises(TypeError):
        client.get_parameter("o", key="")


def test_python_client_offline_items_keep_every_digit(python_client, tmp_path, monkeypatch):
    """Offline items are exact too: from a values file (read with Decimal), or given in code with Decimals (copied,
    not sent through JSON, which refuses them)."""
    values = tmp_path / "values.json"
    values.write_text('{"dynamodb": {"T-1": {"big": 12345678901234567890.123456789012345678, "n": 42, "l": [1.5]}}}')
    monkeypatch.setenv("CACHE_EXTENSION_CLIENT_VALUES", str(values))
    item = python_client.CacheClient(port=free_port()).get_item("T-1")
    assert item == {"big": Decimal("12345678901234567890.123456789012345678"), "n": 42, "l": [Decimal("1.5")]}
    assert type(item["n"]) is int
    given = {"big": Decimal("12345678901234567890.123456789012345678"), "l": [Decimal("1E-130")]}
    monkeypatch.delenv("CACHE_EXTENSION_CLIENT_VALUES")
    copied = python_client.CacheClient(values={"dynamodb": {"T-2": given}}).get_item("T-2")
    assert copied == given and copied is not given and copied["l"] is not given["l"]


def test_the_extension_sends_every_digit(contract_extension):
    """The body of /dynamodb carries each number as DynamoDB's own text: what the clients decode exactly."""
    body = contract_extension.read("dynamodb", "ContractTable-exact-numbers").text
    for name, text in EXACT_NUMBERS.items():
        assert f'"{name}":{text}' in body, name


def test_python_client_refresh_offline_and_arguments(python_client, tmp_path, monkeypatch):
    nothing = {"refreshed": [], "failed": []}
    client = python_client.CacheClient(port=free_port(), values={"parameters": {"p": "v"}})
    assert client.refresh("p") == nothing
    assert client.refresh("not-among-them", "secrets") == nothing
    client.refresh_all()["refreshed"].append("mutated")
    assert client.refresh_all() == nothing
    online = python_client.CacheClient(port=free_port(), startup_timeout=0)  # nothing listens there
    assert online.refresh_timeout == 5.0 and online.timeout == 1.0
    for c in (client, online):
        for bad_source in ("ssm", "Parameters", ""):
            with pytest.raises(ValueError):
                c.refresh("p", bad_source)
        for bad_name in ("", None, b"p"):
            with pytest.raises(TypeError):
                c.refresh(bad_name)
    values = tmp_path / "values.json"
    values.write_text("{}")
    monkeypatch.setenv("CACHE_EXTENSION_CLIENT_VALUES", str(values))
    monkeypatch.setattr(python_client, "_default", None)
    assert python_client.refresh("p", "dynamodb") == python_client.refresh_all() == nothing


def answer(status: bytes, body: bytes, headers: bytes = b"") -> bytes:
    """A whole HTTP/1.1 answer with a JSON body, closing its connection."""
    return (b"HTTP/1.1 " + status + b"\r\n" + headers + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)


def raw_server(answers: list[bytes | None]) -> tuple[socket.socket, list[str]]:
    """A raw loopback listener: the n-th connection gets answers[n] (None: closed without an answer) once its
    request head has arrived. Returns the listener and the request heads it received."""
    requests: list[str] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        for reply in answers:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed by the test: the rest were not asked for
            with connection:
                received = b""
                while b"\r\n\r\n" not in received and (chunk := connection.recv(4096)):
                    received += chunk
                requests.append(received.decode())
                if reply is not None:
                    connection.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return listener, requests


RATE_LIMITED = b'{"error": "RateLimited", "message": "too many refreshes: retry in 6.2 s"}'


def test_python_client_refresh_is_one_post_never_retried(python_client):
    """A raw loopback server: closes the first connection without an answer, then answers 200, 503, 200."""
    ok = b'{"refreshed": [{"source": "parameters", "name": "a b"}], "failed": []}'
    listener, requests = raw_server([None, answer(b"200 OK", ok),
                                     answer(b"503 Service Unavailable", b'{"error": "NotReady", "message": "starting"}'),
                                     answer(b"200 OK", ok)])
    client = python_client.CacheClient(port=listener.getsockname()[1], token="t0k", startup_timeout=1.0)
    try:
        with pytest.raises(python_client.ExtensionUnavailableError) as raised:
            client.refresh_all()
        assert len(requests) == 1 and "t0k" not in str(raised.value)
        assert client.refresh("a b", "parameters") == json.loads(ok)
        first, second = requests[0].lower(), requests[1]
        assert first.startswith("post /refresh?all=true http/1.1\r\n") and "content-length: 0\r\n" in first
        assert second.startswith("POST /refresh?name=a%20b&source=parameters ") and "X-Aws-Parameters-Secrets-Token: t0k" in second
        with pytest.raises(python_client.CacheExtensionError) as raised:
            client.refresh("x&y=z")
        assert type(raised.value) is python_client.CacheExtensionError and raised.value.status == 503
        assert len(requests) == 3 and requests[2].startswith("POST /refresh?name=x%26y%3Dz ")
    finally:
        client.close()
        listener.close()


# Retry-After (None: none) -> retry_after (None: not set). Only delta-seconds (RFC 9110: digits) count.
RETRY_AFTER_CASES = [
    (None, None), ("7", 7.0), ("0", 0.0), ("007", 7.0), (" 12\t", 12.0), ("1.5", None), ("-1", None), ("+3", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", None), ("soon", None), ("", None), ("7 s", None), ("0x10", None), ("1e3", None),
    ("\u00b2", None), ("99999999999999999999999", 2.0**31), ("9" * 5000, 2.0**31),
]


def test_python_client_retry_after_only_in_delta_seconds(python_client):
    listener, requests = raw_server([
        answer(b"429 Too Many Requests", RATE_LIMITED, b"" if header is None else f"Retry-After: {header}\r\n".encode("latin-1"))
        for header, _ in RETRY_AFTER_CASES])
    client = python_client.CacheClient(port=listener.getsockname()[1], token="t0k")
    try:
        for header, seconds in RETRY_AFTER_CASES:
            with pytest.raises(python_client.CacheExtensionError) as raised:
                client.refresh_all()
            error = raised.value
            assert (type(error), error.status, error.code) == (python_client.CacheExtensionError, 429, "RateLimited")
            assert error.retry_after == seconds and (seconds is None or type(error.retry_after) is float), (header, error.retry_after)
        assert len(requests) == len(RETRY_AFTER_CASES)
    finally:
        client.close()
        listener.close()


def test_python_client_retry_after_on_other_errors(python_client):
    """Any error answer with a Retry-After carries it: a 404, a 503 that outlasted the start-up window."""
    listener, _ = raw_server([answer(b"404 Not Found", RATE_LIMITED, b"Retry-After: 3\r\n")]
                             + [answer(b"503 Service Unavailable", RATE_LIMITED, b"Retry-After: 2\r\n")] * 50)
    client = python_client.CacheClient(port=listener.getsockname()[1], token="t0k", startup_timeout=0.05)
    try:
        with pytest.raises(python_client.NotFoundError) as raised:
            client.get_parameter("gone")
        assert raised.value.retry_after == 3.0
        with pytest.raises(python_client.ExtensionUnavailableError) as raised:
            client.get_parameter("starting")
        assert (raised.value.status, raised.value.retry_after) == (503, 2.0)
    finally:
        client.close()
        listener.close()
    assert python_client.CacheExtensionError("m", 429, "RateLimited").retry_after is None
    down = python_client.CacheClient(port=free_port(), token="t0k", startup_timeout=0)  # nothing listens there
    with pytest.raises(python_client.ExtensionUnavailableError) as raised:
        down.refresh_all()
    assert raised.value.retry_after is None


# Token variables (None: unset) -> the token the client sends (None: none, so no request at all: MissingToken), as
# cases.json's "env" cases prove against the extension; here also the explicit option, which wins over the environment.
TOKEN_CHAIN_CASES = [  # CACHE_EXTENSION_TOKEN, AWS_TOKEN, AWS_SESSION_TOKEN, AWS_CONTAINER_AUTHORIZATION_TOKEN
    ((None, None, None, None), None), (("", "", "", ""), None), (("ext", "agent", "session", "container"), "ext"),
    (("", "agent", "session", "container"), "agent"), (("", "", "session", "container"), "session"),
    ((None, None, None, "container"), "container"), (("", "", "", "container"), "container"),
    ((None, None, "session", None), "session"),
]


def test_python_client_token_chain(python_client, monkeypatch):
    ok = answer(b"200 OK", b"{}")
    listener, requests = raw_server([ok] * (len(TOKEN_CHAIN_CASES) + 1))
    port = listener.getsockname()[1]
    try:
        for values, sent in TOKEN_CHAIN_CASES:
            for name, value in zip(TOKEN_VARIABLES, values):
                if value is None:
                    monkeypatch.delenv(name, raising=False)
                else:
                    monkeypatch.setenv(name, value)
            client = python_client.CacheClient(port=port)
            sent_before = len(requests)
            if sent is None:
                check_missing_token(python_client, client.get_item, "T-1")
                assert len(requests) == sent_before, values
                continue
            client.get_item("T-1")
            client.close()
            header = [line for line in requests[-1].split("\r\n") if line.lower().startswith("x-aws-parameters-secrets-token:")]
            assert header == [f"X-Aws-Parameters-Secrets-Token: {sent}"], (values, header)
        client = python_client.CacheClient(port=port, token="explicit")  # the environment still says "session"
        client.get_item("T-1")
        client.close()
        assert "X-Aws-Parameters-Secrets-Token: explicit\r\n" in requests[-1]
        assert "session" not in repr(client) and "explicit" not in repr(client)
        sent_before = len(requests)
        empty = python_client.CacheClient(port=port, token="")  # explicitly empty: no token, whatever the environment says
        for call, arguments in ((empty.get_parameter, ("p",)), (empty.get_secret, ("s",)), (empty.refresh, ("p",)),
                                (empty.refresh_all, ())):
            check_missing_token(python_client, call, *arguments)
        assert len(requests) == sent_before
    finally:
        listener.close()


def check_missing_token(python_client, call, *arguments) -> None:
    """The no-token error: the base class, status 0, code MissingToken, a message saying what to set."""
    with pytest.raises(python_client.CacheExtensionError) as raised:
        call(*arguments)
    error = raised.value
    assert (type(error), error.status, error.code) == (python_client.CacheExtensionError, 0, "MissingToken")
    for name in ("CACHE_EXTENSION_TOKEN", "AWS_SESSION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "nothing was sent"):
        assert name in str(error), str(error)


def test_python_client_reuses_one_connection(python_client, contract_extension):
    client = python_client.CacheClient(port=contract_extension.port, token=contract_extension.token, near_cache=False)
    assert client.get_parameter("CacheExtensions_Parameter1") == "MyParameter"
    first = client._connection.sock
    for _ in range(5):
        client.get_item("DynamoDbTable-pKey1-sKey1")
    assert client._connection.sock is first
    assert contract_extension.token not in repr(client)
    client.close()


# --- Node.js and Java: their own test programs, the same table ---------------------------------------


def test_node_client(layer_dir, contract_env, contract_trap):
    result = run([tool("node"), "--test", str(NODE_TESTS)], node_env(layer_dir, contract_env))
    assert "# fail 0" in result.stdout and "# skipped 0" in result.stdout, result.stdout
    assert_nothing_trapped(contract_trap)


def maven_on_layer_jar(layer_dir) -> str:
    """The Maven option that runs the tests on the layer's jar (not on Maven's own classes of the same sources)."""
    return f"-Dclient.classes={layer_dir / 'java' / 'lib' / JAVA_CLIENT_JAR}"


def test_java_client(java_build, contract_env, contract_trap, layer_dir):
    """`mvn test` on layer/java, on the layer's jar: the JUnit 5 unit tests, and the contract table (one test per
    case, by id) against the extension; surefire's reports must hold every non-startup case, passed, and unit tests
    all passed."""
    result = run_maven(java_build, {**os.environ, **contract_env}, "test", maven_on_layer_jar(layer_dir))
    outcomes = surefire_outcomes(java_build)
    assert result.returncode == 0, f"mvn test failed:\n{result.stdout}\n{result.stderr}\n{failures(java_build)}"
    assert_nothing_trapped(contract_trap)
    jar = layer_dir / "java" / "lib" / JAVA_CLIENT_JAR
    class_path = surefire_class_path(java_build)
    assert str(jar) in class_path and str(java_build / "classes") not in class_path
    with zipfile.ZipFile(jar) as layer_jar:  # Maven's build of the sources has the layer's classes, for Java 11 too
        assert sorted(n for n in layer_jar.namelist() if n.endswith(".class")) == sorted(
            str(p.relative_to(java_build / "classes")) for p in (java_build / "classes").rglob("*.class"))
    assert {p.read_bytes()[6:8] for p in (java_build / "classes").rglob("*.class")} == {(55).to_bytes(2, "big")}
    contract = outcomes.pop("dev.cacheextension.client.ContractTest")
    assert contract == [(f"contract {c['id']}", "passed") for c in ALL_CASES if not c.get("startup")], contract
    unit = [test for tests in outcomes.values() for test in tests]
    assert len(unit) >= 68 and {outcome for _, outcome in unit} == {"passed"}, unit  # 68: the checks of the old runner
    print(f"\nJava: {len(unit)} unit tests and {len(contract)} contract cases passed")


def test_java_client_stays_java_11_with_no_dependencies(layer_dir):
    """What Java runtimes get: the layer's jar holds only the client's classes, compiled for Java 11 (class file
    major 55); the Maven build that publishes it compiles for 11 and depends on nothing outside test scope."""
    lib = layer_dir / "java" / "lib"
    assert sorted(p.name for p in lib.iterdir()) == [JAVA_CLIENT_JAR]
    with zipfile.ZipFile(lib / JAVA_CLIENT_JAR) as jar:
        classes = [name for name in jar.namelist() if name.endswith(".class")]
        assert classes and all(name.startswith("dev/cacheextension/client/") for name in classes), classes
        majors = {int.from_bytes(jar.read(name)[6:8], "big") for name in classes}
    assert majors == {55}, majors
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    pom = ElementTree.parse(JAVA_CLIENT / "pom.xml").getroot()
    assert pom.findtext("m:properties/m:maven.compiler.release", namespaces=ns) == "11"
    scopes = {d.findtext("m:artifactId", namespaces=ns): d.findtext("m:scope", namespaces=ns)
              for d in pom.findall("m:dependencies/m:dependency", ns)}
    assert scopes and set(scopes.values()) == {"test"}, scopes


# --- reads while the extension is still starting ----------------------------------------------------


@pytest.mark.parametrize("client", ["python", "node", "java"])
def test_reads_during_startup_wait_for_the_extension(client, layer_dir, moto, tmp_path, python_client, request, monkeypatch):
    create_contract_resources(moto)
    if client == "java":
        run_java_startup_cases(request.getfixturevalue("java_build"), layer_dir, moto, tmp_path)
        return
    handle = launch(layer_dir, moto, tmp_path / "task", CONFIG.read_text(), wait=False, register_delay=STARTUP_DELAY)
    try:
        env = {"CACHE_EXTENSION_PORT": str(handle.port), "AWS_SESSION_TOKEN": handle.token, "CONTRACT_CASES": str(CASES),
               "CONTRACT_DOWN_PORT": str(free_port()), "CONTRACT_STARTUP": "1"}
        assert handle.extension.registered_at is None  # the port is not open yet
        if client == "python":
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            for case in (c for c in ALL_CASES if c.get("startup")):
                check_python_case(python_client, case, env["CONTRACT_DOWN_PORT"], handle.token)
        else:
            run([tool("node"), "--test", str(NODE_TESTS / "contract.test.mjs")], node_env(layer_dir, env))
        handle.emulator.wait_init(timeout=20)
    finally:
        close_and_check(handle)


def run_java_startup_cases(build_dir: Path, layer_dir, moto, tmp_path: Path) -> None:
    """The startup cases through Maven, which takes longer to start than the register delay: its test JVM waits
    at a gate, then the extension is launched (on the port and token Maven was given) and the gate opened while
    the port is still closed."""
    port, token = free_port(), f"session-token-{uuid.uuid4().hex}"
    env = {**os.environ, "CACHE_EXTENSION_PORT": str(port), "AWS_SESSION_TOKEN": token, "CONTRACT_CASES": str(CASES),
           "CONTRACT_DOWN_PORT": str(free_port()), "CONTRACT_STARTUP": "1"}
    handles = []

    def launch_starting() -> None:
        handles.append(launch(layer_dir, moto, tmp_path / "task", CONFIG.read_text(), env={"AWS_SESSION_TOKEN": token},
                              port=port, wait=False, register_delay=STARTUP_DELAY))
        assert handles[0].extension.registered_at is None  # the port is not open yet

    try:
        result = run_maven_gated(build_dir, env, tmp_path / "gate", launch_starting, "test", "-Dtest=ContractTest",
                                 maven_on_layer_jar(layer_dir))
        assert result.returncode == 0, f"mvn test failed:\n{result.stdout}\n{failures(build_dir)}"
        assert handles, "the extension was never launched"
        assert surefire_outcomes(build_dir)["dev.cacheextension.client.ContractTest"] == [
            (f"contract {c['id']}", "passed") for c in ALL_CASES if c.get("startup")]
        handles[0].emulator.wait_init(timeout=20)
    finally:
        for handle in handles:
            close_and_check(handle)
            assert token not in handle.output  # close_and_check knows launch's own token, not this one


# --- the example functions ------------------------------------------------------------------------------


def expected_example() -> dict:
    secret = {"length": 8, "sha256": hashlib.sha256(b"MySecret").hexdigest()}
    item = json.loads(json.dumps({k: v for k, v in SAMPLE_ITEM.items()}))  # shape only; values checked below
    return {"parameter": "MyParameter", "secretFromReference": secret, "secret": secret, "item": item}


@pytest.mark.parametrize("runtime", ["python", "nodejs", "java"])
def test_example_function_reads_the_sample_through_its_client(runtime, layer_dir, start_extension, request):
    ext = start_extension()
    env = {"PATH": os.environ["PATH"], "CACHE_EXTENSION_PORT": str(ext.port), "AWS_SESSION_TOKEN": ext.token}
    example = ROOT / "function-example"
    if runtime == "python":
        # The bare interpreter, no virtualenv: the client needs nothing beyond the layer.
        code = ("import json, sys; sys.path[:0] = sys.argv[1:3]; import app; "
                "print(json.dumps(app.handler({}, None)))")
        command = [str(Path(sys.base_prefix) / "bin" / "python3"), "-I", "-c", code, str(layer_dir / "python"), str(example / "python")]
    elif runtime == "nodejs":
        env["NODE_PATH"] = str(layer_dir / "nodejs" / "node_modules")
        command = [tool("node"), str(NODE_TESTS / "invoke-example.mjs"), str(example / "nodejs" / "index.mjs")]
    else:
        command = [tool("java"), "-cp", request.getfixturevalue("java_classpath"), "InvokeExample", "example.Handler"]
    result = json.loads(run(command, env).stdout)
    assert result["parameter"] == "MyParameter"
    assert result["secretFromReference"] == result["secret"] == expected_example()["secret"]
    assert result["item"] == {"pKey": "pKey1", "sKey": "sKey1", "Data": "DynamoDB sample data", "Count": 42, "Enabled": True,
                              "Tags": ["cache", "example"], "Settings": {"ttlSeconds": 300, "mode": "refresh-ahead"}}
    assert "MySecret" not in json.dumps(result)
