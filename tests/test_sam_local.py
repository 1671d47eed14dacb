"""The `sam local invoke` tier (issue 17): scripts/sam-local-check run whole, once for the module, then its report
checked, and the machine checked for anything it left (process, bridge, iptables rule or chain, ip_forward).

It needs Linux and root (a private dockerd, its own bridge): elsewhere it skips and says why, and with CI=true a
skip is a failure. Cold (no cached root, image or wheels) the run takes about 3 minutes, warm about 75 s.
The pure checks the script applies to SAM's output are tested here too, on any machine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, skip_or_fail
from local_lambda import docker_engine, sam_local

SCRIPT = ROOT / "scripts" / "sam-local-check"
RUN_TIMEOUT = 1800  # seconds: a cold run on a slow machine; the script's own --deadline is shorter
EXPECTED_LINE = "INFO [cache-extension] prefetched 4 items in 500 ms (0 failed, 0 still in flight)"


def run_check(tmp_path: Path, *args: str, timeout: float = RUN_TIMEOUT) -> tuple[int, str, str, dict]:
    """scripts/sam-local-check with --report; on timeout SIGTERM (the script cleans up), then SIGKILL."""
    report = tmp_path / "report.json"
    process = subprocess.Popen([str(SCRIPT), "--report", str(report), *args], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate(timeout=30)
        pytest.fail(f"sam-local-check ran past {timeout} s:\n{stderr[-4000:]}")
    return process.returncode, stdout, stderr, json.loads(report.read_text()) if report.exists() else {}


def machine_leftovers(ip_forward_before: str) -> list[str]:
    """Independently of the script's own report: what a run could leave on this machine."""
    found = []
    if docker_engine.bridge_exists():
        found.append(f"bridge {docker_engine.BRIDGE}")
    found += docker_engine.iptables_docker_rules()
    if docker_engine.IP_FORWARD.read_text().strip() != ip_forward_before:
        found.append("ip_forward changed")
    state = str(sam_local.STATE)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if state in cmdline or ("/sam-local-" in cmdline and "docker" in cmdline):
                found.append(f"process {entry.name}: {cmdline[:200]}")
    # SAM's build lock: in the system's temporary directory it would block the next invoke for 5 minutes
    found += [f"SAM lock {lock}" for lock in Path(tempfile.gettempdir()).glob("samcli_*.building.*")]
    mounts = Path("/proc/self/mountinfo").read_text()
    if state in mounts:
        found.append("a mount under " + state)
    return found


@pytest.fixture(scope="module")
def tier():
    reason = sam_local.unavailable_reason()
    if reason is not None:
        skip_or_fail(f"the sam local tier cannot run here: {reason}")


@pytest.fixture(scope="module")
def check_run(tier, tmp_path_factory):
    """One whole run: (exit code, stdout, stderr, report, ip_forward before, seconds)."""
    before = docker_engine.IP_FORWARD.read_text().strip()
    started = time.monotonic()
    code, stdout, stderr, report = run_check(tmp_path_factory.mktemp("sam-local"))
    seconds = time.monotonic() - started
    print(f"sam-local-check: {seconds:.0f} s, steps {report.get('steps')}, disk {report.get('disk')}")
    return code, stdout, stderr, report, before


def test_the_check_passes(check_run):
    code, stdout, stderr, report, _ = check_run
    assert code == 0, f"sam-local-check exited {code}:\n{stderr[-8000:]}"
    assert report["left_behind"] == [] and "failure" not in report


def test_sam_local_invoke_with_shutdown_answers_the_sample(check_run):
    *_, report, _ = check_run
    invoke = next(i for i in report["invokes"] if i["command"].endswith("--shutdown"))
    assert invoke["response"]["parameter"] == "MyParameter"
    assert invoke["response"]["item"]["Data"] == "DynamoDB sample data"
    log = invoke["extension_log"]
    assert any("prefetched 4 items" in line and "(0 failed" in line for line in log), log
    assert any(line.startswith("INFO [cache-extension] shutdown (") for line in log), log  # --shutdown: SHUTDOWN seen


def test_without_shutdown_the_extension_stays_quiet(check_run):
    """SAM removes the container right after the response: at most one DEBUG line, no ERROR (issue 17)."""
    *_, report, _ = check_run
    invoke = next(i for i in report["invokes"] if i["command"] == "sam local invoke")
    assert invoke["response"]["parameter"] == "MyParameter"
    assert not [line for line in invoke["extension_log"] if line.startswith(("ERROR", "WARNING"))]
    assert len(invoke["api_went_away_lines"]) <= 1


def test_the_dockerfile_builds_and_its_image_answers_through_rie(check_run):
    *_, report, _ = check_run
    result = report["dockerfile_invoke"]
    assert result["status"] == 200 and json.loads(result["response"])["parameter"] == "MyParameter"
    assert any("prefetched 4 items" in line for line in result["extension_log"])


def test_the_nodejs_example_runs_on_the_standalone_layer(check_run):
    """nodejs24.x's stand-in has no python3: only the standalone layer's extension can serve it."""
    *_, report, _ = check_run
    invoke = next(i for i in report["invokes"] if "NodejsExampleFunction" in i["command"])
    assert invoke["response"]["parameter"] == "MyParameter"
    assert invoke["response"]["item"]["Data"] == "DynamoDB sample data"
    assert any("prefetched 4 items" in line and "(0 failed" in line for line in invoke["extension_log"])


def test_no_secret_in_the_output(check_run):
    _, stdout, stderr, report, _ = check_run
    assert "MySecret" not in stdout + stderr + json.dumps(report)


def test_nothing_left_on_the_machine(check_run):
    *_, before = check_run
    assert machine_leftovers(before) == []


def test_a_run_stopped_midway_cleans_up(check_run, tmp_path):
    """--deadline cuts the run short (dockerd up, SAM at work): it fails, says why, and still leaves nothing. It
    starts with the bridge a killed run would leave (no dockerd using it), which it deletes and goes on."""
    *_, before = check_run
    subprocess.run(["ip", "link", "add", docker_engine.BRIDGE, "type", "bridge"], check=True, timeout=10)
    code, _, stderr, report = run_check(tmp_path, "--deadline", "12", "--no-dockerfile", "--no-nodejs", timeout=300)
    assert code == 1 and "past --deadline 12" in stderr, stderr[-3000:]
    assert f"deleting bridge {docker_engine.BRIDGE}, left by a run that was killed" in stderr
    assert "dockerd" in report["steps"], report
    assert report["left_behind"] == []
    assert machine_leftovers(before) == []


# --- the checks applied to SAM's output, on any machine --------------------------------------------------------

GOOD_BODY = json.dumps({"parameter": "MyParameter", **{k: v for k, v in sam_local.EXPECTED.items() if k != "parameter"},
                        "item": {"pKey": "pKey1", "sKey": "sKey1", "Data": "DynamoDB sample data"}})
GOOD_LOG = f"{EXPECTED_LINE}\nINFO [cache-extension] ready on 127.0.0.1:4000 in 510 ms (on-demand)\n"


def test_check_response_accepts_the_sample_and_refuses_others():
    assert sam_local.check_response("x", "START\n" + GOOD_BODY + "\n", "")["parameter"] == "MyParameter"
    for bad in ("", "not json", json.dumps({"parameter": "other"}), GOOD_BODY.replace("MyParameter", "Other")):
        with pytest.raises(sam_local.CheckFailed):
            sam_local.check_response("x", bad, "")


def test_check_logs_refuses_errors_and_a_missing_prefetch():
    assert len(sam_local.check_logs("x", GOOD_LOG, shutdown=False)) == 2
    lost = "ERROR [cache-extension] lost the Extensions API: GET /event/next failed: ValueError: closed\n"
    for bad, shutdown in ((GOOD_LOG + lost, False), (GOOD_LOG.replace("(0 failed", "(1 failed"), False),
                          (GOOD_LOG, True)):
        with pytest.raises(sam_local.CheckFailed):
            sam_local.check_logs("x", bad, shutdown=shutdown)
    assert sam_local.check_logs("x", GOOD_LOG + "INFO [cache-extension] shutdown (SandboxTerminated)\n", shutdown=True)


def test_check_no_secret_refuses_the_value():
    sam_local.check_no_secret("nothing here")
    with pytest.raises(sam_local.CheckFailed) as caught:
        sam_local.check_no_secret("a line with MySecret in it")
    assert "MySecret" not in str(caught.value)


def test_help():
    result = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0 and "--no-dockerfile" in result.stdout and "--no-nodejs" in result.stdout
    assert "--deadline" in result.stdout
