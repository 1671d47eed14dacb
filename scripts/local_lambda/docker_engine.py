"""A private Docker engine for the `sam local` tier: its own dockerd, bridge and sockets, gone when it stops.

Nothing of it reaches beyond this machine, by construction rather than by rules: the containers sit on a
bridge of our own (BRIDGE, an address picked from private ranges no route of this machine uses), dockerd runs
with `--iptables=false --ip-forward=false --ip-masq=false`, so it writes no iptables rule and the kernel
forwards nothing; a container reaches the bridge's own address (the host: moto listens there) and the other
containers on the bridge, and nothing else. Published ports go through docker-proxy on the host's loopback.

    unavailable_reason()   why it cannot run here (None: it can)
    install_packages()     docker.io and debootstrap with apt-get, if missing
    Engine(state, run)     start() / stop(): dockerd with --data-root under `state` (kept: the image cache), exec
                           root, socket, pid file and log under `run` (a temporary directory); stop() always
                           removes the containers, dockerd, the bridge, and restores ip_forward
    leftovers()            what a run left behind (processes, bridge, iptables rules or chains): [] when clean
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

BRIDGE = "samlocal0"
CANDIDATE_SUBNETS = ("172.29.117.0/24", "10.211.117.0/24", "192.168.217.0/24")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
PACKAGES = {"dockerd": "docker.io", "debootstrap": "debootstrap"}


class EngineUnavailable(RuntimeError):
    """The private engine cannot run here; the message says why."""


def unavailable_reason() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"a Docker engine needs Linux; this is {sys.platform}"
    if os.geteuid() != 0:
        return "a private dockerd (its own bridge and mounts) needs root"
    missing = [tool for tool in PACKAGES if shutil.which(tool) is None]
    if missing and shutil.which("apt-get") is None:
        return f"{', '.join(missing)} missing and no apt-get to install them"
    return None


def install_packages(*, log=print, timeout: float = 900) -> None:
    """docker.io and debootstrap from Debian's packages when their commands are missing (services not started:
    apt's policy-rc.d, or --no-triggers of none: dockerd is only ever started by Engine)."""
    missing = sorted({package for tool, package in PACKAGES.items() if shutil.which(tool) is None})
    if not missing:
        return
    log(f"installing {' '.join(missing)} with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, text=True, timeout=timeout, env=env)
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        raise EngineUnavailable(f"apt-get could not install {' '.join(missing)}: {result.stderr.strip()[-1500:]}")


def docker_cli() -> str:
    """The client shipped with the daemon (docker.io's /usr/bin/docker), else the first on PATH."""
    daemon = shutil.which("dockerd")
    beside = Path(daemon).with_name("docker") if daemon else None
    for candidate in (Path("/usr/bin/docker"), beside):
        if candidate is not None and candidate.is_file():
            return str(candidate)
    found = shutil.which("docker")
    if found is None:
        raise EngineUnavailable("no docker client")
    return found


def _routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, timeout=10)
    networks = []
    for line in out.stdout.splitlines():
        first = line.split()[0] if line.split() else ""
        if first in ("default", "broadcast", "local", "unreachable", "prohibit", "blackhole"):
            first = line.split()[1] if first != "default" and len(line.split()) > 1 else ""
        try:
            networks.append(ipaddress.ip_network(first, strict=False))
        except ValueError:
            continue
    return networks


def pick_subnet() -> ipaddress.IPv4Network:
    used = _routes()
    for text in CANDIDATE_SUBNETS:
        subnet = ipaddress.ip_network(text)
        if not any(subnet.overlaps(route) for route in used if route.prefixlen > 0):
            return subnet
    raise EngineUnavailable(f"every candidate subnet {CANDIDATE_SUBNETS} overlaps a route of this machine")


def bridge_exists(name: str = BRIDGE) -> bool:
    return Path("/sys/class/net", name).exists()


def iptables_docker_rules() -> list[str]:
    """Every iptables/ip6tables rule or chain naming Docker or our bridge ([] when none, or no iptables here)."""
    found = []
    for tool in ("iptables-save", "ip6tables-save"):
        if shutil.which(tool) is None:
            continue
        out = subprocess.run([tool], capture_output=True, text=True, timeout=20).stdout
        found += [f"{tool}: {line}" for line in out.splitlines() if "DOCKER" in line.upper() or BRIDGE in line]
    return found


def _bridge_in_use() -> bool:
    """Whether a running dockerd was started with our bridge."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if args and args[0].endswith(b"dockerd") and BRIDGE.encode() in args:
                return True
    return False


class Engine:
    """dockerd with its state (images: the cache between runs) under `state` and everything that lives only as
    long as it runs (exec root, socket, pid file, log) under `run`."""

    def __init__(self, state: Path, run: Path, *, log=print) -> None:
        self.state, self.run, self.log = Path(state), Path(run), log
        self.socket = self.run / "docker.sock"
        self.pidfile = self.run / "docker.pid"
        self.logfile = self.run / "dockerd.log"
        self.subnet: ipaddress.IPv4Network | None = None
        self.process: subprocess.Popen | None = None
        self.ip_forward_before = IP_FORWARD.read_text().strip() if IP_FORWARD.exists() else None
        self.docker = docker_cli()

    @property
    def gateway(self) -> str:
        """The bridge's own address: the host as the containers see it."""
        return str(next(self.subnet.hosts()))

    @property
    def env(self) -> dict[str, str]:
        """The environment for docker clients (the CLI, the SAM CLI's docker-py) to use this engine."""
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(self.run / "client")}

    def start(self, timeout: float = 60) -> Engine:
        if bridge_exists():
            if _bridge_in_use():
                raise EngineUnavailable(f"bridge {BRIDGE} is in use by a running dockerd: another run is in progress")
            self.log(f"deleting bridge {BRIDGE}, left by a run that was killed (no dockerd uses it)")
            subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, timeout=10)
        self.subnet = pick_subnet()
        (self.state / "data").mkdir(parents=True, exist_ok=True)
        (self.run / "exec").mkdir(parents=True, exist_ok=True)
        (self.run / "client").mkdir(parents=True, exist_ok=True)
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True, timeout=10)
        subprocess.run(["ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", BRIDGE], check=True,
                       timeout=10)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True, timeout=10)
        command = [shutil.which("dockerd"), "--data-root", str(self.state / "data"), "--exec-root", str(self.run / "exec"),
                   "-H", f"unix://{self.socket}", "--pidfile", str(self.pidfile), "--bridge", BRIDGE,
                   "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--userland-proxy=true",
                   "--storage-driver", "overlay2", "--log-level", "warn", "--config-file", str(self._config())]
        self.log(f"starting a private dockerd (bridge {BRIDGE} {self.gateway}/{self.subnet.prefixlen}, "
                 f"data root {self.state / 'data'})")
        with open(self.logfile, "ab") as logfile:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=logfile, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EngineUnavailable(f"dockerd exited ({self.process.returncode}):\n{self.log_tail()}")
            if self.socket.exists() and self.docker_run(["version"], timeout=10, check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise EngineUnavailable(f"dockerd did not answer within {timeout} s:\n{self.log_tail()}")

    def _config(self) -> Path:
        """An empty daemon.json of our own: the machine's /etc/docker/daemon.json is not this engine's."""
        path = self.run / "daemon.json"
        path.write_text("{}\n")
        return path

    def log_tail(self, chars: int = 3000) -> str:
        return self.logfile.read_text(errors="replace")[-chars:] if self.logfile.exists() else ""

    def docker_run(self, args: list[str], *, timeout: float, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """`docker <args>` against this engine, bounded in time."""
        env = kwargs.pop("env", None) or self.env
        result = subprocess.run([self.docker, *args], env=env, capture_output=True, text=True, timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} ... exited {result.returncode}:\n"
                               f"{(result.stdout + result.stderr)[-3000:]}")
        return result

    def stop(self) -> list[str]:
        """Remove every container, stop dockerd (SIGTERM, SIGKILL after 20 s) and what it started, delete the
        bridge, restore ip_forward. Never raises; returns what could not be cleaned ([] when all went)."""
        problems = []
        if self.process is not None and self.process.poll() is None:
            try:
                ids = self.docker_run(["ps", "-aq"], timeout=30, check=False).stdout.split()
                if ids:
                    self.docker_run(["rm", "-f", *ids], timeout=60, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                problems.append(f"removing containers: {exc}")
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        for pid in self._own_processes():  # containerd, shims, docker-proxy started under our exec root
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        for mount in self._own_mounts():  # overlay or netns mounts a killed dockerd could leave
            subprocess.run(["umount", "-l", mount], capture_output=True, timeout=10)
        if bridge_exists():
            subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, timeout=10)
        if self.ip_forward_before is not None and IP_FORWARD.read_text().strip() != self.ip_forward_before:
            IP_FORWARD.write_text(self.ip_forward_before + "\n")
        problems += self.leftovers()
        return problems

    def _own_processes(self) -> list[int]:
        """Processes whose command line names this run's directories (containerd, shims, docker-proxy)."""
        marks = (str(self.run), str(self.state))
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(mark in cmdline for mark in marks):
                found.append(int(entry.name))
        return found

    def _own_mounts(self) -> list[str]:
        marks = (str(self.run), str(self.state))
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        return sorted((m for m in mounts if m.startswith(marks)), key=len, reverse=True)

    def leftovers(self) -> list[str]:
        found = [f"process {pid}" for pid in self._own_processes()]
        if self.process is not None and self.process.poll() is None:
            found.append(f"dockerd {self.process.pid}")
        if bridge_exists():
            found.append(f"bridge {BRIDGE}")
        found += [f"mount {m}" for m in self._own_mounts()]
        found += iptables_docker_rules()
        if self.ip_forward_before is not None and IP_FORWARD.read_text().strip() != self.ip_forward_before:
            found.append(f"ip_forward is {IP_FORWARD.read_text().strip()}, was {self.ip_forward_before}")
        return found

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc) -> None:
        problems = self.stop()
        if problems:
            self.log("left behind: " + "; ".join(problems))
