"""Secrets never reach the extension's output, on any path: reads on every route, errors, stale serving,
forced refreshes, INVOKE and SHUTDOWN, at debug level, with EMF metrics on, in text and in JSON log format.

conftest scans the output of every extension the session starts (pytest_sessionfinish); this test runs
its own and scans it with the same rules, so the check also fails on its own, run in isolation."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from conftest import REGION, SECRET_BYTES, SECRET_VALUES, close_and_check, launch, secret_leaks, unique
from test_end_to_end import poll


@pytest.mark.parametrize("log_format", ["text", "JSON"])
def test_no_secret_reaches_the_output_on_any_path(layer_dir, moto, tmp_path, log_format):
    tag = unique("scan")
    # Values with quotes, backslashes, a newline and non-ASCII: escaped forms are scanned for as well.
    secure, secure_value = f"/{tag}/secure", f'scan "pw" \\ line\nnext \u20ac {tag}'
    stale_param, stale_value = f"/{tag}/stale", f"scan-stale-{tag}"
    json_secret, json_value = f"{tag}/json", json.dumps({"user": "u", "password": f"scan-pw-{tag}"})
    binary_secret, binary_value = f"{tag}/binary", b"\x00\xff\x10scan-binary-" + tag.encode()
    rotated, old_value, new_value = f"{tag}/rotated", f"scan-old-{tag}", f"scan-new-{tag}"
    allowed, allowed_value = f"{tag}/allowed/one", f"scan-allowed-{tag}"
    item_value = f"scan-item-{tag}"
    values = {secure_value, stale_value, json_value, f"scan-pw-{tag}", old_value, new_value, allowed_value, item_value}
    SECRET_VALUES.update(values)  # for conftest's scans (close_and_check, and the session's)
    SECRET_BYTES.add(binary_value)

    ssm = moto.client("ssm", REGION)
    ssm.put_parameter(Name=secure, Value=secure_value, Type="SecureString", Overwrite=True)
    ssm.put_parameter(Name=stale_param, Value=stale_value, Type="SecureString", Overwrite=True)
    sm = moto.client("secretsmanager", REGION)
    sm.create_secret(Name=json_secret, SecretString=json_value)
    sm.create_secret(Name=binary_secret, SecretBinary=binary_value)
    sm.create_secret(Name=rotated, SecretString=old_value)
    sm.put_secret_value(SecretId=rotated, SecretString=new_value)  # old_value is now AWSPREVIOUS
    sm.create_secret(Name=allowed, SecretString=allowed_value)
    moto.client("dynamodb", REGION).put_item(TableName="DynamoDbTable", Item={
        "pKey": {"S": tag}, "sKey": {"S": "s"}, "Secret": {"S": item_value}, "Blob": {"B": binary_value}})

    config = (
        f"parameters:\n  - names: ['{secure}', /aws/reference/secretsmanager/{json_secret}]\n"
        f"  - names: ['{stale_param}']\n    ttl: 200ms\n    stale: 5m\n"
        f"secrets:\n  - names: ['{json_secret}', '{binary_secret}', '{rotated}', '{tag}/missing']\n"
        f"  - names: ['{tag}/stale-binary']\n    ttl: 200ms\n    stale: 5m\n"
        f"dynamodb:\n  - table: DynamoDbTable\n    hashkey: pKey\n    hashkeyvalue: {tag}\n"
        f"    sortkey: sKey\n    sortkeyvalue: s\n    name: scan-item\n"
        f"allow:\n  secrets: ['{tag}/allowed/*']\n"
    )
    sm.create_secret(Name=f"{tag}/stale-binary", SecretBinary=binary_value)
    env = {"CACHE_EXTENSION_LOG_LEVEL": "debug", "CACHE_EXTENSION_METRICS": "emf"}
    if log_format == "JSON":
        env["AWS_LAMBDA_LOG_FORMAT"] = "JSON"
    ext = launch(layer_dir, moto, tmp_path / "task", config, env=env)
    try:
        def ok(target: str, **options) -> bytes:
            reply = ext.request(target, **options)
            assert reply.status == 200, (target, reply.status)
            return reply.body

        q = lambda name: quote(name, safe="")  # noqa: E731

        # Every read route, with every kind of secret.
        assert ok(f"/parameters?name={q(secure)}").decode() == secure_value
        assert ok(f"/parameters?name={q('/aws/reference/secretsmanager/' + json_secret)}").decode() == json_value
        assert ok(f"/secrets?name={q(json_secret)}").decode() == json_value
        assert ok(f"/secrets?name={q(binary_secret)}") == binary_value
        assert json.loads(ok("/dynamodb?name=scan-item"))["Secret"] == item_value
        assert ok(f"/parameters?name={q(secure)}", method="HEAD") == b""
        parameter = json.loads(ok(f"/systemsmanager/parameters/get?name={q(secure)}&withDecryption=true"))
        assert parameter["Parameter"]["Value"] == secure_value
        assert json.loads(ok(f"/secretsmanager/get?secretId={q(binary_secret)}"))["SecretBinary"]
        previous = json.loads(ok(f"/secretsmanager/get?secretId={q(rotated)}&versionStage=AWSPREVIOUS"))
        assert previous["SecretString"] == old_value
        assert ok(f"/secrets?name={q(allowed)}").decode() == allowed_value  # on demand
        ok("/stats")
        ok("/health", token=None)

        # Error paths: each answer is an error, and none carries a value.
        errors = [
            ext.request(f"/systemsmanager/parameters/get?name={q(secure)}"),  # DecryptionRequired
            ext.request(f"/secrets?name={q(tag + '/missing')}"),               # configured, not upstream
            ext.request(f"/secrets?name={q(tag + '/allowed/absent')}"),        # allowed, not upstream
            ext.request(f"/secrets?name={q(tag + '/other')}"),                 # NotConfigured
            ext.request(f"/secrets?name={q(json_secret)}", token="wrong"),
            ext.request(f"/secrets?name={q(json_secret)}", headers={"X-Forwarded-For": "127.0.0.1"}),
            ext.request(f"/secretsmanager/get?secretId={q(rotated)}&versionStage=NOPE"),
        ]
        assert all(400 <= reply.status < 500 for reply in errors), [reply.status for reply in errors]

        # Forced refreshes, INVOKE events (refresh-ahead, EMF).
        ok(f"/refresh?name={q(secure)}", method="POST")
        ok(f"/refresh?name={q(rotated)}", method="POST")
        ok("/refresh?all=true", method="POST")
        ext.emulator.invoke()
        ext.emulator.invoke()

        # AWS fails: expired values are served stale, reads with nothing cached fail, forced refreshes fail.
        for operation in ("AmazonSSM.GetParameters", "secretsmanager.GetSecretValue",
                          "secretsmanager.BatchGetSecretValue", "DynamoDB_20120810.BatchGetItem"):
            moto.fail(operation, status=500, code="InternalServerError")
        try:
            stale = poll(lambda: (r := ext.read("parameters", stale_param)).headers.get("x-cache") == "stale" and r)
            assert stale.text == stale_value
            stale = poll(lambda: (r := ext.read("secrets", f"{tag}/stale-binary")).headers.get("x-cache") == "stale" and r)
            assert stale.body == binary_value
            poll(lambda: ext.output.count("serving the stale value") >= 2)
            assert ext.read("secrets", f"{tag}/allowed/another").status == 502
            # A forced refresh within a second of the last one is coalesced (answered without a call): poll.
            for name in (stale_param, f"{tag}/stale-binary"):
                failed = poll(lambda: (r := ext.request(f"/refresh?name={q(name)}", method="POST")).status >= 500 and r,
                              interval=0.4)
                assert json.loads(failed.body)["error"] == "InternalServerError"
            ext.emulator.invoke()
            moto.fail("secretsmanager.GetSecretValue", status=400, code="AccessDeniedException")
            assert ext.read("secrets", f"{tag}/allowed/third").status == 502
        finally:
            moto.clear_faults()
        assert ext.emulator.shutdown()["cache-extension"] is not None
    finally:
        close_and_check(ext)

    output = ext.output
    assert "fetched secrets" in output and "serving the stale value" in output and "InternalServerError" in output
    assert '"_aws"' in output  # the EMF lines were written
    if log_format == "JSON":
        assert all(line.startswith("{") for line in output.splitlines() if line.strip())
    # This test's own secrets (and its token), whatever other tests registered; a variable, because an
    # assertion on the call itself would print the output.
    leaks = secret_leaks(output, ext.token, values, {binary_value})
    assert not leaks, "a secret reached the extension's output"
