"""Secrets live in memory only: the extension, run from the layer against a read-only task root, writes no
file anywhere: not in HOME, not in TMPDIR or /tmp, not in the task root, not in the layer (no __pycache__).

The proof has three parts, all taken from the kernel rather than from the extension's own word:
- its open file descriptors, sampled all along the run: no regular file is ever open for writing, and no
  writable shared file mapping exists;
- /proc/<pid>/io's write_bytes, read just before SHUTDOWN: the bytes the process caused to be written to
  storage. Creating even an empty file on a disk-backed filesystem counts there (its directory block is
  dirtied), so 0 means it created and wrote no file on any such filesystem, /tmp included when /tmp is on
  disk. Other processes (other test runs) writing to /tmp at the same time do not count against it, which
  a listing of /tmp could not tell apart;
- HOME, TMPDIR, the task root and the layer tree compared before and after, names, sizes, modes and
  mtimes (a directory's mtime changes when an entry is created in it, even if it is removed again).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import REGION, SECRET_VALUES, close_and_check, launch, unique


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry under root (root itself included): path -> (mode, size, mtime_ns)."""
    entries = {}
    for directory, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            path = Path(directory, name)
            info = path.lstat()
            entries[str(path.relative_to(root))] = (info.st_mode, info.st_size if not stat.S_ISDIR(info.st_mode) else 0,
                                                    info.st_mtime_ns)
    return entries


def files_open_for_writing(pid: int) -> list[str]:
    """Regular files the process holds open with write access, and writable shared file mappings."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            mode = os.stat(f"/proc/{pid}/fd/{fd}").st_mode
            flags = next(int(line.split()[1], 8) for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines()
                         if line.startswith("flags:"))
        except (FileNotFoundError, ProcessLookupError):
            continue  # closed meanwhile
        if stat.S_ISREG(mode) and flags & os.O_ACCMODE != os.O_RDONLY:
            found.append(f"fd {fd} -> {target} (flags {flags:o})")
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[1][1] == "w" and fields[1][3] == "s" and fields[5].startswith("/"):
            found.append(f"shared writable mapping of {fields[5]}")
    return found


def storage_writes(pid: int) -> int:
    """Bytes this process caused to be written to storage (kernel task I/O accounting)."""
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["write_bytes"])


class FdWatcher(threading.Thread):
    """Samples the process's descriptors every 10 ms until stopped; keeps whatever was open for writing."""

    def __init__(self, pid: int) -> None:
        super().__init__(name="fd-watcher", daemon=True)
        self.pid = pid
        self.samples = 0
        self.found: set[str] = set()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.01):
            try:
                self.found.update(files_open_for_writing(self.pid))
            except (FileNotFoundError, ProcessLookupError):
                return  # the process is gone
            self.samples += 1

    def stop(self) -> set[str]:
        self.stopping.set()
        self.join(timeout=5)
        return self.found


def test_the_extension_writes_nothing_to_disk(layer_dir, moto, tmp_path):
    secure, secure_value = unique("/no-disk/secure"), f"no-disk-secure-{unique('v')}"
    secret, secret_value = unique("no-disk/secret"), f"no-disk-secret-{unique('v')}"
    SECRET_VALUES.update({secure_value, secret_value})
    moto.client("ssm", REGION).put_parameter(Name=secure, Value=secure_value, Type="SecureString", Overwrite=True)
    moto.client("secretsmanager", REGION).create_secret(Name=secret, SecretString=secret_value)

    home, tmpdir, task_root = tmp_path / "home", tmp_path / "tmp", tmp_path / "task"
    for directory in (home, tmpdir, task_root):
        directory.mkdir()
    (task_root / "config.yaml").write_text(
        f"parameters:\n  - names: [CacheExtensions_Parameter1, {secure}, /no-disk/missing]\n"
        f"secrets:\n  - names: [{secret}]\n"
        "dynamodb:\n  - table: DynamoDbTable\n    hashkey: pKey\n    hashkeyvalue: pKey1\n"
        "    sortkey: sKey\n    sortkeyvalue: sKey1\n")
    (task_root / "config.yaml").chmod(0o444)
    task_root.chmod(0o555)
    before = {"task root": snapshot(task_root), "layer": snapshot(layer_dir)}
    env = {"HOME": str(home), "TMPDIR": str(tmpdir), "TEMP": str(tmpdir), "TMP": str(tmpdir),
           "CACHE_EXTENSION_CONFIG": str(task_root / "config.yaml"), "CACHE_EXTENSION_LOG_LEVEL": "debug"}
    # launch() writes its config_text beside, in a scratch directory: broken YAML there proves the extension
    # read the read-only task root's config.yaml (CACHE_EXTENSION_CONFIG) instead.
    ext = launch(layer_dir, moto, tmp_path / "scratch", "parameters: [this is not the config\n", env=env)
    try:
        pid = ext.extension.process.pid
        watcher = FdWatcher(pid)
        watcher.start()

        seen: set[str] = set()
        steps = [
            lambda: ext.read("parameters", "CacheExtensions_Parameter1").text == "MyParameter",
            lambda: ext.read("parameters", secure).text == secure_value,
            lambda: ext.read("secrets", secret).text == secret_value,
            lambda: ext.read("dynamodb", "DynamoDbTable-pKey1-sKey1").status == 200,
            lambda: ext.request(f"/systemsmanager/parameters/get?name={secure}&withDecryption=true").status == 200,
            lambda: ext.request(f"/secretsmanager/get?secretId={secret}").status == 200,
            lambda: ext.read("parameters", "/no-disk/missing").status == 404,  # an error: not found upstream
            lambda: ext.read("secrets", "not-configured").status == 404,
            lambda: ext.request(f"/refresh?name={secret}", method="POST").status == 200,
            lambda: ext.request("/refresh?all=true", method="POST").status == 200,
            lambda: ext.emulator.invoke() is not None,
            lambda: ext.read("secrets", secret).text == secret_value,
        ]
        for number, step in enumerate(steps):
            assert step(), f"step {number}"
            seen.update(files_open_for_writing(pid))  # besides the watcher's samples: once after every step

        writes = storage_writes(pid)
        seen |= watcher.stop()
        print(f"/proc/{pid}/fd checked {watcher.samples} times in the background and after each of {len(steps)} "
              f"steps; write_bytes {writes}")
        assert not seen
        assert writes == 0, f"the extension wrote {writes} bytes to storage"

        assert ext.emulator.shutdown()["cache-extension"] is not None  # exited by itself
        assert ext.extension.process.returncode == 0
        after = {"task root": snapshot(task_root), "layer": snapshot(layer_dir)}
    finally:
        close_and_check(ext)
        task_root.chmod(0o755)  # so that pytest can clean tmp_path up

    assert list(home.iterdir()) == [] and list(tmpdir.iterdir()) == []
    assert after == before
    assert f"fetched parameters {secure}" in ext.output  # it did read the task root's config


def test_the_checks_see_a_write(tmp_path):
    """The same probes, on a process that does write a file: they must notice."""
    target = tmp_path / "written"
    script = ("import sys, time\nf = open(sys.argv[1], 'w'); f.write('x' * 10); f.flush()\n"
              "print('ready', flush=True); time.sleep(10)\n")
    process = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "ready\n"
        found = files_open_for_writing(process.pid)
        assert any(str(target) in entry for entry in found), found
        deadline = time.monotonic() + 5
        while storage_writes(process.pid) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert storage_writes(process.pid) > 0
    finally:
        process.kill()
        process.wait(timeout=5)
