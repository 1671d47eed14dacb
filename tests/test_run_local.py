"""scripts/run-local end to end: each example function invoked as Lambda would, from the session's built layer.

run-local starts its own moto server and Lambda emulator on free loopback ports (--port 0 for the extension),
so these runs can go in parallel with the rest of the suite.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from local_lambda.aws import SAMPLE_PARAMETER, SAMPLE_SECRET

RUN_TIMEOUT = 90  # a hard bound; a run takes about 5 to 10 s
NEEDS = {"python": [], "nodejs": ["node"], "java": ["java", "javac"]}

SECRET_SUMMARY = {
    "length": len(SAMPLE_SECRET[1].encode()),
    "sha256": hashlib.sha256(SAMPLE_SECRET[1].encode()).hexdigest(),
}
EXPECTED = {
    "parameter": SAMPLE_PARAMETER[1],
    "secretFromReference": SECRET_SUMMARY,
    "secret": SECRET_SUMMARY,
    "item": {
        "pKey": "pKey1",
        "sKey": "sKey1",
        "Data": "DynamoDB sample data",
        "Count": 42,
        "Enabled": True,
        "Tags": ["cache", "example"],
        "Settings": {"ttlSeconds": 300, "mode": "refresh-ahead"},
    },
}
DURATION = r"\d+\.\d\d ms"


def shell_env(**settings: str) -> dict[str, str]:
    """The test's environment as a user's shell, without the extension's settings unless given here:
    run-local passes CACHE_EXTENSION_* and AWS_LAMBDA_LOG_FORMAT from the shell through to the extension."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHE_EXTENSION_") and k != "AWS_LAMBDA_LOG_FORMAT"}
    return {**env, **settings}


def run_local(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_lambda.run_local", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=shell_env() if env is None else env,
    )


def invocations(section: str) -> list[tuple[str, str]]:
    """(kind, rest of the line) for each invocation line of one function's section."""
    return re.findall(r"^  (cold|warm)  (.*)$", section, flags=re.MULTILINE)


def cold_response(line: str) -> dict:
    return json.loads(line[line.index("{"):])


@pytest.mark.parametrize("function", ["python", "nodejs", "java"])
def test_run_local_invokes_the_example_function(function: str, layer_dir: Path) -> None:
    missing = [tool for tool in NEEDS[function] if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH")
    if function == "java" and not (layer_dir / "java" / "lib" / "cache-extension-client.jar").exists():
        pytest.skip("the layer was built without the Java client")

    result = run_local("--once", "--layer", str(layer_dir), "--port", "0", "--function", function, "--warm", "3")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert SAMPLE_SECRET[1] not in output, "a secret value appeared in run-local's output"

    assert re.search(rf"INIT: extension start -> register {DURATION}", output), output
    cached = output.split("with the cache extension:", 1)[1].split("\n\n", 1)[0]
    lines = invocations(cached)
    assert [kind for kind, _ in lines] == ["cold", "warm", "warm", "warm"], output
    cold = lines[0][1]
    assert re.match(rf"Init Duration +{DURATION} +Duration +{DURATION}", cold), cold
    assert cold_response(cold) == EXPECTED
    for _, warm in lines[1:]:
        assert re.match(rf"Duration +{DURATION} +\(the same response\)", warm.strip()), warm
    assert "AWS calls during these 4 invokes: 0" in cached  # all served from the extension's cache
    assert re.search(rf"SHUTDOWN -> exit: cache-extension {DURATION}", output), output

    if function != "python":
        assert "direct boto3" not in output
        return
    direct = output.split("reading AWS directly with boto3 (direct.handler), no extension:", 1)[1].split("\n\n", 1)[0]
    lines = invocations(direct)
    assert [kind for kind, _ in lines] == ["cold", "warm", "warm", "warm"], output
    assert cold_response(lines[0][1]) == EXPECTED
    assert "AWS calls during these 4 invokes: 16 (4 per invoke)" in direct
    # Both durations, side by side: cold (Init Duration + Duration) and warm p50.
    assert re.search(rf"with the cache extension +{DURATION} \+ {DURATION} +{DURATION}", output), output
    assert re.search(rf"direct boto3, no extension +{DURATION} \+ {DURATION} +{DURATION}", output), output
    assert "same response from both" in output


def test_run_local_help_and_bad_event(tmp_path: Path) -> None:
    result = run_local("--help")
    assert result.returncode == 0
    for option in ("--function", "--event", "--once", "--port", "--config", "--no-build", "--layer"):
        assert option in result.stdout

    bad = tmp_path / "event.json"
    bad.write_text("{not json")
    result = run_local("--once", "--event", str(bad), "--layer", str(tmp_path))
    assert result.returncode == 2 and "--event" in result.stderr


def test_run_local_passes_the_shells_extension_settings_through(layer_dir: Path) -> None:
    # An invalid setting from the shell reaches the extension, which refuses it naming the variable.
    result = run_local("--once", "--layer", str(layer_dir), "--port", "0", "--warm", "0",
                       env=shell_env(CACHE_EXTENSION_TTL="abc"))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "INIT failed" in output and "CACHE_EXTENSION_TTL" in output, output
    assert "from the shell: CACHE_EXTENSION_TTL" in output, output

    # Valid ones take effect: JSON log lines from the extension, and the run still succeeds.
    result = run_local("--once", "--layer", str(layer_dir), "--port", "0", "--warm", "0",
                       env=shell_env(AWS_LAMBDA_LOG_FORMAT="JSON", CACHE_EXTENSION_TTL="90s"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r'^\[cache-extension\] \{.*"level"', output, flags=re.MULTILINE), output
    assert "CACHE_EXTENSION_TTL" in output and "AWS_LAMBDA_LOG_FORMAT" in output

    help_text = run_local("--help").stdout
    assert "CACHE_EXTENSION_" in help_text and "AWS_LAMBDA_LOG_FORMAT" in help_text


def test_run_local_points_to_port_when_it_is_taken(layer_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_local("--once", "--layer", str(layer_dir), "--port", str(port), "--warm", "0")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"port {port} is taken" in output and "--port" in output, output


def child_pids(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_run_local_says_when_the_extension_exited_on_its_own(layer_dir: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local_lambda.run_local", "--layer", str(layer_dir), "--port", "0", "--warm", "0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=shell_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        lines = []
        for line in process.stdout:  # bounded: the finally kills the run at worst
            lines.append(line)
            if "until Ctrl-C" in line or time.monotonic() > deadline:
                break
        assert any("until Ctrl-C" in line for line in lines), "".join(lines)
        extension = [pid for pid in child_pids(process.pid)
                     if "cache-extension" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")]
        assert len(extension) == 1, extension
        os.kill(extension[0], signal.SIGKILL)  # run-local did not ask it to: it exited on its own
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    output = "".join(lines) + rest
    assert process.returncode == 1, output
    assert "the extension exited on its own" in output and "signal 9" in output, output
