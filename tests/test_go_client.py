"""The Go client (layer/go): its unit tests, the shared contract table (tests/contract/cases.json) through its Go
runner (tests/clients/go) against the real extension, reads while the extension starts, and the Go example
function (function-example/go) built as a provided.al2023 bootstrap and run under the emulator's Runtime API.

Go is needed: without `go` on PATH these tests skip, and under CI=true they fail instead."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import REGION, ROOT, close_and_check, launch, skip_or_fail
from contract.resources import CASES, CONFIG, create_contract_resources
from local_lambda import layer
from local_lambda.aws import free_port, lambda_environment
# The shared contract extension of tests/test_clients.py: one per module that uses it.
from test_clients import (ALL_CASES, STARTUP_DELAY, TOKEN_VARIABLES, assert_nothing_trapped, contract_env,  # noqa: F401
                          contract_extension, contract_trap)

CLIENT = ROOT / "layer" / "go"
RUNNER = ROOT / "tests" / "clients" / "go"
EXAMPLE = ROOT / "function-example" / "go"
# The example's one build command (function-example/go/README.md), for a given GOARCH.
EXAMPLE_BUILD = ["build", "-tags", "lambda.norpc", "-o"]
CONTRACT_ARGS = ["-test.run=^TestContract$", "-test.v", "-test.count=1"]
ELF_MACHINES = {"amd64": 62, "arm64": 183}  # e_machine: EM_X86_64, EM_AARCH64


@pytest.fixture(scope="module")
def go() -> str:
    path = shutil.which("go")
    if path is None:
        skip_or_fail("`go` is not on PATH: the Go client's tests need Go 1.21 or later")
    return path


def go_env(**extra: str) -> dict[str, str]:
    """No go.work from elsewhere, no toolchain download, no VCS stamping. cgo as Go's default (on with a C
    compiler), as when scripts/test builds AWS's RIE just before: the standard library it compiled is reused."""
    return {**os.environ, "GOWORK": "off", "GOTOOLCHAIN": "local", "GOFLAGS": "-buildvcs=false", **extra}


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed in {cwd}:\n{result.stdout}\n{result.stderr}"
    return result


def runner_env(env: dict[str, str]) -> dict[str, str]:
    """The runner's environment: the contract's variables, none of the client's own from this process."""
    base = {k: v for k, v in go_env().items() if k not in (*TOKEN_VARIABLES, "CACHE_EXTENSION_CLIENT_CACHE",
                                                              "CACHE_EXTENSION_CLIENT_VALUES", "CONTRACT_ONLY")}
    return {**base, **env}


@pytest.fixture(scope="module")
def contract_binary(go, tmp_path_factory) -> Path:
    """The contract runner compiled once, so that a run starts at once (the start-up cases race the extension)."""
    binary = tmp_path_factory.mktemp("go-contract") / "contract.test"
    run([go, "vet", "./..."], RUNNER, go_env())
    run([go, "test", "-c", "-o", str(binary), "."], RUNNER, go_env())
    return binary


def test_go_client_unit_tests(go):
    """go vet, gofmt, the standard library only, and its unit tests."""
    assert "\ngo 1.21\n" in (CLIENT / "go.mod").read_text()
    run([go, "vet", "./..."], CLIENT, go_env())
    gofmt = Path(go).resolve().parent / "gofmt"
    if gofmt.exists():
        assert run([str(gofmt), "-l", "."], CLIENT, go_env()).stdout == ""
    imports = run([go, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./..."], CLIENT, go_env())
    assert imports.stdout.split() == ["github.com/lambda-cache-extension/lambda-cache-extension/layer/go/cacheclient"]
    # No -race here: building the standard library for it takes over a minute on a fresh machine (run
    # `go test -race ./...` in layer/go when changing the client's locking).
    result = run([go, "test", "-count=1", "./..."], CLIENT, go_env())
    assert result.stdout.startswith("ok "), result.stdout


def count_passed(output: str) -> int:
    return output.count("--- PASS: TestContract/")


def test_go_client_contract(contract_binary, contract_env, contract_trap):
    result = run([str(contract_binary), *CONTRACT_ARGS, "-test.timeout=300s"], RUNNER, runner_env(contract_env))
    expected = len([c for c in ALL_CASES if not c.get("startup")])
    assert count_passed(result.stdout) == expected, result.stdout
    assert "--- FAIL" not in result.stdout and "--- SKIP" not in result.stdout, result.stdout
    assert_nothing_trapped(contract_trap)


def test_go_client_reads_during_startup_wait_for_the_extension(contract_binary, layer_dir, moto, tmp_path):
    create_contract_resources(moto)
    handle = launch(layer_dir, moto, tmp_path / "task", CONFIG.read_text(), wait=False, register_delay=STARTUP_DELAY)
    try:
        env = {"CACHE_EXTENSION_PORT": str(handle.port), "AWS_SESSION_TOKEN": handle.token, "CONTRACT_CASES": str(CASES),
               "CONTRACT_DOWN_PORT": str(free_port()), "CONTRACT_STARTUP": "1"}
        assert handle.extension.registered_at is None  # the port is not open yet
        result = run([str(contract_binary), *CONTRACT_ARGS, "-test.timeout=120s"], RUNNER, runner_env(env))
        assert count_passed(result.stdout) == len([c for c in ALL_CASES if c.get("startup")]), result.stdout
        handle.emulator.wait_init(timeout=20)
    finally:
        close_and_check(handle)


def test_the_layer_ships_no_go_module(layer_dir):
    """layer/go is compiled into a function, never read from /opt: neither the tree nor the zip has it."""
    assert (ROOT / "layer" / "go" / "go.mod").exists()
    assert not (layer_dir / "go").exists()
    with zipfile.ZipFile(layer_dir.parent / layer.zip_name(layer.machine_arch())) as archive:
        assert not [name for name in archive.namelist() if name.startswith("go/")]


def elf_facts(path: Path) -> tuple[int, bool]:
    """(e_machine, whether it asks for a program interpreter: PT_INTERP) of a 64-bit little-endian ELF file."""
    data = path.read_bytes()
    assert data[:6] == b"\x7fELF\x02\x01", "not a 64-bit little-endian ELF file"
    machine = struct.unpack_from("<H", data, 18)[0]
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    interp = any(struct.unpack_from("<I", data, phoff + i * phentsize)[0] == 3 for i in range(phnum))
    return machine, interp


def build_example(go: str, goarch: str, out: Path) -> Path:
    """function-example/go's one build command: GOOS=linux GOARCH=... CGO_ENABLED=0 go build -tags lambda.norpc."""
    bootstrap = out / goarch / "bootstrap"
    run([go, *EXAMPLE_BUILD, str(bootstrap), "."], EXAMPLE, go_env(GOOS="linux", GOARCH=goarch, CGO_ENABLED="0"))
    return bootstrap


@pytest.fixture(scope="module")
def native_bootstrap(go, tmp_path_factory) -> Path:
    run([go, "vet", "./..."], EXAMPLE, go_env())
    goarch = run([go, "env", "GOHOSTARCH"], EXAMPLE, go_env()).stdout.strip()
    return build_example(go, goarch, tmp_path_factory.mktemp("go-example"))


def test_go_example_builds_as_a_provided_al2023_bootstrap(go, native_bootstrap, tmp_path):
    """Lambda's provided.al2023 runs an executable named bootstrap: static (no interpreter, any glibc), linux/amd64."""
    bootstrap = native_bootstrap if native_bootstrap.parent.name == "amd64" else build_example(go, "amd64", tmp_path)
    assert elf_facts(bootstrap) == (ELF_MACHINES["amd64"], False)
    assert os.access(bootstrap, os.X_OK)


def test_go_example_reads_the_sample_during_init_and_each_invoke(native_bootstrap, start_extension, moto, tmp_path):
    """The bootstrap under the emulator's Runtime API, beside the extension: INIT reads the three sample values
    (a failure there would fail INIT), then each invoke returns them."""
    ext = start_extension()
    env = lambda_environment(endpoint=moto.endpoint, region=REGION, token=ext.token,
                             extra={"CACHE_EXTENSION_PORT": str(ext.port)})
    runtime = ext.emulator.launch_runtime([str(native_bootstrap)], env, cwd=str(tmp_path))
    ext.emulator.wait_init(timeout=20)  # the runtime's INIT ends with its first invocation/next: after its reads
    secret = {"length": 8, "sha256": hashlib.sha256(b"MySecret").hexdigest()}
    for _ in range(2):
        result = ext.emulator.invoke({})
        assert result.ok, result.error
        response = result.response
        assert response["parameter"] == "MyParameter"
        assert response["secretFromReference"] == response["secret"] == secret
        assert response["item"] == {"pKey": "pKey1", "sKey": "sKey1", "Data": "DynamoDB sample data", "Count": 42,
                                    "Enabled": True, "Tags": ["cache", "example"],
                                    "Settings": {"ttlSeconds": 300, "mode": "refresh-ahead"}}
        assert "MySecret" not in json.dumps(response)
    assert "INIT: read the sample's parameter, secret and item" in runtime.output
    assert "MySecret" not in runtime.output and ext.token not in runtime.output
