"""Fixtures for end-to-end tests: the built layer, moto's HTTP server, and the extension launched
from the layer under the Extensions API emulator, exactly as Lambda would start it."""

from __future__ import annotations

import http.client
import sys
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

    @property
    def output(self) -> str:
        return self.extension.output

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


@pytest.fixture(scope="session")
def python_layer_dir(tmp_path_factory) -> Path:
    """The Python layer (the extension run by python3 from PATH), built once a session."""
    out = tmp_path_factory.mktemp("build") / "layer"
    layer.build(layer.machine_arch(), f"{sys.version_info.major}.{sys.version_info.minor}", out, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def layer_dir(python_layer_dir) -> Path:
    """The layer tests launch the extension from: the Python layer, unless a module overrides this fixture
    (tests/test_end_to_end.py parametrizes it over LAYER_VARIANTS). An override must not request `layer_dir`
    itself: its params would then key this session fixture too, and rebuild the layer at every switch."""
    return python_layer_dir


@pytest.fixture(scope="session")
def standalone_dir(tmp_path_factory) -> Path:
    """The standalone layer (the extension frozen by PyInstaller): built once a session, it takes a while."""
    out = tmp_path_factory.mktemp("standalone") / "layer"
    layer.build_standalone(out, log=lambda *_: None)
    return out


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
           wait: bool = True, port: int | None = None, register_delay: float = 0.0) -> RunningExtension:
    """The extension from the built layer, under its own Extensions API emulator, with config_text."""
    task_root.mkdir(parents=True, exist_ok=True)
    config_path = task_root / "config.yaml"
    config_path.write_text(config_text)
    port = port or free_port()
    token = f"session-token-{uuid.uuid4().hex}"
    extra = {"PATH": path_for(layer_dir), "CACHE_EXTENSION_PORT": str(port), **(env or {})}
    environment = lambda_environment(endpoint=moto.endpoint, region=REGION, token=token,
                                     task_root=str(task_root), extra=extra)
    emulator = ExtensionsApiEmulator(region=REGION, register_delay=register_delay).start()
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
    assert not leaked, "a secret value appeared in the extension's output"


@pytest.fixture
def start_extension(layer_dir, moto, tmp_path):
    """start_extension(config_text, env=..., wait=True, port=None, register_delay=0) -> RunningExtension."""
    running: list[RunningExtension] = []

    def start(config_text: str = SAMPLE_CONFIG, **options) -> RunningExtension:
        handle = launch(layer_dir, moto, tmp_path / f"task{len(running)}", config_text, **options)
        running.append(handle)
        return handle

    yield start
    for handle in running:
        close_and_check(handle)
