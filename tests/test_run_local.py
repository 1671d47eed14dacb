"""scripts/run-local end to end: each example function invoked as Lambda would, from the session's built layer.

run-local starts its own moto server and Lambda emulator on free loopback ports (--port 0 for the extension),
so these runs can go in parallel with the rest of the suite.
"""

from __future__ import annotations

import base64
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

from conftest import ROOT, SECRET_BYTES, SECRET_VALUES, secret_leaks
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
    assert "mode on-demand (AWS_LAMBDA_INITIALIZATION_TYPE=on-demand): INIT before the first invoke" in output  # the default
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
    # Said once, untagged twice, with one error type: not "Init failed: ... Extension.Crash" or "[name] ERROR [name]".
    assert output.count("invalid duration") == 1 and "Init failed" not in output, output
    assert "INIT failed: cache-extension: Extension.ConfigInvalid\n" in output, output
    assert "[cache-extension] ERROR [cache-extension]" not in output, output
    assert "from the shell: CACHE_EXTENSION_TTL" in output, output

    # Valid ones take effect: JSON log lines from the extension, and the run still succeeds.
    result = run_local("--once", "--layer", str(layer_dir), "--port", "0", "--warm", "0",
                       env=shell_env(AWS_LAMBDA_LOG_FORMAT="JSON", CACHE_EXTENSION_TTL="90s"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r'^\[cache-extension\] \{.*"level"', output, flags=re.MULTILINE), output
    assert "CACHE_EXTENSION_TTL" in output and "AWS_LAMBDA_LOG_FORMAT" in output
    assert "AWS calls during 1 invoke: 0" in output and "1 invokes" not in output, output  # --warm 0: one invoke

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


# -- your own resources (--resources), modes (--mode) ----------------------------------------------

EXAMPLE_RESOURCES = ROOT / "function-example" / "resources.example.yaml"
EXAMPLE_CONFIG = ROOT / "function-example" / "config.example.yaml"


def example_secrets() -> tuple[set[str], set[bytes]]:
    """What function-example/resources.example.yaml holds that run-local must never print: SecureString
    parameters' and secrets' values (text, and a mapping's JSON and its fields), binary secrets."""
    from local_lambda.resources import load_resources

    resources = load_resources(EXAMPLE_RESOURCES)
    texts = {p.value for p in resources.parameters if p.type == "SecureString"}
    texts |= {s.value for s in resources.secrets if isinstance(s.value, str)}
    texts |= {field for s in resources.secrets if isinstance(s.value, str) and s.value.startswith("{")
              for field in json.loads(s.value).values() if len(field) >= 8}
    return texts, {s.value for s in resources.secrets if isinstance(s.value, bytes)}


def table_rows(output: str) -> dict[str, list[str]]:
    """The every-item table: name -> [kind, status, X-Cache, cold, warm p50, value]."""
    section = output.split("through the layer's Python client", 1)[1].split("\n  values:", 1)[0]
    header, *lines = section.splitlines()[1:]  # after the title's end
    columns = [match.start() for match in re.finditer(r"\S+(?: \S+)*", header)]  # cells: 2+ spaces apart
    rows = {}
    for line in lines:
        cells = [line[start:end].strip() for start, end in zip(columns, columns[1:] + [None])]
        rows[cells[1]] = [cells[0], *cells[2:]]
    return rows


def test_run_local_seeds_your_resources_and_reads_every_configured_item(layer_dir: Path) -> None:
    secrets, binaries = example_secrets()
    SECRET_VALUES.update(secrets)
    SECRET_BYTES.update(binaries)
    result = run_local("--once", "--layer", str(layer_dir), "--port", "0", "--warm", "1",
                       "--resources", str(EXAMPLE_RESOURCES), "--config", str(EXAMPLE_CONFIG))
    output = result.stdout + result.stderr
    assert not secret_leaks(output, values=secrets, binaries=binaries), secret_leaks(output, values=secrets, binaries=binaries)
    assert result.returncode == 0, output
    assert "the responses differ" not in output and "direct boto3" not in output
    assert "read 8 items: 8 x 200" in output and "(the same statuses)" in output, output
    rows = table_rows(output)
    assert set(rows) == {"/app/region", "/app/hosts", "/app/db-password", "/aws/reference/secretsmanager/app/db",
                         "app/db", "app/signing-key", "Orders id=order-1 line=1",
                         "Orders id=order-1 line=2 (second-line)"}, output
    for name, (kind, status, x_cache, cold, warm, value) in rows.items():
        assert (status, x_cache) == ("200", "hit"), (name, output)
        assert re.fullmatch(DURATION, cold) and re.fullmatch(DURATION, warm), (name, cold, warm)
    assert rows["/app/region"][5] == '"eu-west-1"'  # a String parameter's value may be shown
    assert rows["/app/hosts"][5] == '"a.example.com,b.example.com"'
    hidden = {name: row[5] for name, row in rows.items() if name not in ("/app/region", "/app/hosts")}
    for name, value in hidden.items():  # the rest only as length and SHA-256 prefix
        assert re.fullmatch(r"\d+ bytes( of JSON| \(binary\))?, sha256 [0-9a-f]{12}", value), (name, value)
    signing_key = base64.b64decode("ZXhhbXBsZS1vbmx5LWJpbmFyeS1zZWNyZXQ=")
    assert hidden["app/signing-key"] == f"{len(signing_key)} bytes (binary), sha256 {hashlib.sha256(signing_key).hexdigest()[:12]}"
    assert [kind for kind, *_ in rows.values()].count("dynamodb") == 2
    assert "allow: (parameters /app/flags/*) is read on demand: those names cannot be listed" in output
    assert "AWS calls during these 2 invokes: 0" in output  # every read served from the cache
    # the README's example is this run, with these files
    assert ("scripts/run-local --once --resources function-example/resources.example.yaml "
            "--config function-example/config.example.yaml") in (ROOT / "README.md").read_text()


def test_run_local_reads_the_members_of_path_and_filter_groups(layer_dir: Path, tmp_path: Path) -> None:
    """A `path:` or `filter:` group is no name to read: run-local lists what it holds in the local AWS and the
    function reads each member by name (before, the table read the path itself: 404 NotConfigured)."""
    secrets, binaries = example_secrets()
    SECRET_VALUES.update(secrets)
    SECRET_BYTES.update(binaries)
    config = tmp_path / "config.yaml"
    config.write_text("parameters:\n  - path: /app/\n    recursive: true\nsecrets:\n  - filter:\n      name: app/\n")
    result = run_local("--once", "--layer", str(layer_dir), "--port", "0", "--warm", "1",
                       "--resources", str(EXAMPLE_RESOURCES), "--config", str(config))
    output = result.stdout + result.stderr
    assert not secret_leaks(output, values=secrets, binaries=binaries)
    assert result.returncode == 0, output
    rows = table_rows(output)
    assert set(rows) == {"/app/region", "/app/hosts", "/app/db-password", "app/db", "app/signing-key"}, output
    assert all(row[1:3] == ["200", "hit"] for row in rows.values()), output
    assert "AWS calls during these 2 invokes: 0" in output
    assert "prefetched 2 items in " in output and "; 2 path/filter groups listed 5 values" in output, output


@pytest.mark.parametrize("content, suffix, expected", [
    ("parameters:\n  - name: /app/a\n    type: Strin\n    value: x\n", ".yaml",
     r":3: parameters\[0\] \(/app/a\) type: must be one of String, StringList, SecureString"),
    ("secrets:\n  - name: app/s\n    value: do-not-echo-this\n    binary: AAAA\n", ".yaml",
     r":2: secrets\[0\] \(app/s\): give exactly one of 'value' .* and 'binary'"),
    ("dynamodb:\n  - table: Orders\n    hashkey: id\n    items:\n      - {id: a}\n      - {sku: b}\n", ".yaml",
     r":6: dynamodb\[0\] \(Orders\) items\[1\]: missing its key attribute 'id'"),
    ("parameters:\n  - name: /app/a\n    valu: x\n", ".yaml", r":3: parameters\[0\] \(/app/a\) valu: unknown key 'valu'"),
    ("parameters: [\n", ".yaml", r":2: invalid YAML"),
    ('{"parameters": [{"name": "/app/a", "value": 5}]}', ".json",
     r"json: parameters\[0\] \(/app/a\) value: must be text, not a number"),
    ('{"parameters": [\n  {"name": "/app/a",}\n]}', ".json", r"json:2: invalid JSON"),
])
def test_run_local_refuses_a_bad_resources_file_naming_file_entry_and_line(tmp_path: Path, content: str, suffix: str,
                                                                           expected: str, capsys) -> None:
    bad = tmp_path / f"resources{suffix}"
    bad.write_text(content)
    # Before anything starts: --layer names an empty directory, which would fail later if it got that far.
    # In this process (run-local's main, as the script calls it): a subprocess each would cost 0.5 s.
    from local_lambda.run_local import main

    with pytest.raises(SystemExit) as exit:
        main(["--once", "--resources", str(bad), "--layer", str(tmp_path)])
    out, err = capsys.readouterr()
    assert exit.value.code == 2, out + err
    assert f"--resources {bad}" in err and re.search(expected, err), err
    assert "do-not-echo-this" not in err
    assert "moto" not in out


def test_run_local_script_refuses_a_bad_resources_file_before_anything_starts(tmp_path: Path) -> None:
    bad = tmp_path / "resources.yaml"
    bad.write_text("parameters:\n  - name: /app/a\n    type: SecureString\n    value: [do-not-echo-this]\n")
    result = run_local("--once", "--resources", str(bad), "--layer", str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("usage: scripts/run-local"), result.stderr
    assert re.search(r"resources.yaml:4: parameters\[0\] \(/app/a\) value: must be text, not a list", result.stderr)
    assert "do-not-echo-this" not in result.stderr and "moto" not in result.stdout


def test_run_local_snap_start_mode(layer_dir: Path) -> None:
    result = run_local("--once", "--layer", str(layer_dir), "--port", "0", "--warm", "1", "--mode", "snap-start")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "mode snap-start (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start): no AWS_SESSION_TOKEN" in output
    assert "ready on" in output and "(snap-start)" in output  # the extension saw the mode
    served = re.search(r"INIT \(snap-start\): .*container credentials served (\d+)x", output)
    assert served and int(served.group(1)) >= 1, output  # the extension's AWS calls used the container endpoint
    cached = output.split("with the cache extension:", 1)[1].split("\n\n", 1)[0]
    assert cold_response(invocations(cached)[0][1]) == EXPECTED
    assert "same response from both" in output  # direct.py too, with container credentials


def test_run_local_managed_instances_mode_runs_invokes_concurrently(layer_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("parameters:\n  - names: [CacheExtensions_Parameter1]\n")
    result = run_local("--once", "--layer", str(layer_dir), "--port", "0", "--warm", "4", "--mode",
                       "managed-instances", "--config", str(config))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "AWS_LAMBDA_MAX_CONCURRENCY=4): up to 4 invokes at once" in output, output
    assert "(lambda-managed-instances)" in output  # the extension's ready line: SHUTDOWN only, timer refresh
    assert "INIT (lambda-managed-instances)" in output
    together = re.search(r"4 invokes sent at once, (\d) in flight together", output)
    assert together and int(together.group(1)) >= 2, output
    assert [kind for kind, _ in invocations(output)] == ["cold", "warm", "warm", "warm", "warm"], output
    assert "reads its 1 item through" in output and "read 1 item: 1 x 200" in output, output  # not "1 items"
    assert table_rows(output)["CacheExtensions_Parameter1"][1:3] == ["200", "hit"], output


@pytest.mark.parametrize("args, expected", [
    (["--mode", "managed-instances", "--function", "nodejs"], "--mode managed-instances runs with --function python only"),
    (["--mode", "managed-instances", "--function", "java"], "the local Node.js and Java bootstraps serve one invoke"),
    (["--mode", "snap-start", "--function", "nodejs"], "Lambda has no SnapStart for Node.js"),
    (["--resources", str(EXAMPLE_RESOURCES), "--function", "nodejs"], "--function nodejs reads the sample's names"),
])
def test_run_local_refuses_what_a_function_cannot_run(tmp_path: Path, args: list[str], expected: str, capsys) -> None:
    from local_lambda.run_local import main

    with pytest.raises(SystemExit) as exit:
        main(["--once", "--layer", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert exit.value.code == 2 and expected in err, err
