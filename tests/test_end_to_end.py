"""The extension launched from the built layer, under the Extensions API emulator, against moto."""

from __future__ import annotations

import base64
import json
import signal
import threading
import time

import pytest

from conftest import LAYER_VARIANTS, REGION, SECRET_VALUES, poll, unique
from local_lambda.aws import SAMPLE_ITEM
from local_lambda.extensions_api import InitFailed


@pytest.fixture(scope="module", params=list(LAYER_VARIANTS))
def layer_dir(request):
    """Every test here runs against both layers: the Python one and the standalone one (frozen by
    PyInstaller), which conftest's launch() starts with a PATH holding no Python at all."""
    return request.getfixturevalue(LAYER_VARIANTS[request.param])


def put_parameter(moto, name: str, value: str, kind: str = "String") -> None:
    SECRET_VALUES.add(value)  # any value may be a secret: none may reach the extension's output
    moto.client("ssm", REGION).put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)


def parameters_config(*names: str, ttl: str | None = None, stale: str | None = None) -> str:
    return names_config("parameters", *names, ttl=ttl, stale=stale)


def names_config(section: str, *names: str, ttl: str | None = None, stale: str | None = None) -> str:
    """A config.yaml with one group of `names` under `section` (parameters or secrets)."""
    lines = [f"{section}:", "  - names:"] + [f"      - {name}" for name in names]
    if ttl:
        lines.append(f"    ttl: {ttl}")
    if stale:
        lines.append(f"    stale: {stale}")
    return "\n".join(lines) + "\n"


# --- the sample ---------------------------------------------------------------------------------


def test_sample_reads_return_the_sample_values(start_extension):
    ext = start_extension()
    ext.emulator.invoke()
    parameter = ext.read("parameters", "CacheExtensions_Parameter1")
    assert (parameter.status, parameter.text) == (200, "MyParameter")
    assert parameter.headers["content-type"] == "text/plain; charset=utf-8"
    assert parameter.headers["x-cache"] == "hit" and parameter.headers["age"].isdigit()
    reference = ext.read("parameters", "/aws/reference/secretsmanager/secret_info")
    assert (reference.status, reference.text) == (200, "MySecret")
    direct = ext.read("secrets", "secret_info")
    assert (direct.status, direct.text) == (200, "MySecret")
    item = ext.read("dynamodb", "DynamoDbTable-pKey1-sKey1")
    assert item.status == 200 and item.headers["content-type"] == "application/json"
    assert json.loads(item.body) == {
        "pKey": "pKey1", "sKey": "sKey1", "Data": "DynamoDB sample data", "Count": 42, "Enabled": True,
        "Tags": ["cache", "example"], "Settings": {"ttlSeconds": 300, "mode": "refresh-ahead"},
    }
    assert set(SAMPLE_ITEM) == set(json.loads(item.body))


def test_head_answers_headers_without_a_body(start_extension):
    ext = start_extension()
    reply = ext.request("/parameters?name=CacheExtensions_Parameter1", method="HEAD")
    assert reply.status == 200 and reply.body == b"" and reply.headers["x-cache"] == "hit"


# --- prefetch ------------------------------------------------------------------------------------


def test_prefetch_happens_at_init_in_batches(start_extension, moto):
    names = [unique("/prefetch/p") for _ in range(12)]
    for name in names:
        put_parameter(moto, name, f"v1 {name}")
    moto.reset_calls()
    ext = start_extension(parameters_config(*names))
    assert moto.calls("AmazonSSM.GetParameters") == 2  # 12 names, 10 a call
    for name in names:
        put_parameter(moto, name, f"v2 {name}")
    for name in names:
        reply = ext.read("parameters", name)
        assert (reply.text, reply.headers["x-cache"]) == (f"v1 {name}", "hit")
    assert moto.calls("AmazonSSM.GetParameters") == 2
    assert ext.extension.init_done_at > ext.extension.registered_at


def test_without_init_startup_items_are_fetched_on_first_read(start_extension, moto):
    name = unique("lazy")
    put_parameter(moto, name, "lazy value")
    moto.reset_calls()
    ext = start_extension(parameters_config(name), env={"CACHE_EXTENSION_INIT_STARTUP": "false"})
    assert moto.calls() == 0
    first = ext.read("parameters", name)
    assert (first.text, first.headers["x-cache"]) == ("lazy value", "miss")
    assert ext.read("parameters", name).headers["x-cache"] == "hit"
    assert moto.calls("AmazonSSM.GetParameters") == 1


def test_a_read_during_a_slow_prefetch_waits_for_it(start_extension, moto):
    name = unique("slow")
    put_parameter(moto, name, "worth the wait")
    moto.delay("AmazonSSM.GetParameters", 1.0, times=1)
    ext = start_extension(parameters_config(name), wait=False)
    poll(lambda: ext.extension.registered_at, timeout=10)
    reply = poll(lambda: _read_if_listening(ext, name), timeout=10, interval=0.01)
    assert (reply.status, reply.text) == (200, "worth the wait")
    ext.emulator.wait_init(timeout=10)
    assert moto.calls("AmazonSSM.GetParameters") >= 1


def _read_if_listening(ext, name):
    try:
        return ext.read("parameters", name)
    except ConnectionRefusedError:
        return None


# --- TTL, single-flight, stale ------------------------------------------------------------------


def test_expired_items_are_refreshed(start_extension, moto):
    name = unique("ttl")
    put_parameter(moto, name, "old ttl value")
    ext = start_extension(parameters_config(name, ttl="200ms"))
    assert ext.read("parameters", name).text == "old ttl value"
    put_parameter(moto, name, "new ttl value")
    reply = poll(lambda: (r := ext.read("parameters", name)).text == "new ttl value" and r)
    assert reply.headers["x-cache"] in ("miss", "hit")


def test_concurrent_reads_of_an_expired_item_make_one_upstream_call(start_extension, moto):
    name = unique("flight")
    put_parameter(moto, name, "single-flight value")
    ext = start_extension(parameters_config(name, ttl="100ms", stale="0s"))
    time.sleep(0.15)  # let the 100 ms TTL lapse (bounded; not waiting on a poll)
    moto.reset_calls()
    moto.delay("AmazonSSM.GetParameters", 0.5, times=1)
    replies = []
    threads = [threading.Thread(target=lambda: replies.append(ext.read("parameters", name))) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert [r.status for r in replies] == [200] * 20
    assert {r.headers["x-cache"] for r in replies} == {"miss"}
    assert moto.calls("AmazonSSM.GetParameters") == 1


def test_failed_refresh_serves_stale_then_recovers(start_extension, moto):
    name = unique("stale")
    put_parameter(moto, name, "last good")
    ext = start_extension(parameters_config(name, ttl="100ms"), env={"CACHE_EXTENSION_LOG_LEVEL": "debug"})
    moto.fail("AmazonSSM.GetParameters", status=500, code="InternalServerError")
    stale = poll(lambda: (r := ext.read("parameters", name)).headers.get("x-cache") == "stale" and r)
    assert (stale.status, stale.text) == (200, "last good")
    # The background refresh is retried with backoff, then gives up and says so; reads stay stale meanwhile.
    poll(lambda: "serving the stale value" in ext.output)
    assert "InternalServerError" in ext.output
    assert ext.read("parameters", name).text == "last good"
    moto.clear_faults()
    put_parameter(moto, name, "fresh again")
    poll(lambda: ext.read("parameters", name).text == "fresh again")


def test_upstream_failure_with_nothing_cached_is_502_with_the_code(start_extension, moto):
    name = unique("broken")
    put_parameter(moto, name, "unreachable")
    moto.fail("AmazonSSM.GetParameters", status=400, code="AccessDeniedException")
    try:
        ext = start_extension(parameters_config(name))
        reply = ext.read("parameters", name)
    finally:
        moto.clear_faults()
    assert reply.status == 502
    assert json.loads(reply.body) == {"error": "AccessDeniedException", "message": "ssm:GetParameters failed with AccessDeniedException"}
    # The error is held for a second (a loop of reads costs one call a second), then a read fetches again.
    assert ext.read("parameters", name).status == 502
    poll(lambda: ext.read("parameters", name).text == "unreachable")


def test_missing_upstream_items_are_404(start_extension):
    table_config = "dynamodb:\n  - table: DynamoDbTable\n    hashkey: pKey\n    hashkeyvalue: nobody\n    sortkey: sKey\n    sortkeyvalue: none\n"
    ext = start_extension(parameters_config("/does/not/exist") + "secrets:\n  - names: [no-such-secret]\n" + table_config)
    for source, name in [("parameters", "/does/not/exist"), ("secrets", "no-such-secret"), ("dynamodb", "DynamoDbTable-nobody-none")]:
        reply = ext.read(source, name)
        assert reply.status == 404, (source, reply.body)
        assert json.loads(reply.body)["error"] in ("NotFound", "ResourceNotFoundException")


# --- sources ------------------------------------------------------------------------------------


def test_secure_strings_binary_secrets_and_version_stages(start_extension, moto):
    secure, plain_secret, binary_secret = unique("secure"), unique("plain"), unique("binary")
    SECRET_VALUES.update({"secure-string-value", "current-secret", "previous-secret"})
    put_parameter(moto, secure, "secure-string-value", kind="SecureString")
    sm = moto.client("secretsmanager", REGION)
    sm.create_secret(Name=plain_secret, SecretString="previous-secret")
    sm.put_secret_value(SecretId=plain_secret, SecretString="current-secret")
    sm.create_secret(Name=binary_secret, SecretBinary=b"\x00\xffbinary")
    config = parameters_config(secure) + (
        f"secrets:\n  - names: [{plain_secret}, {binary_secret}]\n"
        f"  - names: [{plain_secret}-previous]\n    versionstage: AWSPREVIOUS\n"
    )
    # The same secret under two stages needs two addresses: alias the second through a second id form.
    config = config.replace(f"{plain_secret}-previous", sm.describe_secret(SecretId=plain_secret)["ARN"])
    ext = start_extension(config)
    assert ext.read("parameters", secure).text == "secure-string-value"
    assert ext.read("secrets", plain_secret).text == "current-secret"
    arn = sm.describe_secret(SecretId=plain_secret)["ARN"]
    assert ext.read("secrets", arn).text == "previous-secret"
    binary = ext.read("secrets", binary_secret)
    assert (binary.body, binary.headers["content-type"]) == (b"\x00\xffbinary", "application/octet-stream")


def test_dynamodb_key_types_aliases_and_exact_numbers(start_extension, moto):
    table = unique("Typed")
    ddb = moto.client("dynamodb", REGION)
    ddb.create_table(TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "B"}, {"AttributeName": "at", "AttributeType": "N"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName=table, Item={"id": {"B": b"\x01\x02"}, "at": {"N": "7"},
                                        "big": {"N": "123456789012345678901234567890.12345678"},
                                        "set": {"SS": ["a-b"]}, "none": {"NULL": True}})
    encoded = base64.b64encode(b"\x01\x02").decode()
    ext = start_extension(
        f"dynamodb:\n  - table: {table}\n    hashkey: id\n    hashkeytype: B\n    hashkeyvalue: {encoded}\n"
        f"    sortkey: at\n    sortkeytype: N\n    sortkeyvalue: '007'\n    name: typed-item\n"
    )
    reply = ext.read("dynamodb", "typed-item")
    assert reply.status == 200
    assert b'"big":123456789012345678901234567890.12345678' in reply.body
    assert json.loads(reply.body) == {"id": encoded, "at": 7, "big": pytest.approx(1.2345678901234568e29), "set": ["a-b"], "none": None}


# --- HTTP rules ---------------------------------------------------------------------------------


def test_token_forwarding_and_query_rules(start_extension, moto):
    ext = start_extension()
    path = "/parameters?name=CacheExtensions_Parameter1"
    assert ext.request(path, token=None).status == 401
    assert ext.request(path, token="wrong").status == 403
    assert ext.request(path, headers={"X-Forwarded-For": "203.0.113.9"}).status == 400
    moto.reset_calls()
    for bad in ["/parameters", "/parameters?name=", "/parameters?name=a&name=b", "/parameters?name=" + "x" * 2049]:
        reply = ext.request(bad)
        assert reply.status == 400, bad
        assert json.loads(reply.body)["error"] == "BadRequest"
    unknown = ext.read("parameters", "SomeOtherParameter")
    assert unknown.status == 404 and json.loads(unknown.body)["error"] == "NotConfigured"
    assert ext.read("secrets", "CacheExtensions_Parameter1").status == 404  # configured, but under another route
    assert moto.calls() == 0  # none of that reached AWS
    assert ext.request(path, method="POST").status == 405
    assert ext.request(path, method="DELETE").status == 405
    assert ext.request("/nothing-here").status == 404
    assert ext.request("/nothing-here", token=None).status == 401
    for reply in (ext.request(path, token="wrong"), ext.request("/nothing-here")):
        assert set(json.loads(reply.body)) == {"error", "message"}


def test_custom_token_replaces_the_session_token(start_extension):
    ext = start_extension(env={"CACHE_EXTENSION_TOKEN": "custom-token"})
    assert ext.request("/parameters?name=CacheExtensions_Parameter1").status == 403
    assert ext.request("/parameters?name=CacheExtensions_Parameter1", token="custom-token").status == 200


# --- init errors and shutdown -------------------------------------------------------------------


@pytest.mark.parametrize(
    "config, env, expected",
    [
        ("parameters:\n  - names: [a]\n    tll: 5m\n", {}, ":3: parameters[0].tll"),
        ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeytype: X\n    hashkeyvalue: v\n", {}, ":4: dynamodb[0].hashkeytype"),
        ("parameters:\n  - names: [a]\n    ttl: 5x\n", {}, ":3: parameters[0].ttl"),
        ("parameters:\n  - names: [a]\n", {"CACHE_EXTENSION_TTL": "5x"}, "CACHE_EXTENSION_TTL"),
        ("parameters:\n  - names: [a]\n", {"CACHE_EXTENSION_INIT_STARTUP": "yes"}, "CACHE_EXTENSION_INIT_STARTUP"),
        ("parameters:\n  - names: [a]\n", {"CACHE_EXTENSION_PORT": "99999"}, "CACHE_EXTENSION_PORT"),
    ],
)
def test_bad_configuration_is_an_init_error_naming_the_problem(start_extension, config, env, expected):
    ext = start_extension(config, env=env, wait=False)
    with pytest.raises(InitFailed):
        ext.emulator.wait_init(timeout=15)
    assert ext.extension.wait_exit(5) == 1
    [error] = ext.extension.init_errors
    assert error["error_type"] == "Extension.ConfigInvalid"
    assert expected in error["body"]["errorMessage"]
    if expected.startswith(":"):
        assert str(ext.config_path) + expected in error["body"]["errorMessage"]
    assert "Traceback" not in ext.output


def test_port_in_use_is_an_init_error(start_extension):
    first = start_extension()
    second = start_extension(port=first.port, wait=False)
    with pytest.raises(InitFailed):
        second.emulator.wait_init(timeout=15)
    [error] = second.extension.init_errors
    assert error["error_type"] == "Extension.PortUnavailable"
    assert "CACHE_EXTENSION_PORT" in error["body"]["errorMessage"]


def test_shutdown_exits_zero_within_a_second(start_extension):
    ext = start_extension()
    ext.emulator.invoke()
    assert ext.read("parameters", "CacheExtensions_Parameter1").status == 200
    timings = ext.emulator.shutdown()
    assert timings["cache-extension"] is not None and timings["cache-extension"] < 1.0
    assert ext.extension.process.returncode == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_exit_zero_within_a_second(start_extension, signum):
    ext = start_extension()
    sent = time.monotonic()
    ext.extension.process.send_signal(signum)
    assert ext.extension.wait_exit(1.0) == 0, ext.output
    assert time.monotonic() - sent < 1.0


def test_the_extensions_api_going_away_is_one_debug_line(start_extension):
    """`sam local invoke` without --shutdown removes the container right after the response: the Extensions API
    closes the blocked event/next with no answer and accepts no more connections. Teardown, not an error."""
    ext = start_extension(env={"CACHE_EXTENSION_LOG_LEVEL": "debug"})
    ext.emulator.invoke()
    before = len(ext.output.splitlines())
    ext.emulator.go_away()
    assert ext.extension.wait_exit(5) == 0, ext.output
    after = ext.output.splitlines()[before:]
    about_api = [line for line in after if "Extensions API" in line]
    assert len(about_api) == 1 and about_api[0].startswith("DEBUG "), after
    assert "went away" in about_api[0]
    assert not [line for line in after if line.startswith(("ERROR", "WARNING", "CRITICAL"))], after
    assert ext.extension.exit_errors == []


def test_losing_the_extensions_api_after_init_reports_exit_error_and_exits_nonzero(start_extension):
    ext = start_extension()
    ext.emulator.fail_events()
    assert ext.extension.wait_exit(5) not in (None, 0)
    [error] = ext.extension.exit_errors
    assert error["error_type"] == "Extension.ApiError"
