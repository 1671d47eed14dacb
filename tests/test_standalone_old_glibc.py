"""The standalone layer on an older glibc than this machine's: Debian 11 (bullseye, glibc 2.31, older than
Amazon Linux 2023's 2.34), unpacked once by debootstrap into .venv/tools/roots (local_lambda.old_glibc_root).

The extension runs chrooted into that root, in a private mount namespace, with the layer read-only at /opt,
the root read-only, no python3 anywhere in it, under the project's Extensions API emulator, reading moto
through a host name (`localhost`, resolved by the bundled libc from the root's /etc/hosts). It skips where
no chroot can be made (not root, no debootstrap or mirror), except with CI=true, where it fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import REGION, SAMPLE_CONFIG, RunningExtension, close_and_check, skip_or_fail
from local_lambda import elf, layer_standalone, old_glibc_root
from local_lambda.aws import free_port, lambda_environment
from local_lambda.extensions_api import ExtensionsApiEmulator


@pytest.fixture(scope="session")
def old_root() -> Path:
    try:
        return old_glibc_root.prepare(log=lambda *_: None)
    except old_glibc_root.RootUnavailable as exc:
        skip_or_fail(f"no Debian {old_glibc_root.SUITE} root here: {exc}")


def test_the_root_is_older_and_has_no_python(old_root):
    libc = next((old_root / "usr" / "lib").glob("*-linux-gnu/libc.so.6"))
    newest = max(filter(None, map(elf.glibc_version, elf.read(libc.resolve()).version_defs)))
    assert newest <= old_glibc_root.GLIBC < layer_standalone.LAMBDA_GLIBC  # 2.31 adds no symbol version: GLIBC_2.30
    for directory in ("usr/bin", "usr/local/bin", "usr/sbin"):
        assert not list((old_root / directory).glob("python*")), directory
    assert (old_root / "bin" / "sh").exists()


def test_serves_the_sample_values_on_glibc_2_31(standalone_dir, old_root, moto, tmp_path):
    task = tmp_path / "task"
    task.mkdir()
    (task / "config.yaml").write_text(SAMPLE_CONFIG)
    launcher = old_glibc_root.chroot_launcher(tmp_path / "cache-extension", old_root, standalone_dir, task)
    port = free_port()
    token = f"old-glibc-{uuid.uuid4().hex}"
    environment = lambda_environment(endpoint=moto.endpoint.replace("127.0.0.1", "localhost"), region=REGION,
                                     token=token, config="/var/task/config.yaml",
                                     extra={"CACHE_EXTENSION_PORT": str(port), "PATH": "/usr/local/bin:/usr/bin:/bin"})
    emulator = ExtensionsApiEmulator(region=REGION).start()
    extension = emulator.launch(str(launcher), environment)
    handle = RunningExtension(emulator, extension, port, token, task / "config.yaml")
    try:
        emulator.wait_init(timeout=30)
        pid = extension.process.pid
        assert Path(os.readlink(f"/proc/{pid}/root")) == old_root.resolve()  # it really is in the old root
        assert handle.read("parameters", "CacheExtensions_Parameter1").text == "MyParameter"
        assert handle.read("parameters", "/aws/reference/secretsmanager/secret_info").text == "MySecret"
        assert handle.read("secrets", "secret_info").text == "MySecret"
        item = handle.read("dynamodb", "DynamoDbTable-pKey1-sKey1")
        assert item.status == 200 and json.loads(item.text)["Data"] == "DynamoDB sample data"
        emulator.invoke()
        assert handle.read("parameters", "CacheExtensions_Parameter1").status == 200
        print(f"on glibc 2.31 (chroot, namespace set-up included): start -> register "
              f"{(extension.registered_at - extension.launched_at) * 1000:.1f} ms, start -> INIT done "
              f"{(extension.init_done_at - extension.launched_at) * 1000:.1f} ms")
    finally:
        close_and_check(handle)


def test_the_frozen_binary_without_the_bundled_loader_fails_there(standalone_dir, old_root, tmp_path):
    """What this file guards against, shown on the same root: the frozen binary started directly, as the
    launcher did before it carried a loader, gets the system's loader and C library, and glibc 2.31 is too old."""
    task = tmp_path / "task"
    task.mkdir()
    launcher = old_glibc_root.chroot_launcher(tmp_path / "cache-extension", old_root, standalone_dir, task)
    launcher.write_text(launcher.read_text().replace('"/opt/extensions/$0"', "/opt/cache-extension/cache-extension"))
    result = subprocess.run([str(launcher)], capture_output=True, text=True, timeout=30, env={})
    assert result.returncode != 0
    assert "GLIBC_2.3" in result.stderr and "not found" in result.stderr, result.stderr
