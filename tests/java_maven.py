"""The Java client's Maven build (layer/java/pom.xml) as the tests run it: offline when scripts/_venv.sh fetched its
plugins and test dependencies, everything Maven writes in a directory of the test's, and surefire's XML reports read
back as one outcome per test, so that a test can say which ran, passed, failed or were skipped."""

from __future__ import annotations

import shutil
import subprocess
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Callable

from conftest import ROOT

JAVA_CLIENT = ROOT / "layer" / "java"
OFFLINE_MISS = "in offline mode"  # Maven's words for an artifact it has never downloaded


def maven_command(build_dir: Path, *arguments: str, offline: bool = True) -> list[str]:
    mvn = shutil.which("mvn")
    assert mvn, "mvn is needed for the Java client's tests (Maven 3.6.3+; the CI machine has it)"
    return [mvn, "-B", "-q", *(["-o"] if offline else []), f"-Dbuild.dir={build_dir}", *arguments]


def run_maven(build_dir: Path, env: dict[str, str], *arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`mvn -B -q -o ARGUMENTS`; online once if the offline run missed an artifact (no scripts/_venv.sh prefetch)."""
    shutil.rmtree(build_dir / "surefire-reports", ignore_errors=True)  # the reports of this run only
    result = subprocess.run(maven_command(build_dir, *arguments), cwd=JAVA_CLIENT, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if result.returncode != 0 and OFFLINE_MISS in result.stdout + result.stderr:
        result = subprocess.run(maven_command(build_dir, *arguments, offline=False), cwd=JAVA_CLIENT, env=env,
                                capture_output=True, text=True, timeout=timeout)
    return result


def run_maven_gated(build_dir: Path, env: dict[str, str], gate: Path, open_gate: Callable[[], None], *arguments: str,
                    timeout: float = 300) -> subprocess.CompletedProcess:
    """run_maven with CONTRACT_GATE=gate: once ContractTest's cases wait at the gate (gate.waiting exists),
    open_gate() runs, then the gate opens (the file gate is written) and the run goes on to its end."""
    waiting, log = Path(f"{gate}.waiting"), Path(f"{gate}.log")
    shutil.rmtree(build_dir / "surefire-reports", ignore_errors=True)
    for offline in (True, False):
        command = maven_command(build_dir, *arguments, offline=offline)
        with open(log, "w") as out:
            maven = subprocess.Popen(command, cwd=JAVA_CLIENT, env={**env, "CONTRACT_GATE": str(gate)}, stdout=out,
                                     stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + timeout
            while not waiting.exists() and maven.poll() is None:
                assert time.monotonic() < deadline, f"Maven's tests did not reach the gate within {timeout:.0f} s"
                time.sleep(0.02)
            if waiting.exists():
                open_gate()
                gate.touch()
                maven.wait(timeout=timeout)
            elif offline and OFFLINE_MISS in log.read_text():
                continue  # never fetched: once more online
            return subprocess.CompletedProcess(command, maven.returncode, log.read_text(), "")
        finally:
            if maven.poll() is None:
                maven.kill()
                maven.wait()
    raise AssertionError("unreachable")


def surefire_outcomes(build_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """Per test class, (test name, outcome) in report order; outcome is passed, failed, error or skipped. Test names
    are display names (the pom's reporter): a contract case's is "contract " + its id."""
    outcomes: dict[str, list[tuple[str, str]]] = {}
    for report in sorted((build_dir / "surefire-reports").glob("TEST-*.xml")):
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
            outcomes.setdefault(case.get("classname"), []).append((case.get("name"), outcome.replace("failure", "failed")))
    return outcomes


def surefire_class_path(build_dir: Path) -> list[str]:
    """The class path the tests ran on (surefire.test.class.path in a report): the client's classes or jar in it."""
    for report in sorted((build_dir / "surefire-reports").glob("TEST-*.xml")):
        for prop in ElementTree.parse(report).getroot().iter("property"):
            if prop.get("name") == "surefire.test.class.path":
                return prop.get("value").split(":")
    return []


def failures(build_dir: Path) -> str:
    """The plain-text reports of the tests that did not pass, for an assertion message."""
    texts = [path.read_text() for path in sorted((build_dir / "surefire-reports").glob("*.txt"))
             if "FAILURE" in path.read_text() or "ERROR" in path.read_text()]
    return "\n".join(texts)
