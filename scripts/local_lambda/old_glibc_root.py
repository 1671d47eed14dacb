"""An older Linux than this machine's, to prove the standalone layer needs nothing of the system's glibc.

Amazon Linux 2023 images cannot be fetched here, but Debian's mirrors can: Debian 11 (bullseye) has glibc 2.31,
older than Lambda's 2.34 and this machine's 2.36. `debootstrap --foreign --variant=minbase` unpacks its
essential packages (libc6, dash, coreutils...; no python3) in about 20 s; the second stage, which configures
them, is not needed to run /bin/sh and is skipped. The root is kept in .venv/tools/roots and built once.

    prepare()            the root, built if missing (`python -m local_lambda.old_glibc_root prepare`)
    chroot_launcher()    a script that starts a layer's extension inside that root, with the layer at /opt
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITE = "bullseye"
GLIBC = (2, 31)
MIRROR = "http://deb.debian.org/debian"
ROOTS = ROOT / ".venv" / "tools" / "roots"
DEBIAN_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


class RootUnavailable(RuntimeError):
    """The old root cannot be built or entered here; the message says why."""


def root_dir() -> Path:
    return ROOTS / f"debian-{SUITE}-{DEBIAN_ARCH.get(os.uname().machine, os.uname().machine)}"


def ready() -> bool:
    return (root_dir() / ".ready").is_file()


def unavailable_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"a chroot in a private mount namespace needs Linux; this is {sys.platform}"
    if os.geteuid() != 0:
        return "chroot and bind mounts need root"
    for tool in ("unshare", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH"
    if not ready() and shutil.which("debootstrap") is None and shutil.which("apt-get") is None:
        return "debootstrap is not installed and there is no apt-get to install it"
    return None


def prepare(*, log=print, timeout: float = 600) -> Path:
    """The bullseye root, built if missing: debootstrap (installed with apt-get if needed), first stage only."""
    target = root_dir()
    if ready():
        return target
    reason = unavailable_reason()
    if reason:
        raise RootUnavailable(reason)
    if shutil.which("debootstrap") is None:
        log("installing debootstrap with apt-get")
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"]
        if _run(install, timeout).returncode != 0:
            _run(["apt-get", "update", "-q"], timeout)
            result = _run(install, timeout)
            if result.returncode != 0:
                raise RootUnavailable(f"apt-get could not install debootstrap: {result.stderr.strip()[-1000:]}")
    log(f"unpacking Debian {SUITE} (glibc {'.'.join(map(str, GLIBC))}) into {target} with debootstrap")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    result = _run(["debootstrap", "--foreign", "--variant=minbase", SUITE, str(partial), MIRROR], timeout)
    if result.returncode != 0 or not (partial / "bin" / "sh").exists():
        raise RootUnavailable(f"debootstrap failed ({result.returncode}): {(result.stdout + result.stderr)[-2000:]}")
    for deb in (partial / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()  # only the second stage would need them
    for mount_point in ("opt", "var/task", "proc", "dev", "tmp"):
        point = partial / mount_point
        if point.is_symlink():  # the first stage leaves proc -> /proc, which a mount would follow out of the root
            point.unlink()
        point.mkdir(parents=True, exist_ok=True)
    # Names the extension resolves inside the root go through the bundled libc's own NSS (files, then dns).
    (partial / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (partial / "etc" / "nsswitch.conf").write_text("hosts: files dns\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    (target / ".ready").write_text(f"debootstrap --foreign --variant=minbase {SUITE} {MIRROR}\n")
    return target


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise RootUnavailable(f"{command[0]} took more than {timeout} s") from exc


def chroot_launcher(path: Path, root: Path, layer_dir: Path, task_dir: Path) -> Path:
    """Write at `path` a script that, in a private mount namespace, makes `root` read-only with the layer at
    /opt (read-only), `task_dir` at /var/task, /proc, /dev and a tmpfs /tmp, then chroots into it and execs
    /opt/extensions/<the script's own file name>. Tools of this machine are called by absolute path; inside
    the root, only its own /bin/sh and the layer run. Nothing is seen outside the namespace."""
    tools = {tool: shutil.which(tool) for tool in ("unshare", "chroot", "mount", "sh")}
    q = shlex.quote
    r = q(str(root))
    inner = "\n".join([
        "set -e",
        f"{tools['mount']} --bind {r} {r} && {tools['mount']} -o remount,bind,ro {r}",
        f"{tools['mount']} --bind {q(str(layer_dir))} {r}/opt && {tools['mount']} -o remount,bind,ro {r}/opt",
        f"{tools['mount']} --bind {q(str(task_dir))} {r}/var/task",
        f"{tools['mount']} -t proc proc {r}/proc",
        f"{tools['mount']} --rbind /dev {r}/dev",
        f"{tools['mount']} -t tmpfs -o size=4m old-root-tmp {r}/tmp",
        f'exec {tools["chroot"]} {r} "/opt/extensions/$0"',
    ])
    path.write_text(f"#!{tools['sh']}\nexec {tools['unshare']} --mount --propagation private {tools['sh']} -c "
                    f"{q(inner)} \"${{0##*/}}\"\n")
    path.chmod(0o755)
    return path


def main(argv: list[str]) -> int:
    if argv[:1] == ["prepare"]:
        try:
            print(prepare(log=lambda message: print(message, file=sys.stderr)))
        except RootUnavailable as exc:
            print(f"old glibc root not prepared: {exc}", file=sys.stderr)
            return 1
        return 0
    print("usage: python -m local_lambda.old_glibc_root prepare   (Debian bullseye, glibc 2.31, into .venv/tools/roots)")
    return 0 if argv[:1] in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
