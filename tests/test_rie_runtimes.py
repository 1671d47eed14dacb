"""Functions in other runtimes under AWS's RIE (classic mode), on the standalone layer, with no python3 on PATH.

Each example (function-example/nodejs, java, go) runs under AWS's own runtime interface client for its runtime
(scripts/local_lambda/rie_runtimes.py: aws-lambda-ric from npm, the Java client from Maven Central, a Go
provided.al2023 `bootstrap`), laid out as Lambda's images lay them out, with the standalone layer (conftest's
`standalone_dir`) at /opt and PATH=/var/lang/bin. Each reads the three sample values once during its INIT and once
per invoke, and the extension's /stats must count every one of those reads. Linux and root only, as
tests/test_rie.py; with CI=true a skip is a failure.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import REGION, ROOT, SAMPLE_CONFIG, skip_or_fail
from local_lambda import rie, rie_runtimes
from local_lambda.aws import SAMPLE_SECRET, free_port, lambda_environment
from test_rie import EXPECTED, Run, assert_sample_values, rie_binary, stop_and_check  # noqa: F401 (rie_binary: a fixture)

EXAMPLES = ROOT / "function-example"
INVOKES = 2
READS_PER_ROUND = 4  # parameter, the secret through its SSM reference, the secret, the item

# The Node.js example plus one read during INIT (top-level await: the client awaits the module's evaluation).
NODE_FUNCTION = """import { handler as example } from './index.mjs';

const init = await example({});

export const handler = async (event) => ({ ...(await example(event)), initParameter: init.parameter });
"""
# The Java example plus one read during INIT (the class's static initialiser: the client loads the handler's
# class during INIT).
JAVA_FUNCTION = """import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

public class RieHandler {
    private static final Map<String, Object> INIT = new example.Handler().handleRequest(new HashMap<>());
    private final example.Handler example = new example.Handler();

    public Map<String, Object> handleRequest(Map<String, Object> event) {
        Map<String, Object> result = new LinkedHashMap<>(example.handleRequest(event));
        result.put("initParameter", INIT.get("parameter"));
        return result;
    }
}
"""
GO_INIT_LINE = "INIT: read the sample's parameter, secret and item"  # function-example/go/main.go, after its reads


unavailable = skip_or_fail


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"`{name}` is not on PATH")
    return path


@pytest.fixture(scope="session")
def node_ric(rie_binary) -> Path:
    try:
        return rie_runtimes.install_node_ric(log=lambda *_: None)
    except rie_runtimes.RuntimeUnavailable as exc:
        unavailable(f"aws-lambda-ric cannot be installed: {exc}")


@pytest.fixture(scope="session")
def java_ric(rie_binary) -> Path:
    try:
        return rie_runtimes.install_java_ric(log=lambda *_: None)
    except rie_runtimes.RuntimeUnavailable as exc:
        unavailable(f"AWS's Java runtime interface client cannot be fetched: {exc}")


@pytest.fixture(scope="session")
def java_classes(standalone_dir, tmp_path_factory) -> Path:
    """The Java example and RieHandler compiled (Java 11) against the client jar in the standalone layer."""
    jars = sorted((standalone_dir / "java" / "lib").glob("*.jar"))
    if not jars:
        unavailable("the standalone layer has no Java client (no javac when it was built?)")
    out = tmp_path_factory.mktemp("java-function")
    source = out.parent / "RieHandler.java"
    source.write_text(JAVA_FUNCTION)
    sources = [str(source), *map(str, sorted((EXAMPLES / "java" / "src").rglob("*.java")))]
    result = subprocess.run([tool("javac"), "--release", "11", "-encoding", "UTF-8", "-cp", os.pathsep.join(map(str, jars)),
                             "-d", str(out), *sources], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def go_bootstrap(rie_binary, tmp_path_factory) -> Path:
    if not (EXAMPLES / "go" / "go.mod").is_file():
        pytest.skip("function-example/go is not in this tree: no Go function to run")
    try:
        return rie_runtimes.build_go_bootstrap(tmp_path_factory.mktemp("go-function"))
    except rie_runtimes.RuntimeUnavailable as exc:
        unavailable(f"the Go example cannot be built here: {exc}")
    except rie_runtimes.BuildError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def start_runtime(rie_binary, standalone_dir, moto, tmp_path):
    """start_runtime((command, env, binds, files), fill_task) -> Run, RIE started with the standalone layer at /opt
    and a task directory that fill_task(path) fills beside config.yaml. The clients' near cache is off, so that
    every read reaches the extension (and its /stats). Stopped and checked for secrets at teardown."""
    runs: list[Run] = []

    def start(runtime, fill_task) -> Run:
        command, runtime_env, binds, files = runtime
        task = tmp_path / f"task{len(runs)}"
        task.mkdir()
        (task / "config.yaml").write_text(SAMPLE_CONFIG)
        fill_task(task)
        token, port = f"rie-token-{uuid.uuid4().hex}", free_port()
        environment = lambda_environment(endpoint=moto.endpoint, region=REGION, token=token, extra={
            **runtime_env, "CACHE_EXTENSION_PORT": str(port), "CACHE_EXTENSION_CLIENT_CACHE": "off"})
        run = Run(rie.RieEnvironment(standalone_dir, task, command, environment, binds=binds, files=files,
                                     binary=rie_binary), token, port)
        runs.append(run)
        run.rie.start()
        return run

    yield start
    stop_and_check(runs)


def stats(run: Run) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", run.port, timeout=5)
    try:
        connection.request("GET", "/stats", headers={"X-Aws-Parameters-Secrets-Token": run.token})
        response = connection.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        connection.close()


def served(run: Run) -> tuple[int, int]:
    """(reads the extension served, of which hits), over every source."""
    cache = stats(run)["cache"].values()
    return (sum(c["Hits"] + c["Misses"] + c["StaleServed"] for c in cache), sum(c["Hits"] for c in cache))


def assert_no_python(run: Run) -> None:
    """No process in the namespace (RIE, the extension, the runtime) can find a python3 on its PATH, as the
    namespace sees it (/proc/PID/root), nor is one; the extension runs from the layer; the runtime's bootstrap
    says it found none (`command -v python3`, in the namespace)."""
    assert rie_runtimes.NO_PYTHON_LINE in run.rie.output, run.rie.tail()
    assert "python3 on PATH at" not in run.rie.output
    processes = run.rie.processes()
    extension = run.rie.pids_of("cache-extension")
    assert len(extension) == 1, processes
    for pid in processes:
        exe = os.readlink(f"/proc/{pid}/exe")
        assert not Path(exe).name.startswith("python"), (pid, exe)
        environ = dict(entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry)
        for directory in filter(None, environ.get("PATH", "").split(":")):
            for name in ("python3", "python"):
                assert not os.path.lexists(f"/proc/{pid}/root{directory}/{name}"), (pid, directory, name)
    (pid,) = extension
    assert os.readlink(f"/proc/{pid}/exe").startswith("/opt/"), "the extension does not run from the layer"


def check_function(run: Run, *, init_in_body: bool = True) -> list[rie.Invocation]:
    """INVOKES invokes, each answered with the sample values; the extension served every read of them, INIT's
    included, and its invokes' reads as hits; no secret in any answer."""
    invocations = [run.rie.invoke({}, timeout=60) for _ in range(INVOKES)]
    for invocation in invocations:
        if init_in_body:
            assert_sample_values(invocation, run.rie.output)
        else:  # the Go example's answer has no initParameter: its INIT read is in its log (checked by the caller)
            body = invocation.json() if invocation.status == 200 else None
            assert body is not None and {k: body.get(k) for k in EXPECTED if k != "initParameter"} == {
                k: v for k, v in EXPECTED.items() if k != "initParameter"}, (invocation, run.rie.tail())
        assert SAMPLE_SECRET[1].encode() not in invocation.body
    assert run.rie.output.count("INIT START") == 1, run.rie.tail()
    total, hits = served(run)
    assert total == READS_PER_ROUND * (1 + INVOKES), stats(run)
    assert hits >= READS_PER_ROUND * INVOKES, stats(run)
    assert run.read("parameters", "CacheExtensions_Parameter1") == (200, "hit", "MyParameter")
    assert_no_python(run)
    return invocations


def report(name: str, run: Run, invocations: list[rie.Invocation]) -> None:
    init = run.rie.wait_for(r"INIT REPORT\(durationMs: ([\d.]+)\)", timeout=5)
    print(f"\nRIE {name}: INIT REPORT durationMs {float(init.group(1)):.1f}; invokes answered in "
          f"{', '.join(f'{i.seconds * 1000:.0f}' for i in invocations)} ms")


def test_nodejs_function_under_aws_lambda_ric(start_runtime, node_ric, tmp_path):
    def fill(task: Path) -> None:
        shutil.copy2(EXAMPLES / "nodejs" / "index.mjs", task / "index.mjs")
        shutil.copy2(EXAMPLES / "nodejs" / "package.json", task / "package.json")
        (task / "rie_function.mjs").write_text(NODE_FUNCTION)

    tool("node")
    run = start_runtime(rie_runtimes.nodejs_runtime("rie_function.handler", tmp_path, ric_dir=node_ric), fill)
    invocations = check_function(run)
    report(f"Node.js ({rie_runtimes.NODE_RIC_VERSION} of aws-lambda-ric)", run, invocations)


def test_java_function_under_the_java_runtime_interface_client(start_runtime, java_ric, java_classes):
    tool("java")
    run = start_runtime(rie_runtimes.java_runtime("RieHandler::handleRequest", ric_dir=java_ric),
                        lambda task: shutil.copytree(java_classes, task, dirs_exist_ok=True))
    invocations = check_function(run)
    report(f"Java ({':'.join(rie_runtimes.JAVA_RIC[1:])})", run, invocations)


def test_go_function_as_a_provided_al2023_bootstrap(start_runtime, go_bootstrap):
    run = start_runtime(rie_runtimes.provided_runtime(), lambda task: shutil.copy2(go_bootstrap, task / "bootstrap"))
    invocations = check_function(run, init_in_body=False)
    output = run.rie.output
    assert GO_INIT_LINE in output and output.index(GO_INIT_LINE) < output.index("INIT RTDONE(status: success)"), run.rie.tail()
    report("Go (provided.al2023 bootstrap)", run, invocations)
