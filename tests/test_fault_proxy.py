"""The fault proxy, driven by real botocore clients through to moto: each fault is what botocore sees."""

from __future__ import annotations

import functools
import http.client
import json
import socket
import threading
import time
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, ReadTimeoutError

from conftest import REGION, unique
from local_lambda.aws import DUMMY_CREDENTIAL, SAMPLE_TABLE
from local_lambda.fault_proxy import FaultProxy

ITEM_KEY = {"pKey": {"S": "pKey1"}, "sKey": {"S": "sKey1"}}


@pytest.fixture
def proxy(moto):
    with FaultProxy(moto.endpoint) as running:
        yield running


@functools.lru_cache(maxsize=1)
def session() -> boto3.session.Session:
    """One session for the module: it caches the service models a new client would load again."""
    return boto3.session.Session(DUMMY_CREDENTIAL, DUMMY_CREDENTIAL, region_name=REGION)


def client(proxy: FaultProxy, service: str, read_timeout: float = 2.0):
    """A botocore client through the proxy, one attempt only, so every fault surfaces as it is."""
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=read_timeout)
    return session().client(service, endpoint_url=proxy.endpoint, config=config)


def address(proxy: FaultProxy) -> tuple[str, int]:
    parts = urlsplit(proxy.endpoint)
    return parts.hostname, parts.port


@pytest.fixture
def parameter(moto):
    name = unique("/fault-proxy/param")
    moto.client("ssm", REGION).put_parameter(Name=name, Value=f"value of {name}", Type="String")
    return name


def error_of(call) -> Exception:
    with pytest.raises((ClientError, BotoCoreError)) as caught:
        call()
    return caught.value


def test_pass_through_relays_moto_values_over_kept_alive_connections(proxy, moto, parameter):
    secret = unique("fault-proxy-secret")
    moto.client("secretsmanager", REGION).create_secret(Name=secret, SecretString="s3cr3t-" + secret)

    assert client(proxy, "ssm").get_parameter(Name=parameter)["Parameter"]["Value"] == f"value of {parameter}"
    assert client(proxy, "secretsmanager").get_secret_value(SecretId=secret)["SecretString"] == "s3cr3t-" + secret
    item = client(proxy, "dynamodb").get_item(TableName=SAMPLE_TABLE, Key=ITEM_KEY)["Item"]
    assert item["Data"] == {"S": "DynamoDB sample data"}  # relayed unchanged: botocore checks DynamoDB's CRC32

    # Two requests on one client connection: the proxy keeps it open, as botocore's pool expects.
    connection = http.client.HTTPConnection(*address(proxy), timeout=2)
    sockets = []
    try:
        for _ in range(2):
            connection.request("POST", "/", body=json.dumps({"Name": parameter}), headers={
                "X-Amz-Target": "AmazonSSM.GetParameter", "Content-Type": "application/x-amz-json-1.1",
                # moto picks the service from the signature's credential scope.
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20240101/us-west-2/ssm/aws4_request"})
            response = connection.getresponse()
            assert response.status == 200 and parameter in response.read().decode()
            sockets.append(connection.sock)
        assert sockets[0] is sockets[1] is not None
    finally:
        connection.close()
    assert proxy.outcomes() == {"forwarded": 5}


@pytest.mark.parametrize("service", ["ssm", "dynamodb"])
def test_throttle_is_a_throttling_client_error_and_never_reaches_moto(proxy, moto, service):
    proxy.throttle()
    before = moto.calls()
    if service == "ssm":
        error = error_of(lambda: client(proxy, "ssm").get_parameter(Name="/anything"))
    else:
        error = error_of(lambda: client(proxy, "dynamodb").get_item(TableName=SAMPLE_TABLE, Key=ITEM_KEY))
    assert isinstance(error, ClientError)
    assert error.response["Error"]["Code"] == "ThrottlingException"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert moto.calls() == before
    assert proxy.outcomes() == {"throttle": 1}


@pytest.mark.parametrize("status, code", [(500, "InternalFailure"), (503, "ServiceUnavailable")])
def test_status_is_a_server_error_and_never_reaches_moto(proxy, moto, status, code):
    proxy.status(status)
    before = moto.calls()
    error = error_of(lambda: client(proxy, "ssm").get_parameter(Name="/anything"))
    assert isinstance(error, ClientError)
    assert (error.response["ResponseMetadata"]["HTTPStatusCode"], error.response["Error"]["Code"]) == (status, code)
    assert moto.calls() == before
    assert proxy.outcomes() == {f"status{status}": 1}


def test_reset_is_a_connection_error_and_a_real_rst(proxy):
    proxy.reset(times=2)
    error = error_of(lambda: client(proxy, "ssm").get_parameter(Name="/anything"))
    assert isinstance(error, ConnectionClosedError)

    # A FIN would read as b"": a reset raises ECONNRESET.
    with socket.create_connection(address(proxy), timeout=2) as raw:
        raw.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSSM.GetParameter\r\nContent-Length: 2\r\n\r\n{}")
        with pytest.raises(ConnectionResetError):
            raw.recv(1024)
    assert proxy.outcomes() == {"reset": 2}


def test_hang_outlasts_the_read_timeout(proxy):
    proxy.hang(2)
    started = time.monotonic()
    error = error_of(lambda: client(proxy, "ssm", read_timeout=0.3).get_parameter(Name="/anything"))
    assert isinstance(error, ReadTimeoutError)
    assert time.monotonic() - started < 1.5
    assert proxy.outcomes() == {"hang": 1}


def test_stop_releases_hung_and_idle_connections_promptly(proxy, parameter):
    idle = client(proxy, "ssm")
    idle.get_parameter(Name=parameter)  # leaves a kept-alive connection open in botocore's pool
    proxy.hang(30)
    errors: list[Exception] = []
    hung = client(proxy, "ssm", read_timeout=10)  # made here: a boto3 session is not thread-safe

    def hung_call() -> None:
        try:
            hung.get_parameter(Name=parameter)
        except Exception as exc:  # noqa: BLE001 - whatever botocore raises is recorded
            errors.append(exc)

    caller = threading.Thread(target=hung_call)
    caller.start()
    deadline = time.monotonic() + 2
    while proxy.calls() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.outcomes() == {"forwarded": 1, "hang": 1}

    started = time.monotonic()
    proxy.stop()  # the fixture's stop() afterwards does nothing
    assert time.monotonic() - started < 1.0
    caller.join(2)
    assert not caller.is_alive() and isinstance(errors[0], BotoCoreError)  # the hung client is let go too
    assert not [t for t in threading.enumerate() if t.name.startswith("fault-proxy")]


def test_delay_forwards_late(proxy, parameter):
    proxy.delay(0.3, times=1)
    ssm = client(proxy, "ssm")
    timings = []
    for _ in range(2):
        started = time.monotonic()
        assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == f"value of {parameter}"
        timings.append(time.monotonic() - started)
    assert timings[0] >= 0.3 > timings[1]
    assert proxy.outcomes() == {"delay": 1, "forwarded": 1}


def test_lag_answers_late_with_the_value_as_it_was_when_the_call_went_out(proxy, parameter, moto):
    proxy.lag(0.5, times=1)
    ssm = client(proxy, "ssm")
    answers = []
    caller = threading.Thread(target=lambda: answers.append(ssm.get_parameter(Name=parameter)))
    started = time.monotonic()
    caller.start()
    deadline = time.monotonic() + 2
    while proxy.calls() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # upstream has answered by now; the proxy holds the answer
    changed = unique("changed")
    moto.client("ssm", REGION).put_parameter(Name=parameter, Value=changed, Type="String", Overwrite=True)
    caller.join(3)
    assert time.monotonic() - started >= 0.5
    assert answers[0]["Parameter"]["Value"] == f"value of {parameter}"
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == changed
    assert proxy.outcomes() == {"lag": 1, "forwarded": 1}


def test_times_limits_a_fault_and_the_first_added_applies(proxy, parameter):
    proxy.throttle(times=2)
    proxy.status(503, times=1)
    ssm = client(proxy, "ssm")
    codes = []
    for _ in range(4):
        try:
            codes.append(ssm.get_parameter(Name=parameter)["ResponseMetadata"]["HTTPStatusCode"])
        except ClientError as error:
            codes.append(error.response["Error"]["Code"])
    assert codes == ["ThrottlingException", "ThrottlingException", "ServiceUnavailable", 200]


def test_service_operation_and_match_filters(proxy, moto, parameter):
    other = unique("/fault-proxy/other")
    moto.client("ssm", REGION).put_parameter(Name=other, Value="other", Type="String")
    ssm, dynamodb = client(proxy, "ssm"), client(proxy, "dynamodb")

    proxy.throttle(service="dynamodb")
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Name"] == parameter
    assert error_of(lambda: dynamodb.get_item(TableName=SAMPLE_TABLE, Key=ITEM_KEY)).response["Error"]["Code"] == \
        "ThrottlingException"

    proxy.clear()
    proxy.status(500, operation="GetParameters")
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Name"] == parameter
    assert error_of(lambda: ssm.get_parameters(Names=[parameter])).response["Error"]["Code"] == "InternalFailure"

    proxy.clear()
    proxy.throttle(match=parameter)
    assert ssm.get_parameter(Name=other)["Parameter"]["Value"] == "other"
    assert error_of(lambda: ssm.get_parameter(Name=parameter)).response["Error"]["Code"] == "ThrottlingException"

    proxy.clear()
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Name"] == parameter


def test_mix_is_reproducible_and_near_its_weights(proxy, parameter):
    weights = {"throttle": .3, "status503": .2, "reset": .1, "hang": .1, "pass": .3}

    def run(count: int) -> list[str]:
        proxy.reset_calls()
        ssm = client(proxy, "ssm", read_timeout=1)
        for _ in range(count):
            try:
                ssm.get_parameter(Name=parameter)
            except (ClientError, BotoCoreError):
                pass
        return [outcome for *_, outcome in proxy.log]

    proxy.mix(weights, seed=7, hang_seconds=0.02)
    first = run(200)
    proxy.clear()
    proxy.mix(weights, seed=7, hang_seconds=0.02)
    assert run(40) == first[:40]
    proxy.clear()
    proxy.mix(weights, seed=8, hang_seconds=0.02)
    assert run(40) != first[:40]

    shares = {kind: first.count("forwarded" if kind == "pass" else kind) / len(first) for kind in weights}
    for kind, weight in weights.items():
        assert abs(shares[kind] - weight) < 0.1, shares


def test_bad_faults_are_refused(proxy):
    with pytest.raises(ValueError):
        proxy.status(404)
    with pytest.raises(ValueError):
        proxy.mix({"explode": 1.0})


def test_counts_by_operation_and_service_and_no_bodies_printed(proxy, moto, parameter, capfd):
    secret = unique("fault-proxy-secret")
    moto.client("secretsmanager", REGION).create_secret(Name=secret, SecretString="hunter2-" + secret)
    ssm, secrets = client(proxy, "ssm"), client(proxy, "secretsmanager")
    proxy.throttle(operation="GetParameters", times=1)

    ssm.get_parameter(Name=parameter)
    error_of(lambda: ssm.get_parameters(Names=[parameter]))
    ssm.get_parameters(Names=[parameter])
    secrets.get_secret_value(SecretId=secret)

    assert proxy.calls() == 4
    assert proxy.calls("GetParameters") == 2
    assert proxy.calls(service="ssm") == 3
    assert proxy.calls("GetSecretValue", service="secretsmanager") == 1
    assert proxy.calls("GetSecretValue", service="ssm") == 0
    assert proxy.outcomes() == {"forwarded": 3, "throttle": 1}
    log = proxy.log
    assert [entry[1:] for entry in log] == [
        ("ssm", "GetParameter", "forwarded"),
        ("ssm", "GetParameters", "throttle"),
        ("ssm", "GetParameters", "forwarded"),
        ("secretsmanager", "GetSecretValue", "forwarded"),
    ]
    assert [entry[0] for entry in log] == sorted(entry[0] for entry in log)
    proxy.reset_calls()
    assert proxy.calls() == 0 and proxy.outcomes() == {} and proxy.log == []
    captured = capfd.readouterr()
    assert "hunter2" not in captured.out + captured.err and parameter not in captured.out + captured.err
