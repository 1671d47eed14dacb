"""The built layer under AWS's Runtime Interface Emulator (aws-lambda-rie), Lambda's own runtime core.

RIE runs in a private mount namespace with the layer at /opt and a function directory at /var/task
(scripts/local_lambda/rie.py); the function is the Python example (function-example/python/app.py) under
AWS's runtime interface client, AWS is moto's server on loopback. Linux and root only: elsewhere these tests
skip, except with CI=true, where a skip would hide a broken tier and fails instead.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import re
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import REGION, ROOT, SAMPLE_CONFIG, SECRET_VALUES, secret_leaks, skip_or_fail, unique
from local_lambda import rie
from local_lambda.aws import SAMPLE_ITEM, SAMPLE_PARAMETER, SAMPLE_SECRET, free_port, lambda_environment

EXTENSION = "cache-extension"
HANDLER = "rie_function.handler"
# The example function plus what these tests need of it: one read during the function's INIT (module level),
# and a way to run past the function's timeout. app.py itself is unchanged.
RIE_FUNCTION = '''"""app.py with one read during INIT, and {"sleep": s} to run s seconds first."""
import time

import app
from cache_extension_client import CacheClient

# A read timeout for a loaded machine: the prefetch this read waits for can outlast the default 1 s when the
# suite's workers share the CPU, and these tests are about the lifecycle, not latency.
INIT_PARAMETER = CacheClient(timeout=10.0).get_parameter("CacheExtensions_Parameter1")


def handler(event, context):
    if "sleep" in event:
        time.sleep(float(event["sleep"]))
    return {**app.handler(event, context), "initParameter": INIT_PARAMETER}
'''


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


EXPECTED = {
    "parameter": SAMPLE_PARAMETER[1],
    "initParameter": SAMPLE_PARAMETER[1],
    "secret": {"length": len(SAMPLE_SECRET[1].encode()), "sha256": sha256(SAMPLE_SECRET[1])},
    "secretFromReference": {"length": len(SAMPLE_SECRET[1].encode()), "sha256": sha256(SAMPLE_SECRET[1])},
}


def assert_sample_values(invocation: rie.Invocation, output: str) -> None:
    assert invocation.status == 200, f"invoke answered {invocation.status}; RIE's output:\n{output[-6000:]}"
    try:
        body = invocation.json()
    except ValueError:
        pytest.fail(f"the invoke's answer is not JSON: {invocation.body[:300]!r}; RIE's output:\n{output[-6000:]}")
    assert isinstance(body, dict) and "item" in body, f"unexpected answer {body!r}; RIE's output:\n{output[-6000:]}"
    assert {key: body.get(key) for key in EXPECTED} == EXPECTED
    assert set(body["item"]) == set(SAMPLE_ITEM) and body["item"]["Data"] == SAMPLE_ITEM["Data"]["S"]


@pytest.fixture(scope="session")
def rie_binary() -> Path:
    """The pinned RIE, installed if missing; skips (fails with CI=true) where it cannot run."""
    reason = rie.unavailable_reason()
    if reason is None:
        try:
            return rie.install(log=lambda *_: None)
        except (rie.RieUnavailable, OSError) as exc:
            reason = str(exc)
    skip_or_fail(f"the RIE tier cannot run here: {reason}")


class Run:
    """One RIE environment of a test, with what it needs to check its output."""

    def __init__(self, environment: rie.RieEnvironment, token: str, port: int) -> None:
        self.rie, self.token, self.port = environment, token, port

    def read(self, source: str, name: str) -> tuple[int, str | None, str]:
        """GET /<source>?name=... from the extension's port, with the token: (status, X-Cache, body)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", f"/{source}?name={quote(name, safe='')}",
                               headers={"X-Aws-Parameters-Secrets-Token": self.token})
            response = connection.getresponse()
            return response.status, response.getheader("X-Cache"), response.read().decode()
        finally:
            connection.close()


@pytest.fixture
def start_rie(rie_binary, python_layer_dir, moto, tmp_path):
    """start_rie(config_text=SAMPLE_CONFIG, env={...}, max_concurrency=None, log_level="info") -> Run, RIE
    started. Every run is stopped at teardown (its whole namespace killed) and its output checked for secrets."""
    runs: list[Run] = []

    def start(config_text: str = SAMPLE_CONFIG, *, env: dict[str, str] | None = None,
              max_concurrency: int | None = None, log_level: str = "info") -> Run:
        task = tmp_path / f"task{len(runs)}"
        task.mkdir()
        shutil.copy2(ROOT / "function-example" / "python" / "app.py", task / "app.py")
        (task / "rie_function.py").write_text(RIE_FUNCTION)
        (task / "config.yaml").write_text(config_text)
        task.chmod(0o755)  # Managed Instances mode runs the processes as uid 993
        token = f"rie-token-{uuid.uuid4().hex}"
        port = free_port()  # the extension binds it a moment later: a rare collision fails INIT, loudly
        command, runtime_env, binds, files = rie.python_runtime(HANDLER)
        # The function's environment, which RIE passes on (filtered). No task root: the extension finds its
        # config at its default place, /var/task/config.yaml, and RIE gives the runtime LAMBDA_TASK_ROOT itself.
        environment = lambda_environment(endpoint=moto.endpoint, region=REGION, token=token,
                                         extra={**runtime_env, "CACHE_EXTENSION_PORT": str(port), **(env or {})})
        if max_concurrency is not None:
            environment.pop("AWS_LAMBDA_INITIALIZATION_TYPE")  # RIE sets its own in this mode
        run = Run(rie.RieEnvironment(python_layer_dir, task, command, environment, binds=binds, files=files,
                                     max_concurrency=max_concurrency, binary=rie_binary, log_level=log_level),
                  token, port)
        runs.append(run)
        run.rie.start()
        return run

    yield start
    stop_and_check(runs)


def stop_and_check(runs: list[Run]) -> None:
    """Stop every RIE environment, then fail if any one's output carried the token or a secret."""
    for run in runs:
        run.rie.stop()
    for run in runs:
        leaks = secret_leaks(run.rie.output, run.token)
        if leaks:  # the kinds only, never the values
            pytest.fail(f"RIE's output carried {', '.join(leaks)}", pytrace=False)


def extension_pids(run: Run) -> set[int]:
    return run.rie.pids_of(EXTENSION)


# --- classic mode --------------------------------------------------------------------------------


def test_classic_invoke_returns_the_sample_values(start_rie):
    run = start_rie()
    first = run.rie.invoke({}, timeout=30)
    assert_sample_values(first, run.rie.output)
    # RIE's REPORT line has an "Init Duration" too, but it times the call that starts INIT (~0.03 ms), not INIT.
    init = run.rie.wait_for(r"INIT REPORT\(durationMs: ([\d.]+)\)", timeout=5)
    print(f"\nRIE classic mode: INIT REPORT durationMs {float(init.group(1)):.1f} "
          f"(first invoke answered in {first.seconds * 1000:.0f} ms)")
    assert re.search(rf"ready on 127\.0\.0\.1:{run.port}", run.rie.output), run.rie.tail()
    run.rie.wait_for(r"REPORT RequestId: [^\n]*\n", timeout=5)  # the first's REPORT can print after its answer
    lines = run.rie.line_count()
    second = run.rie.invoke({}, timeout=30)
    assert_sample_values(second, run.rie.output)
    report = run.rie.wait_for(r"REPORT RequestId: [^\n]*\n", timeout=5, start=lines)
    assert "Init Duration" not in report.group(0), "a warm invoke ran INIT again"
    assert len(extension_pids(run)) == 1


def test_classic_timeout_resets_the_environment_and_the_next_invoke_inits_again(start_rie):
    run = start_rie(env={"AWS_LAMBDA_FUNCTION_TIMEOUT": "2"})  # whole seconds: RIE parses it as an integer
    assert_sample_values(run.rie.invoke({}, timeout=30), run.rie.output)
    first_extension = extension_pids(run)
    assert len(first_extension) == 1, run.rie.processes()
    timed_out = run.rie.invoke({"sleep": 4}, timeout=30)
    assert (timed_out.status, timed_out.body) == (200, b"Task timed out after 2.00 seconds"), run.rie.tail()
    run.rie.wait_for(r"shutdown \(Timeout\)", timeout=3)
    assert run.rie.wait_gone(first_extension, timeout=3) is not None, "RIE did not end the extension after the timeout"
    again = run.rie.invoke({}, timeout=30)
    assert_sample_values(again, run.rie.output)
    assert run.rie.output.count("INIT START") == 2, run.rie.tail()
    assert len(re.findall(rf"ready on 127\.0\.0\.1:{run.port}", run.rie.output)) == 2
    assert extension_pids(run) and not extension_pids(run) & first_extension


def test_sigterm_ends_rie_and_the_extension_within_two_seconds(start_rie):
    run = start_rie()
    assert_sample_values(run.rie.invoke({}, timeout=30), run.rie.output)
    extension = extension_pids(run)
    assert len(extension) == 1, run.rie.processes()
    run.rie.terminate()
    gone = run.rie.wait_gone(extension, timeout=2.0)
    code = run.rie.wait_exit(max(0.0, 2.0 - (time.monotonic() - run.rie.sigterm_at)))
    exited = time.monotonic() - run.rie.sigterm_at
    assert gone is not None, f"the extension still running 2 s after SIGTERM:\n{run.rie.tail()}"
    assert code is not None, f"RIE still running 2 s after SIGTERM:\n{run.rie.tail()}"
    assert "shutdown (SandboxTerminated)" in run.rie.output, run.rie.tail()
    print(f"\nRIE classic mode: after SIGTERM the extension was gone in {gone * 1000:.0f} ms, RIE exited ({code}) "
          f"within {exited * 1000:.0f} ms")
    assert gone <= 1.0, f"the extension took {gone:.2f} s to exit after SHUTDOWN (RIE kills it at 2 s)"


# --- Lambda Managed Instances mode ---------------------------------------------------------------


def ssm_reads(moto) -> int:
    return sum(count for op, count in moto.call_counts().items() if op.startswith("AmazonSSM.Get"))



def test_managed_instances_concurrent_invokes_and_timer_refresh(start_rie, moto):
    name = unique("rie-mi-parameter")
    ssm = moto.client("ssm", REGION)
    first, second = unique("first-value"), unique("second-value")
    SECRET_VALUES.update({first, second})  # any value may be a secret: none may reach a log
    ssm.put_parameter(Name=name, Value=first, Type="String", Overwrite=True)
    config = SAMPLE_CONFIG.replace("      - CacheExtensions_Parameter1\n",
                                   f"      - CacheExtensions_Parameter1\n      - {name}\n", 1)
    assert name in config
    moto.reset_calls()
    started = time.monotonic()
    run = start_rie(config, env={"CACHE_EXTENSION_TTL": "2s"}, max_concurrency=8, log_level="debug")
    # INIT starts with RIE in this mode. RIE queues nothing: with every runtime busy (8 here) an invoke is
    # refused at once (400 Runtime.Unavailable); each of the 16 callers sends it again then, within a bound.
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: run.rie.invoke({}, timeout=30, retry_unavailable=20), range(16)))
    init = re.search(r"INIT REPORT\(initType: lambda-managed-instances, durationMs: ([\d.]+)", run.rie.output)
    print(f"\nRIE Managed Instances mode: INIT REPORT durationMs {init.group(1) if init else '(not reported)'}; "
          f"16 concurrent invokes answered {(time.monotonic() - started) * 1000:.0f} ms after RIE's start, "
          f"{run.rie.refused} refusals (Runtime.Unavailable) sent again")
    for result in results:
        assert_sample_values(result, run.rie.output)
    assert len(extension_pids(run)) == 1, run.rie.processes()
    assert run.read("parameters", name) == (200, "hit", first)
    burst_calls = ssm_reads(moto)

    ssm.put_parameter(Name=name, Value=second, Type="String", Overwrite=True)
    changed = time.monotonic()
    bound = 2.0 + 1.0 + 0.5  # TTL + 1 s, and a margin for the poll itself
    served = None
    while time.monotonic() - changed < bound:  # no invoke meanwhile: the extension refreshes on its own timer
        if run.read("parameters", name) == (200, "hit", second):
            served = time.monotonic() - changed
            break
        time.sleep(0.05)
    calls = {op: count for op, count in moto.call_counts().items() if op.startswith("AmazonSSM.Get")}
    print(f"RIE Managed Instances mode: new value served as a hit {served and f'{served * 1000:.0f} ms'} after the "
          f"change (bound {bound} s); SSM calls: {burst_calls} until the burst was answered, {calls} in all")
    assert served is not None, f"the new value was not served within {bound} s of the change:\n{run.rie.tail()}"
    assert burst_calls <= 4, f"16 invokes reading 3 values each made {burst_calls} SSM calls: {moto.call_counts()}"
    rounds = 1 + (time.monotonic() - started) / 2.0  # the prefetch, then at most one refresh per TTL...
    assert sum(calls.values()) <= 4 * rounds, f"a refresh storm: {calls} in {rounds - 1:.1f} TTLs"  # ...of <= 4 calls

    extension = extension_pids(run)
    run.rie.terminate()
    gone = run.rie.wait_gone(extension, timeout=2.0)
    assert gone is not None, f"the extension still running 2 s after SIGTERM:\n{run.rie.tail()}"
    print(f"RIE Managed Instances mode: the extension exited {gone * 1000:.0f} ms after RIE's SIGTERM")
    assert re.search(r"shutdown \(spindown\)", run.rie.output), run.rie.tail()
    assert gone <= 1.0, f"the extension took {gone:.2f} s to exit after SHUTDOWN"
    assert run.rie.wait_exit(3.0) is not None


# --- what RIE shows an extension: the probe (scripts/local_lambda/probe_extension.py) -------------
# The facts the project's own emulator is kept in agreement with (where they differ, RIE is right).

RUNTIME_ONLY = {"LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "_HANDLER", "AWS_EXECUTION_ENV"}


def kinds(records: list[dict], kind: str) -> list[dict]:
    return [record for record in records if record["kind"] == kind]


def test_probe_classic_mode_invoke_timeout_and_sigterm(rie_binary, tmp_path):
    records = rie.observe(tmp_path, timeout_s=2, invokes=({}, {"sleep": 3}, {}), env={"PROBE_REGISTER_TWICE": "1"})
    starts, events = kinds(records, "start"), kinds(records, "event")
    registers = [r for r in kinds(records, "register") if not r.get("again")]
    agains = [r for r in kinds(records, "register") if r.get("again")]  # the extension carries on after it
    assert [(r["status"], r["body"]["errorType"]) for r in agains] == [(403, "Extension.InvalidExtensionState")] * 2
    assert len(starts) == len(registers) == 2, records  # the timeout reset the environment: the last invoke INITs
    for start in starts:
        assert {"AWS_LAMBDA_RUNTIME_API", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN",
                "AWS_LAMBDA_FUNCTION_NAME", "PROBE_OUTPUT"} <= set(start["env_names"])
        assert not set(start["env_names"]) & (RUNTIME_ONLY | {"AWS_LAMBDA_MAX_CONCURRENCY"}), start["env_names"]
        assert "AWS_LAMBDA_INITIALIZATION_TYPE" not in start["env_values"]  # classic RIE does not set it
    for register in registers:
        assert register["status"] == 200 and register["headers"].get("Lambda-Extension-Identifier")
        assert register["body"] == {"functionName": "test_function", "functionVersion": "$LATEST", "handler": ""}
    invokes = [e for e in events if e["body"]["eventType"] == "INVOKE"]
    shutdowns = [e for e in events if e["body"]["eventType"] == "SHUTDOWN"]
    assert len(invokes) == 3 and len(shutdowns) == 2, records
    for event in invokes:
        assert event["headers"]["Content-Type"] == "application/json"
        assert event["headers"].get("Lambda-Extension-Event-Identifier")
        assert set(event["body"]) == {"eventType", "deadlineMs", "requestId", "invokedFunctionArn"}  # no trace id
    assert [e["body"]["shutdownReason"] for e in shutdowns] == ["Timeout", "SandboxTerminated"]
    for event in shutdowns:
        assert event["headers"]["Content-Type"] == "text/plain; charset=utf-8"
        assert "Lambda-Extension-Event-Identifier" not in event["headers"]
        assert abs(event["body"]["deadlineMs"] / 1000 - event["time"] - 2.0) < 0.5  # now + 2 s
    answers = [(i["status"], i["body"]) for i in kinds(records, "invoke")]
    assert answers == [(200, '{"ok": true}'), (200, "Task timed out after 2.00 seconds"), (200, '{"ok": true}')]
    assert [e["code"] for e in kinds(records, "exit")] == [0, 0]


def test_probe_managed_instances_mode(rie_binary, tmp_path):
    records = rie.observe(tmp_path / "shutdown-only", mode="managed-instances", events="SHUTDOWN", timeout_s=2,
                          invokes=({}, {"sleep": 3}, {}))
    (start,), (register,) = kinds(records, "start"), kinds(records, "register")
    assert start["env_values"]["AWS_LAMBDA_INITIALIZATION_TYPE"] == "lambda-managed-instances"
    assert not set(start["env_names"]) & RUNTIME_ONLY, start["env_names"]
    assert register["status"] == 200
    assert register["body"] == {"functionName": "test_function", "functionVersion": "$LATEST",
                                "handler": "probe_function.handler"}
    # A timeout is that invoke's error alone: no SHUTDOWN, no reset, the same extension serves on.
    assert [(i["status"], i["body"]) for i in kinds(records, "invoke")] == [
        (200, '{"ok": true}'),
        (200, '{"errorType":"Sandbox.Timedout","errorMessage":"Task timed out after 2.00 seconds"}'),
        (200, '{"ok": true}')]
    (event,) = kinds(records, "event")  # no INVOKE events in this mode, and one SHUTDOWN: at the SIGTERM
    assert event["body"]["eventType"] == "SHUTDOWN" and event["body"]["shutdownReason"] == "spindown"
    assert event["headers"]["Content-Type"] == "text/plain; charset=utf-8"
    assert kinds(records, "rie_exit")[0]["code"] == 0

    records = rie.observe(tmp_path / "invoke", mode="managed-instances", events="INVOKE,SHUTDOWN", invokes=({},))
    (register,) = kinds(records, "register")
    assert register["status"] == 403
    assert register["body"] == {"errorMessage": "INVOKE: ErrorInvalidEventType",
                                "errorType": "Extension.InvalidEventType"}
    # INIT failed (Extension.Crash): RIE exits by itself, answering an invoke that comes first with the error
    assert all((i["status"], i["body"]) == (200, '{"errorType":"Extension.Crash"}') for i in kinds(records, "invoke"))
    assert not kinds(records, "sigterm") and kinds(records, "rie_exit")[0]["code"] == 1, records
