"""SnapStart, end to end: the extension from the built layer with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start,
no AWS_SESSION_TOKEN and no access keys (credentials from a local container credentials endpoint that
demands its authorization token, as Lambda's is), then a simulated restore days later.

The restore: SnapStart restores the process's memory with a monotonic clock that did not count the gap,
while the wall clock did. The extension runs under a small wrapper (tests/snapstart_wrapper.py, never in
the layer) that adds an offset, read from a file this test writes, to Python's time.time() before the
extension imports anything: the wall clock jumps, the monotonic one does not, as after a real restore.
"""

from __future__ import annotations

import os
import re
import stat
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import (REGION, SECRET_VALUES, RunningExtension, close_and_check, path_for, unique)
from local_lambda.aws import put_secret, lambda_environment
from local_lambda.credentials_endpoint import CredentialsEndpoint
from local_lambda.extensions_api import ExtensionsApiEmulator

WRAPPER = Path(__file__).with_name("snapstart_wrapper.py")
DAYS = 86400.0


@pytest.fixture
def snapstart(python_layer_dir, moto, tmp_path):
    """start(config_text, env=...) -> (RunningExtension, set_wall_offset(seconds))."""
    started: list[RunningExtension] = []
    endpoints: list[CredentialsEndpoint] = []

    def start(config_text: str, env: dict[str, str] | None = None):
        token = f"container-token-{uuid.uuid4().hex}"
        endpoint = CredentialsEndpoint(token)
        endpoints.append(endpoint)
        task = tmp_path / f"task{len(started)}"
        task.mkdir()
        (task / "config.yaml").write_text(config_text)
        offset_file = task / "wall-offset"
        offset_file.write_text("0")
        # The launcher Lambda would start, but through the wrapper: its file name is the extension's name.
        launcher = task / "extensions" / "cache-extension"
        launcher.parent.mkdir()
        launcher.write_text(f'#!/bin/sh\nexec python3 -E -S "{WRAPPER}" "{python_layer_dir}/cache-extension" '
                            f'"cache-extension"\n')
        launcher.chmod(launcher.stat().st_mode | stat.S_IXUSR)
        from conftest import free_port

        port = free_port()
        environment = lambda_environment(endpoint=moto.endpoint, region=REGION, token=token, task_root=str(task),
                                         extra={"PATH": path_for(python_layer_dir), "CACHE_EXTENSION_PORT": str(port),
                                                "CACHE_EXTENSION_CONFIG": str(task / "config.yaml"),
                                                "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
                                                "AWS_CONTAINER_CREDENTIALS_FULL_URI": endpoint.uri,
                                                "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
                                                "SNAPSTART_TEST_WALL_OFFSET_FILE": str(offset_file),
                                                **(env or {})})
        for name in ("AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            environment.pop(name)  # SnapStart has none of them
        emulator = ExtensionsApiEmulator(region=REGION).start()
        extension = emulator.launch(str(launcher), environment)
        handle = RunningExtension(emulator, extension, port, token, task / "config.yaml")
        started.append(handle)
        emulator.wait_init(timeout=20)

        def set_wall_offset(seconds: float) -> None:
            offset_file.write_text(repr(seconds))

        return handle, endpoint, set_wall_offset

    yield start
    for handle in started:
        close_and_check(handle)
    for endpoint in endpoints:
        endpoint.close()


def _config(parameter: str, secret: str) -> str:
    return (f"parameters:\n  - names: [{parameter}]\n    ttl: 5m\n    stale: 5m\n"
            f"secrets:\n  - names: [{secret}]\n    ttl: 5m\n    stale: 5m\n"
            "dynamodb:\n  - table: DynamoDbTable\n    hashkey: pKey\n    hashkeytype: S\n    hashkeyvalue: pKey1\n"
            "    sortkey: sKey\n    sortkeytype: S\n    sortkeyvalue: sKey1\n")


def _resources(moto):
    parameter, secret = unique("/snap/param"), unique("snap/secret")
    values = {"old": f"old-{uuid.uuid4().hex}", "new": f"new-{uuid.uuid4().hex}", "newer": f"newer-{uuid.uuid4().hex}"}
    SECRET_VALUES.update(values.values())
    ssm, secrets = moto.client("ssm", REGION), moto.client("secretsmanager", REGION)
    ssm.put_parameter(Name=parameter, Value=values["old"], Type="SecureString")
    put_secret(secrets, secret, values["old"])

    def change(key: str) -> None:
        ssm.put_parameter(Name=parameter, Value=values[key], Type="SecureString", Overwrite=True)
        put_secret(secrets, secret, values[key])

    return parameter, secret, values, change


def test_snapstart_without_a_session_token_reads_through_container_credentials(snapstart, moto):
    parameter, secret, values, _ = _resources(moto)
    handle, endpoint, _ = snapstart(_config(parameter, secret))
    assert endpoint.served >= 1  # botocore's default chain found the container endpoint and sent its token
    assert endpoint.refused == 0
    for source, name in (("parameters", parameter), ("secrets", secret)):
        reply = handle.read(source, name)
        assert (reply.status, reply.headers["x-cache"]) == (200, "hit")
        assert _same(reply.text, values["old"])
    # the HTTP API's token is the container authorization token here
    assert handle.request(f"/parameters?name={parameter}", token="wrong").status == 403


def test_a_restore_days_later_serves_nothing_from_the_snapshot_as_fresh(snapstart, moto):
    parameter, secret, values, change = _resources(moto)
    handle, _, set_wall_offset = snapstart(_config(parameter, secret))
    assert handle.read("parameters", parameter).headers["x-cache"] == "hit"
    change("new")

    # Restored 3 days later: the snapshot's values are past TTL (5m) and stale window (5m) by real time,
    # although the monotonic clock counted none of it. The first INVOKE refreshes every item.
    set_wall_offset(3 * DAYS)
    before = moto.call_counts()
    handle.emulator.invoke("after-restore-1")
    for source, name in (("parameters", parameter), ("secrets", secret)):
        reply = handle.read(source, name)
        assert reply.status == 200 and _same(reply.text, values["new"]), f"{source} served a value from the snapshot"
    after = moto.call_counts()
    assert after.get("AmazonSSM.GetParameters", 0) > before.get("AmazonSSM.GetParameters", 0)
    assert after.get("DynamoDB_20120810.BatchGetItem", 0) > before.get("DynamoDB_20120810.BatchGetItem", 0), \
        "the first INVOKE after a restore refreshes every item, the unchanged DynamoDB item too"
    gaps = [int(gap) for gap in re.findall(r"restored from a snapshot taken (\d+) s earlier", handle.output)]
    assert len(gaps) == 1 and abs(gaps[0] - 3 * DAYS) < 60, gaps

    # Restored again, a week on; this time a read races ahead of the INVOKE: judged by real time all the same.
    change("newer")
    set_wall_offset(10 * DAYS)
    for source, name in (("parameters", parameter), ("secrets", secret)):
        reply = handle.read(source, name)
        assert reply.status == 200 and _same(reply.text, values["newer"]), f"{source} served a pre-restore value"
        assert reply.headers["x-cache"] == "miss"
    handle.emulator.invoke("after-restore-2")
    gaps = [int(gap) for gap in re.findall(r"restored from a snapshot taken (\d+) s earlier", handle.output)]
    assert len(gaps) == 2 and abs(gaps[1] - 7 * DAYS) < 60, gaps  # the second gap alone
    assert _same(handle.read("parameters", parameter).text, values["newer"])


def _same(served: str, expected: str) -> bool:
    """Compared apart from the assertion, so that a failure never prints a secret."""
    return served == expected


def _memory_holds(pid: int, needle: bytes) -> bool:
    """Whether the process's writable memory holds `needle` (as root, through /proc/PID/mem)."""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            fields = line.split()
            if "w" not in fields[1]:
                continue
            start, end = (int(value, 16) for value in fields[0].split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, ValueError, OverflowError):
                continue
    return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/mem")
def test_snapshot_secrets_false_keeps_secrets_out_of_the_snapshot(snapstart, moto):
    parameter, secret, values, _ = _resources(moto)
    before = moto.call_counts()
    handle, _, _ = snapstart(_config(parameter, secret), env={"CACHE_EXTENSION_SNAPSHOT_SECRETS": "false"})
    after_init = moto.call_counts()
    # INIT (what the snapshot holds) fetched the DynamoDB item only: no SSM or Secrets Manager call, no value
    assert after_init.get("DynamoDB_20120810.BatchGetItem", 0) > before.get("DynamoDB_20120810.BatchGetItem", 0)
    for operation in ("AmazonSSM.GetParameters", "secretsmanager.BatchGetSecretValue", "secretsmanager.GetSecretValue"):
        assert after_init.get(operation, 0) == before.get(operation, 0), f"{operation} called during INIT"
    pid = handle.extension.process.pid
    if os.access(f"/proc/{pid}/mem", os.R_OK):
        assert not _memory_holds(pid, values["old"].encode()), "a secret is in the extension's memory after INIT"

    handle.emulator.invoke("first-after-restore")  # the first INVOKE fetches them
    deadline = time.monotonic() + 10
    while moto.call_counts().get("secretsmanager.BatchGetSecretValue", 0) == before.get(
            "secretsmanager.BatchGetSecretValue", 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    for source, name in (("parameters", parameter), ("secrets", secret)):
        reply = handle.read(source, name)
        assert reply.status == 200 and _same(reply.text, values["old"])
    if os.access(f"/proc/{pid}/mem", os.R_OK):
        assert _memory_holds(pid, values["old"].encode()), "the memory scan cannot see a value it holds"
