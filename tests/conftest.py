"""Fixtures for end-to-end tests: the built layer, moto's HTTP server, and the extension launched
from the layer under the Extensions API emulator, exactly as Lambda would start it."""

from __future__ import annotations

import base64
import fcntl
import http.client
import importlib
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from local_lambda import layer
from local_lambda.aws import SAMPLE_SECRET, MotoServer, create_sample_resources, free_port, lambda_environment
from local_lambda.extensions_api import ExtensionsApiEmulator

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-west-2"
# The interpreter itself, not this venv: the extension must run on the layer's vendored packages alone.
PATH = f"{Path(sys.base_prefix) / 'bin'}:/usr/bin:/bin"
SAMPLE_CONFIG = (ROOT / "config.yaml").read_text()

# Every secret value a test puts upstream; none may ever appear in the extension's output.
SECRET_VALUES: set[str] = {SAMPLE_SECRET[1]}
# Binary secrets (SecretBinary) a test puts upstream: their base64 and escaped forms may not appear either.
SECRET_BYTES: set[bytes] = set()


def skip_or_fail(message: str) -> None:
    """Skip a test whose tier cannot run on this machine; under CI=true (.ci/run) fail instead: in CI every
    tier must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: this must run in CI)", pytrace=False)
    pytest.skip(message)


def poll(condition, timeout: float = 10.0, interval: float = 0.05):
    """Bounded wait for a condition; returns its last truthy value or fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail("condition not met in time")


def unique(prefix: str) -> str:
    """moto's state is shared by the whole session: each test names its own resources."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class RunningExtension:
    def __init__(self, emulator: ExtensionsApiEmulator, extension, port: int, token: str, config_path: Path) -> None:
        self.emulator = emulator
        self.extension = extension
        self.port = port
        self.token = token
        self.config_path = config_path
        # Kept (in memory only) for the session-wide secret scan: see pytest_sessionfinish.
        LAUNCHED.append((os.environ.get("PYTEST_CURRENT_TEST", "outside any test"), self))

    @property
    def output(self) -> str:
        return self.extension.output

    def upstream_calls(self, operation: str) -> int:
        """AWS calls the extension made for `operation` (as /stats counts them, e.g. "ssm:GetParametersByPath")."""
        return json.loads(self.request("/stats").body)["upstream"].get(operation, {}).get("calls", 0)

    def request(self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None, token: str | None = "") -> Reply:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["X-Aws-Parameters-Secrets-Token"] = token or self.token
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, headers=all_headers)
            response = connection.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def read(self, source: str, name: str) -> Reply:
        from urllib.parse import quote

        return self.request(f"/{source}?name={quote(name, safe='')}")


def built_once(tmp_path_factory, name: str, build) -> Path:
    """`name`/layer, built by build(out) once per run: under pytest-xdist the first worker to ask builds it
    (under a file lock) in the directory all workers of the run share, and the others wait for it and reuse it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        out = tmp_path_factory.mktemp(name) / "layer"
        build(out)
        return out
    shared = tmp_path_factory.getbasetemp().parent  # pytest-of-<user>/pytest-N: one per run, shared by its workers
    out, done = shared / name / "layer", shared / name / "built"
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or if this worker dies
        if not done.exists():
            shutil.rmtree(out.parent, ignore_errors=True)  # a worker that died mid-build left half a tree
            build(out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def python_layer_dir(tmp_path_factory) -> Path:
    """The Python layer (the extension run by python3 from PATH), built once a run."""
    return built_once(tmp_path_factory, "build", lambda out: layer.build(
        layer.machine_arch(), f"{sys.version_info.major}.{sys.version_info.minor}", out, log=lambda *_: None))


@pytest.fixture(scope="session")
def layer_dir(python_layer_dir) -> Path:
    """The layer tests launch the extension from: the Python layer, unless a module overrides this fixture
    (tests/test_end_to_end.py parametrizes it over LAYER_VARIANTS). An override must not request `layer_dir`
    itself: its params would then key this session fixture too, and rebuild the layer at every switch."""
    return python_layer_dir


@pytest.fixture(scope="module")
def python_client(layer_dir):
    """cache_extension_client imported from the layer tree, as a function on Lambda would."""
    sys.path.insert(0, str(layer_dir / "python"))
    sys.modules.pop("cache_extension_client", None)
    module = importlib.import_module("cache_extension_client")
    assert Path(module.__file__).is_relative_to(layer_dir)
    yield module
    sys.path.remove(str(layer_dir / "python"))
    sys.modules.pop("cache_extension_client", None)


@pytest.fixture(scope="session")
def standalone_dir(tmp_path_factory) -> Path:
    """The standalone layer (the extension frozen by PyInstaller): built once a run, it takes a while."""
    return built_once(tmp_path_factory, "standalone", lambda out: layer.build_standalone(out, log=lambda *_: None))


# The layer variants a module can run against (tests/test_end_to_end.py runs against both), by the name of
# the session fixture that builds each.
LAYER_VARIANTS = {"layer": "python_layer_dir", "standalone": "standalone_dir"}


def path_for(layer_dir: Path) -> str:
    """The PATH the extension gets: the bare interpreter for the Python layer; for the standalone layer an
    empty directory, so that no Python at all can be found and only absolute paths work."""
    if not layer.is_standalone(layer_dir):
        return PATH
    empty = layer_dir.parent / "empty-path"
    empty.mkdir(exist_ok=True)
    return str(empty)


@pytest.fixture(scope="session")
def moto():
    with MotoServer() as server:
        create_sample_resources(server, REGION)
        yield server


def launch(layer_dir: Path, moto: MotoServer, task_root: Path, config_text: str, *, env: dict[str, str] | None = None,
           wait: bool = True, port: int | None = None, register_delay: float = 0.0,
           max_concurrency: int | None = None) -> RunningExtension:
    """The extension from the built layer, under its own Extensions API emulator, with config_text
    (in Lambda Managed Instances mode when max_concurrency is set)."""
    task_root.mkdir(parents=True, exist_ok=True)
    config_path = task_root / "config.yaml"
    config_path.write_text(config_text)
    port = port or free_port()
    token = f"session-token-{uuid.uuid4().hex}"
    extra = {"PATH": path_for(layer_dir), "CACHE_EXTENSION_PORT": str(port), **(env or {})}
    environment = lambda_environment(endpoint=moto.endpoint, region=REGION, token=token,
                                     config=str(config_path), extra=extra)
    emulator = ExtensionsApiEmulator(region=REGION, register_delay=register_delay, max_concurrency=max_concurrency).start()
    extension = emulator.launch(str(layer_dir / "extensions" / "cache-extension"), environment)
    handle = RunningExtension(emulator, extension, port, token, config_path)
    if wait:
        try:
            emulator.wait_init(timeout=20)
        except BaseException:
            emulator.close()
            raise
    return handle


def close_and_check(handle: RunningExtension) -> None:
    handle.emulator.close()
    leaked = [value for value in SECRET_VALUES | {handle.token} if value in handle.output]
    if leaked:  # never the values themselves: the report is a log too
        pytest.fail(f"{len(leaked)} secret value(s) appeared in the extension's output", pytrace=False)


@pytest.fixture
def start_extension(layer_dir, moto, tmp_path):
    """start_extension(config_text, env=..., wait=True, port=None, register_delay=0, max_concurrency=None)
    -> RunningExtension."""
    running: list[RunningExtension] = []

    def start(config_text: str = SAMPLE_CONFIG, **options) -> RunningExtension:
        handle = launch(layer_dir, moto, tmp_path / f"task{len(running)}", config_text, **options)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        close_and_check(handle)


# --- the session-wide secret scan ----------------------------------------------------------------
# Every extension the tests start (through launch(), module-scoped fixtures included, or by building a
# RunningExtension directly) is remembered with the test that started it. Its output stays in memory,
# never in a file; at the end of the session all of it is scanned for every secret the tests created
# while it ran (a value registered after it exited cannot have reached it: tests register a value before
# they put it upstream).

LAUNCHED: list[tuple[str, RunningExtension]] = []
_SECRETS_AT_EXIT: dict[int, tuple[frozenset[str], frozenset[bytes]]] = {}  # LAUNCHED index -> the secrets then


def _escaped_forms(text: str) -> set[str]:
    """How a log line could carry a text: as is, JSON-escaped (either ensure_ascii) or repr-escaped."""
    return {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1], repr(text)[1:-1]}


def secret_forms(token: str | None = None, values=None, binaries=None) -> list[tuple[str, str]]:
    """(kind of value, text to look for), for `values` and `binaries` (default: every secret registered so far).
    Never print the text, only the kind."""
    values = SECRET_VALUES if values is None else values
    forms = [("a secret value", form) for value in values for form in _escaped_forms(value)]
    for value in SECRET_BYTES if binaries is None else binaries:
        binary = [("the base64 form of a binary secret", base64.b64encode(value).decode().rstrip("=")),
                  ("the base64 form of a binary secret", base64.urlsafe_b64encode(value).decode().rstrip("="))]
        binary += [("a binary secret, escaped", form) for form in _escaped_forms(repr(value)[2:-1])]
        binary += [("a binary secret, decoded", form) for form in _escaped_forms(value.decode("utf-8", errors="replace"))]
        forms += [(kind, form) for kind, form in binary if len(form) >= 6]  # shorter would match by chance
    if token:
        forms.append(("the session token", token))
    return [(kind, form) for kind, form in forms if form]


def secret_leaks(output: str, token: str | None = None, values=None, binaries=None) -> list[str]:
    """The kinds of secret found in output (empty: none), without the values themselves."""
    return sorted({kind for kind, form in secret_forms(token, values, binaries) if form in output})


def pytest_runtest_logfinish(nodeid, location):
    for index, (_, handle) in enumerate(LAUNCHED):
        process = handle.extension.process
        if index not in _SECRETS_AT_EXIT and process is not None and process.returncode is not None:
            _SECRETS_AT_EXIT[index] = (frozenset(SECRET_VALUES), frozenset(SECRET_BYTES))


def pytest_sessionfinish(session, exitstatus):
    findings = [(started_by, kind) for index, (started_by, handle) in enumerate(LAUNCHED)
                for kind in secret_leaks(handle.output, handle.token, *_SECRETS_AT_EXIT.get(index, (None, None)))]
    if not findings:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    write = reporter.write_line if reporter is not None else print
    if reporter is not None:
        reporter.write_sep("=", "secret scan: secrets in the extension's output", red=True, bold=True)
    for started_by, kind in findings:
        write(f"the extension started by {started_by} wrote {kind} to its output")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
