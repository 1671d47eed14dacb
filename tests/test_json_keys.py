"""key=: one top-level key of a JSON object value (GET /secrets?name=ID&key=K, the same on /parameters)."""

from __future__ import annotations

import json

import pytest

from cache_extension.json_keys import MemberError, member
from conftest import REGION, SECRET_VALUES, unique

TEXT = "text/plain; charset=utf-8"
VALUE = ('{"user": "first", "port": 5432, "big": 123456789012345678901.50, "opts": {"tls": true,  "n": 1.50},'
         ' "list": [1, "two"], "none": null, "user": "svc", "quoted": "a\\"b\\u00e9", "empty": ""}')


@pytest.mark.parametrize("key, text", [
    ("user", "svc"),  # the last of a repeated key, as json.loads has it
    ("port", "5432"),
    ("big", "123456789012345678901.50"),  # every digit, as written
    ("opts", '{"tls": true,  "n": 1.50}'),  # exactly as the value holds it
    ("list", '[1, "two"]'),
    ("none", "null"),
    ("quoted", 'a"bé'),  # a string member decoded
    ("empty", ""),
])
def test_a_member_as_text(key, text):
    assert member(VALUE.encode(), TEXT, key) == text


@pytest.mark.parametrize("body, content_type", [
    (b"plain text", TEXT), (b"[1, 2]", TEXT), (b'"a string"', TEXT), (b"null", TEXT), (b"{", TEXT),
    (b"\xff\xfe", TEXT), (b'{"a": 1}', "application/octet-stream"),
])
def test_a_value_that_is_not_a_json_object(body, content_type):
    with pytest.raises(MemberError) as raised:
        member(body, content_type, "a")
    assert (raised.value.status, raised.value.code) == (400, "NotJsonObject")


def test_an_absent_key():
    with pytest.raises(MemberError) as raised:
        member(b'{"a": {"b": 1}}', TEXT, "b")  # only top-level keys
    assert (raised.value.status, raised.value.code) == (404, "KeyNotFound")


def test_keys_over_http(start_extension, moto):
    secret, plain, parameter = unique("keys/secret"), unique("keys/plain"), unique("/keys/parameter")
    password = "key-route-password-value"
    value = json.dumps({"user": "admin", "password": password, "port": 5432})
    SECRET_VALUES.update({password, value, "key-route-plain-secret"})
    sm = moto.client("secretsmanager", REGION)
    sm.create_secret(Name=secret, SecretString=value)
    sm.create_secret(Name=plain, SecretString="key-route-plain-secret")
    moto.client("ssm", REGION).put_parameter(Name=parameter, Value='{"region": "eu-west-1", "n": 1.50}', Type="String")
    ext = start_extension(f"parameters:\n  - names: [{parameter}, /aws/reference/secretsmanager/{secret}]\n"
                          f"secrets:\n  - names: [{secret}, {plain}]\n"
                          "dynamodb:\n  - table: DynamoDbTable\n    hashkey: pKey\n    hashkeyvalue: pKey1\n"
                          "    sortkey: sKey\n    sortkeyvalue: sKey1\n")

    reply = ext.request(f"/secrets?name={secret}&key=password")
    assert (reply.status, reply.body, reply.headers["content-type"]) == (200, password.encode(), TEXT)
    assert reply.headers["x-cache"] == "hit" and reply.headers["cache-control"].startswith("max-age=")
    assert ext.request(f"/secrets?name={secret}&key=port").body == b"5432"
    assert ext.request(f"/parameters?name={parameter}&key=n").body == b"1.50"
    assert ext.request(f"/parameters?name=/aws/reference/secretsmanager/{secret}&key=user").body == b"admin"

    failures = {
        f"/secrets?name={secret}&key=missing": (404, "KeyNotFound"),
        f"/secrets?name={plain}&key=user": (400, "NotJsonObject"),
        f"/secrets?name={secret}&key=": (400, "BadRequest"),
        f"/secrets?name={secret}&key=a&key=b": (400, "BadRequest"),
        f"/secrets?name={unique('keys/unlisted')}&key=user": (404, "NotConfigured"),
        "/dynamodb?name=DynamoDbTable-pKey1-sKey1&key=Data": (400, "BadRequest"),
    }
    for path, (status, code) in failures.items():
        reply = ext.request(path)
        assert (reply.status, json.loads(reply.body)["error"]) == (status, code), path
        assert password.encode() not in reply.body and b"key-route-plain-secret" not in reply.body
    # Without key= the whole value, as before.
    assert json.loads(ext.request(f"/secrets?name={secret}").body)["password"] == password
    # The keyed reads were served from the cache: one prefetch, no call per read.
    stats = json.loads(ext.request("/stats").body)
    assert stats["cache"]["secrets"]["Misses"] == 0
