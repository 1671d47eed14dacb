"""The conformance suite (tests/conformance/cases.py): requests written for AWS's Parameters and Secrets
Lambda Extension and for the AWS Secrets Manager Agent, against the extension launched from the built layer,
with moto as AWS. One test per case, in the table's order (a case's `setup` may depend on earlier ones)."""

from __future__ import annotations

import base64
import http.client
import json
import re
from urllib.parse import quote

import pytest
from conftest import REGION, SECRET_BYTES, SECRET_VALUES, close_and_check, launch, unique
from conformance.cases import CASES

BINARY = b"\x00\x01\xfebinary"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\Z")
EPOCH = re.compile(r"\d{9,11}(\.\d{1,9})?\Z")
MISSING = object()


class Resources:
    """What the cases read, created in moto once for the module; `values` fills the cases' placeholders."""

    def __init__(self, moto) -> None:
        ssm, sm = moto.client("ssm", REGION), moto.client("secretsmanager", REGION)
        SECRET_VALUES.update({"secure-value", "secret-v1", "secret-v2", "rotating-v1", "rotating-v2"})
        SECRET_BYTES.add(BINARY)
        v = self.values = {"region": REGION}
        v["param"], v["flat"], v["secure"] = unique("/conf/app/param"), unique("conf-flat"), unique("/conf/app/secure")
        v["allowed_param"], v["unlisted_param"] = unique("/conf/allowed/param"), unique("/conf/unlisted/param")
        ssm.put_parameter(Name=v["param"], Value="plain-value-1", Type="String")
        ssm.put_parameter(Name=v["param"], Value="plain-value-2", Type="String", Overwrite=True)
        ssm.label_parameter_version(Name=v["param"], ParameterVersion=1, Labels=["stable"])
        ssm.put_parameter(Name=v["flat"], Value="flat-value", Type="String")
        ssm.put_parameter(Name=v["secure"], Value="secure-value", Type="SecureString")
        ssm.put_parameter(Name=v["allowed_param"], Value="allowed-value", Type="String")
        ssm.put_parameter(Name=v["unlisted_param"], Value="unlisted-value", Type="String")
        v["param_arn"] = ssm.get_parameter(Name=v["param"])["Parameter"]["ARN"]
        v["flat_arn"] = ssm.get_parameter(Name=v["flat"])["Parameter"]["ARN"]
        v["account"] = v["param_arn"].split(":")[4]
        v["secret"], v["binary"], v["rotating"] = unique("conf/secret"), unique("conf/binary"), unique("conf/rotating")
        v["unlisted_secret"] = unique("conf/unlisted/secret")
        created = sm.create_secret(Name=v["secret"], SecretString="secret-v1")
        v["secret_arn"], v["secret_v1"] = created["ARN"], created["VersionId"]
        v["secret_partial_arn"] = created["ARN"][:-7]
        v["secret_v2"] = sm.put_secret_value(SecretId=v["secret"], SecretString="secret-v2")["VersionId"]
        sm.create_secret(Name=v["binary"], SecretBinary=BINARY)
        sm.create_secret(Name=v["rotating"], SecretString="rotating-v1")
        sm.create_secret(Name=v["unlisted_secret"], SecretString="unlisted-secret")
        self.sm = sm
        self.config = (
            "parameters:\n"
            f"  - ttl: 10m\n    names: ['{v['param']}', '{v['flat']}', '{v['secure']}']\n"
            "secrets:\n"
            f"  - ttl: 10m\n    names: ['{v['secret']}', '{v['binary']}', '{v['rotating']}']\n"
            "allow:\n  parameters: ['/conf/allowed/*']\n  secrets: ['conf/allowed/*']\n  ttl: 10m\n")

    def fill(self, text: str) -> str:
        def one(match: re.Match) -> str:
            key = match.group(1)
            if key.startswith("q:"):
                return quote(self.values[key[2:]], safe="")
            return self.values[key]

        return re.sub(r"\{(q:[a-z_]+|[a-z_0-9]+)\}", one, text)

    def setup(self, step: str) -> None:
        if step == "rotate":  # a rotation the cache has not seen: only refreshNow=true may show it
            self.sm.put_secret_value(SecretId=self.values["rotating"], SecretString="rotating-v2")
        else:
            raise AssertionError(f"unknown setup step {step}")


@pytest.fixture(scope="module")
def world(layer_dir, moto, tmp_path_factory):
    resources = Resources(moto)
    resources.values["token"] = ""
    handle = launch(layer_dir, moto, tmp_path_factory.mktemp("conformance"), resources.config)
    resources.values["token"] = handle.token
    yield resources, handle
    close_and_check(handle)


def send(handle, method: str, path: str, headers: dict[str, str]):
    connection = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=10)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def field(body, dotted: str):
    for part in dotted.split("."):
        if not isinstance(body, dict) or part not in body:
            return MISSING
        body = body[part]
    return body


def check_value(name: str, actual, expected, fill) -> str | None:
    """None when `actual` is what `expected` says, else why not."""
    if isinstance(expected, str):
        if expected == "absent":
            ok = actual is MISSING
        elif actual is MISSING:
            ok = False
        elif expected == "null":
            ok = actual is None
        elif expected == "str":
            ok = isinstance(actual, str)
        elif expected == "int":
            ok = isinstance(actual, int) and not isinstance(actual, bool)
        elif expected == "rfc3339":
            ok = isinstance(actual, str) and RFC3339.match(actual) is not None
        elif expected == "epoch-string":
            ok = isinstance(actual, str) and EPOCH.match(actual) is not None
        elif expected.startswith("base64:"):
            ok = isinstance(actual, str) and base64.b64decode(actual) == expected[7:].encode("latin-1")
        else:
            ok = actual == fill(expected)
    else:
        ok = actual == expected
    return None if ok else f"{name}: expected {expected!r}, got {'(absent)' if actual is MISSING else type(actual).__name__}"


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_conformance(world, moto, case):
    resources, handle = world
    if case["setup"]:
        resources.setup(case["setup"])
    request, expect = case["request"], case["expect"]
    headers = {name: resources.fill(value) for name, value in request["headers"].items()}
    before = moto.calls()
    status, reply_headers, body = send(handle, request["method"], resources.fill(request["path"]), headers)
    calls = moto.calls() - before
    # Never a value in an assertion message: only statuses, field names and types.
    problems = []
    if status != expect["status"]:
        problems.append(f"status {status}, expected {expect['status']}")
    for name, value in (expect.get("headers") or {}).items():
        if not reply_headers.get(name, "").startswith(value):
            problems.append(f"header {name}: expected {value!r}")
    if "text" in expect and body != expect["text"].encode():
        problems.append("body text differs")
    if "json" in expect:
        try:
            document = json.loads(body)
        except ValueError:
            problems.append("body is not JSON")
        else:
            for name, value in expect["json"].items():
                problem = check_value(name, field(document, name), value, resources.fill)
                if problem:
                    problems.append(problem)
    if "aws_calls" in expect and calls != expect["aws_calls"]:
        problems.append(f"{calls} AWS calls, expected {expect['aws_calls']}")
    assert not problems, f"{case['id']} ({case['product']}, {case['source']}): " + "; ".join(problems)


def test_the_table():
    """At least 40 cases across both products, each naming its source; a deliberate difference says why."""
    assert len(CASES) >= 40 and len({case["id"] for case in CASES}) == len(CASES)
    assert {case["product"] for case in CASES} == {"lambda-extension", "agent"}
    for case in CASES:
        assert case["source"] and (case["differs"] is None or len(case["differs"]) > 10), case["id"]
