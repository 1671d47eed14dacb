"""The AWS Parameters and Secrets Lambda Extension's routes, and names read on demand through `allow:`."""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.request

from conftest import REGION, SECRET_VALUES, unique

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


def test_a_request_written_as_aws_documents_it(start_extension):
    """AWS's documentation reads a secret like this; only the port differs."""
    ext = start_extension()
    # As in AWS's Python example: the port from the environment, the session token as the header.
    os.environ["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"] = str(ext.port)
    try:
        port = os.environ["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"]
        headers = {"X-Aws-Parameters-Secrets-Token": ext.token}
        endpoint = "http://localhost:" + port + "/secretsmanager/get?secretId=" + "secret_info"
        with urllib.request.urlopen(urllib.request.Request(endpoint, headers=headers), timeout=5) as response:
            secret = json.loads(response.read())["SecretString"]
        endpoint = "http://localhost:" + port + "/systemsmanager/parameters/get?name=" + "CacheExtensions_Parameter1"
        with urllib.request.urlopen(urllib.request.Request(endpoint, headers=headers), timeout=5) as response:
            parameter = json.loads(response.read())["Parameter"]["Value"]
    finally:
        del os.environ["PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"]
    assert (secret, parameter) == ("MySecret", "MyParameter")


def test_get_parameter_shape(start_extension, moto):
    ext = start_extension()
    reply = ext.request("/systemsmanager/parameters/get?name=CacheExtensions_Parameter1")
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert reply.headers["x-cache"] == "hit"
    body = json.loads(reply.body)
    assert set(body) == {"Parameter", "ResultMetadata"} and body["ResultMetadata"] == {}
    parameter = body["Parameter"]
    assert list(parameter) == ["ARN", "DataType", "LastModifiedDate", "Name", "Selector", "SourceResult", "Type", "Value", "Version"]
    assert parameter["ARN"].startswith(f"arn:aws:ssm:{REGION}:") and parameter["ARN"].endswith(":parameter/CacheExtensions_Parameter1")
    assert (parameter["Name"], parameter["Type"], parameter["Value"], parameter["DataType"]) == ("CacheExtensions_Parameter1", "String", "MyParameter", "text")
    assert isinstance(parameter["Version"], int) and RFC3339.match(parameter["LastModifiedDate"])


def test_secure_strings_need_with_decryption(start_extension, moto):
    name = unique("/compat/secure")
    SECRET_VALUES.add("compat-secure-value")
    moto.client("ssm", REGION).put_parameter(Name=name, Value="compat-secure-value", Type="SecureString")
    ext = start_extension(f"parameters:\n  - names: [{name}]\n")
    refused = ext.request(f"/systemsmanager/parameters/get?name={name}")
    # AWS's error shape on AWS's routes (was {"error": ...}: issue 16)
    assert refused.status == 400 and json.loads(refused.body)["__type"] == "DecryptionRequired"
    assert b"compat-secure-value" not in refused.body
    reply = ext.request(f"/systemsmanager/parameters/get?name={name}&withDecryption=true")
    assert json.loads(reply.body)["Parameter"]["Value"] == "compat-secure-value"
    assert ext.request(f"/systemsmanager/parameters/get?name={name}&withDecryption=maybe").status == 400


def test_versions_and_labels_of_a_configured_parameter(start_extension, moto):
    name = unique("/compat/versioned")
    ssm = moto.client("ssm", REGION)
    ssm.put_parameter(Name=name, Value="first", Type="String")
    ssm.put_parameter(Name=name, Value="second", Type="String", Overwrite=True)
    ssm.label_parameter_version(Name=name, ParameterVersion=1, Labels=["stable"])
    ext = start_extension(f"parameters:\n  - names: [{name}]\n")

    def value(query):
        reply = ext.request(f"/systemsmanager/parameters/get?name={name}{query}")
        assert reply.status == 200, reply.body
        return json.loads(reply.body)["Parameter"]

    assert value("")["Value"] == "second"
    first = value("&version=1")
    assert (first["Value"], first["Version"], first["Selector"]) == ("first", 1, ":1")
    assert value("&label=stable")["Value"] == "first"
    assert ext.request(f"/systemsmanager/parameters/get?name={name}&version=1&label=stable").status == 400
    assert ext.request(f"/systemsmanager/parameters/get?name={name}&version=one").status == 400
    missing = ext.request(f"/systemsmanager/parameters/get?name={name}&version=9")
    # 400 as AWS answers ParameterVersionNotFound (was 404: issue 16)
    assert missing.status == 400 and json.loads(missing.body)["__type"] == "ParameterVersionNotFound"


def test_get_secret_value_shape_stages_and_versions(start_extension, moto):
    name, binary = unique("compat-secret"), unique("compat-binary")
    SECRET_VALUES.update({"compat-old-secret", "compat-new-secret"})
    sm = moto.client("secretsmanager", REGION)
    sm.create_secret(Name=name, SecretString="compat-old-secret")
    new_version = sm.put_secret_value(SecretId=name, SecretString="compat-new-secret")["VersionId"]
    sm.create_secret(Name=binary, SecretBinary=b"\x00\x01binary")
    ext = start_extension(f"secrets:\n  - names: [{name}, {binary}]\n")
    reply = ext.request(f"/secretsmanager/get?secretId={name}")
    assert reply.status == 200 and reply.headers["x-cache"] == "hit"
    body = json.loads(reply.body)
    assert list(body) == ["ARN", "CreatedDate", "Name", "SecretBinary", "SecretString", "VersionId", "VersionStages", "ResultMetadata"]
    assert (body["Name"], body["SecretString"], body["SecretBinary"], body["VersionId"]) == (name, "compat-new-secret", None, new_version)
    assert "AWSCURRENT" in body["VersionStages"] and RFC3339.match(body["CreatedDate"])
    previous = json.loads(ext.request(f"/secretsmanager/get?secretId={name}&versionStage=AWSPREVIOUS").body)
    assert previous["SecretString"] == "compat-old-secret"
    by_id = json.loads(ext.request(f"/secretsmanager/get?secretId={name}&versionId={new_version}").body)
    assert by_id["SecretString"] == "compat-new-secret"
    assert ext.request(f"/secretsmanager/get?secretId={name}&versionId=x&versionStage=AWSCURRENT").status == 400
    raw = json.loads(ext.request(f"/secretsmanager/get?secretId={binary}").body)
    assert (raw["SecretString"], base64.b64decode(raw["SecretBinary"])) == (None, b"\x00\x01binary")


def test_only_configured_or_allowed_names_reach_aws(start_extension, moto):
    allowed, other = unique("/allowed/p"), unique("/elsewhere/p")
    secret = unique("shared/s")
    SECRET_VALUES.update({"on-demand-value", "on-demand-secret"})
    moto.client("ssm", REGION).put_parameter(Name=allowed, Value="on-demand-value", Type="String")
    moto.client("ssm", REGION).put_parameter(Name=other, Value="elsewhere", Type="String")
    moto.client("secretsmanager", REGION).create_secret(Name=secret, SecretString="on-demand-secret")
    moto.reset_calls()
    ext = start_extension("allow:\n  parameters: ['/allowed/*']\n  secrets: ['shared/*']\n  ttl: 1m\n")
    assert moto.calls() == 0  # nothing listed for prefetch
    first = ext.read("parameters", allowed)
    assert first.status == 200, (first.body, ext.output)
    assert (first.status, first.text, first.headers["x-cache"]) == (200, "on-demand-value", "miss")
    assert ext.read("parameters", allowed).headers["x-cache"] == "hit"
    compat = json.loads(ext.request(f"/systemsmanager/parameters/get?name={allowed}").body)
    assert compat["Parameter"]["Value"] == "on-demand-value"
    assert ext.read("secrets", secret).text == "on-demand-secret"
    assert json.loads(ext.request(f"/secretsmanager/get?secretId={secret}").body)["SecretString"] == "on-demand-secret"
    calls = moto.calls()
    for path in (f"/parameters?name={other}", f"/systemsmanager/parameters/get?name={other}",
                 f"/secretsmanager/get?secretId={allowed}", "/secrets?name=secret_info", "/dynamodb?name=DynamoDbTable-pKey1-sKey1"):
        reply = ext.request(path)
        body = json.loads(reply.body)
        assert reply.status == 404 and (body.get("error") or body.get("__type")) == "NotConfigured", path
    assert moto.calls() == calls


def test_compatible_routes_keep_the_token_rules(start_extension):
    ext = start_extension()
    # A missing token: 401 on the SSM route, 403 on /secretsmanager/get as the Secrets Manager Agent answers
    # (was 401: issue 16).
    for path, missing in (("/systemsmanager/parameters/get?name=CacheExtensions_Parameter1", 401),
                          ("/secretsmanager/get?secretId=secret_info", 403)):
        assert ext.request(path, token=None).status == missing
        assert ext.request(path, token="wrong").status == 403
        assert ext.request(path, headers={"X-Forwarded-For": "10.0.0.1"}).status == 400
    assert ext.request("/systemsmanager/parameters/get").status == 400
    assert ext.request("/secretsmanager/get?secretId=").status == 400
