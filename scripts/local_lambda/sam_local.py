"""`scripts/sam-local-check`: `sam local invoke` for real, on a private Docker engine with locally built stand-ins
of Lambda's images (local_lambda.docker_engine, local_lambda.standin_images), and the project's Dockerfile
built and run through RIE. Linux and root only.

Steps, every one bounded in time, and the whole run by --deadline (then everything is cleaned up all the same):
  1. docker.io and debootstrap from Debian's packages if missing; a private dockerd (bridge samlocal0, no
     iptables, no forwarding: traffic stays on loopback and that bridge)
  2. the stand-in public.ecr.aws/lambda/python:3.12-x86_64 (cached in .venv/tools/docker while its recipe holds)
  3. moto on the bridge's address with the sample's parameter, secret and item
  4. `sam build PythonExampleFunction`, then `sam local invoke PythonExampleFunction --skip-pull-image --shutdown`
     and once more without --shutdown (moto as host.docker.internal, --add-host host.docker.internal:host-gateway),
     with SAM_CLI_TELEMETRY=0 and AWS_ENDPOINT_URL_STS at moto: the response
     holds the sample values, the extension's log says it served them, no ERROR, no secret value anywhere
  5. `docker build` of the Dockerfile with a local build stage, the image invoked through RIE
     (local_lambda.dockerfile_check; --no-dockerfile skips it)
  6. the Node.js example with the standalone layer on a Node.js stand-in (local_lambda.nodejs_check;
     --no-nodejs skips it)
  7. always: containers, dockerd, the bridge and ip_forward as they were; what is left is reported and fails
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from local_lambda import docker_engine, standin_images
from local_lambda.aws import SAMPLE_ITEM, SAMPLE_PARAMETER, SAMPLE_SECRET, MotoServer, create_sample_resources

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".venv" / "tools" / "docker"
REGION = "us-west-2"
FUNCTION = "PythonExampleFunction"
SAM_INSTALL_TIMEOUT = 900


class CheckFailed(AssertionError):
    """A step did not do what it should; the message says what and shows the output."""


class Deadline(Exception):
    pass


def sam_path(log=print) -> Path:
    """The SAM CLI from .venv-sam (scripts/check-template installs it on first use)."""
    result = subprocess.run([str(ROOT / "scripts" / "check-template"), "--sam-path"], capture_output=True, text=True,
                            timeout=SAM_INSTALL_TIMEOUT, env={**os.environ, "PYTHON": sys.executable})
    if result.returncode != 0:
        raise CheckFailed(f"no SAM CLI: {result.stderr[-2000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def unavailable_reason() -> str | None:
    """Why the tier cannot run on this machine (None: it can)."""
    from local_lambda import dockerfile_check, rie

    reason = docker_engine.unavailable_reason()
    if reason is not None:
        return reason
    for version, home in dockerfile_check.PYTHONS.items():
        if not (home / "bin" / f"python{version}").is_file():
            return f"no CPython {version} at {home} (pyenv's) for the stand-in images"
    if not rie.installed() and shutil.which("go") is None:
        return "aws-lambda-rie is not installed and `go` is not on PATH to install it"
    if shutil.which("node") is None:
        return "no `node` on PATH for the Node.js stand-in (--no-nodejs skips that step)"
    return None


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


EXPECTED = {
    "parameter": SAMPLE_PARAMETER[1],
    "secret": {"length": len(SAMPLE_SECRET[1].encode()), "sha256": sha256(SAMPLE_SECRET[1])},
    "secretFromReference": {"length": len(SAMPLE_SECRET[1].encode()), "sha256": sha256(SAMPLE_SECRET[1])},
}


def check_response(label: str, text: str, logs: str) -> dict:
    """The example's answer, with the sample values; `text` is what the invoke printed on stdout."""
    try:
        body = json.loads(text.strip().splitlines()[-1]) if text.strip() else None
    except ValueError:
        body = None
    if not isinstance(body, dict) or "item" not in body:
        raise CheckFailed(f"{label}: not the example's answer: {text[-500:]!r}\nlogs:\n{logs[-6000:]}")
    got = {key: body.get(key) for key in EXPECTED}
    if got != EXPECTED or body["item"].get("Data") != SAMPLE_ITEM["Data"]["S"]:
        raise CheckFailed(f"{label}: unexpected values {body!r}\nlogs:\n{logs[-6000:]}")
    return body


def check_logs(label: str, logs: str, *, shutdown: bool) -> list[str]:
    """The extension's own lines: it prefetched and served, and logged no ERROR (with or without --shutdown)."""
    lines = [line for line in logs.splitlines() if "[cache-extension]" in line]
    for needed in (r"prefetched 4 items .*\(0 failed", r"ready on 127\.0\.0\.1:4000"):
        if not any(re.search(needed, line) for line in lines):
            raise CheckFailed(f"{label}: no line matching {needed!r} in the extension's log:\n{logs[-6000:]}")
    errors = [line for line in lines if line.startswith(("ERROR", "CRITICAL")) or "lost the Extensions API" in line]
    if errors:
        raise CheckFailed(f"{label}: the extension logged errors: {errors}\n{logs[-6000:]}")
    if shutdown and not any("shutdown (" in line for line in lines):
        raise CheckFailed(f"{label}: with --shutdown the extension should see SHUTDOWN:\n{logs[-6000:]}")
    return lines


def check_no_secret(*texts: str) -> None:
    secret = SAMPLE_SECRET[1]
    forms = {secret, json.dumps(secret)[1:-1], secret.encode().hex()}
    if any(form in text for text in texts for form in forms):
        raise CheckFailed("a secret value appeared in the output (not shown)")


class Check:
    """One run of the tier; `report` collects times, outputs and sizes for the summary."""

    def __init__(self, args, log=print) -> None:
        self.args, self.log = args, log
        self.report: dict = {"steps": {}, "invokes": []}
        self.work = Path(tempfile.mkdtemp(prefix="sam-local-"))
        self.engine: docker_engine.Engine | None = None
        self.moto: MotoServer | None = None

    def step(self, name: str, function, *args):
        started = time.monotonic()
        self.log(f"== {name}")
        try:
            return function(*args)
        finally:
            self.report["steps"][name] = round(time.monotonic() - started, 1)

    def run(self) -> dict:
        started = time.monotonic()
        try:
            self.step("packages", lambda: docker_engine.install_packages(log=self.log))
            self.engine = docker_engine.Engine(STATE, self.work / "run", log=self.log)
            self.step("dockerd", self.engine.start)
            tags = [standin_images.PYTHON_IMAGE, *dockerfile_final_tags()]
            self.step("stand-in images", lambda: standin_images.python_image(self.engine, tags, log=self.log))
            self.step("moto", self.start_moto)
            sam = self.step("SAM CLI", sam_path)
            build = self.step("sam build", self.sam_build, sam)
            self.step("sam local invoke --shutdown", self.invoke, sam, build, True)
            self.step("sam local invoke (no --shutdown)", self.invoke, sam, build, False)
            if self.args.dockerfile:
                from local_lambda import dockerfile_check

                self.step("Dockerfile", dockerfile_check.run, self.engine, self.moto, self.work, self.report, self.log)
            if self.args.nodejs:
                from local_lambda import nodejs_check

                self.step("Node.js (standalone layer)", nodejs_check.run, self, sam)
        finally:
            self.report["steps"]["cleanup"] = 0.0
            cleanup_started = time.monotonic()
            problems = self.cleanup()
            self.report["steps"]["cleanup"] = round(time.monotonic() - cleanup_started, 1)
            self.report["seconds"] = round(time.monotonic() - started, 1)
            self.report["left_behind"] = problems
        if problems:
            raise CheckFailed("left behind: " + "; ".join(problems))
        return self.report

    def start_moto(self) -> None:
        self.moto = MotoServer(host=self.engine.gateway).start()
        create_sample_resources(self.moto, REGION)
        self.report["moto"] = self.moto.endpoint

    def sam_env(self) -> dict[str, str]:
        """The SAM CLI's environment: this engine, telemetry off, dummy credentials with a session token (the
        extension checks requests against it), STS (the account id SAM asks for) and every other AWS call at moto.
        Nothing of the developer's AWS configuration."""
        env = {k: v for k, v in self.engine.env.items() if not k.startswith("AWS_")}
        env.update({"SAM_CLI_TELEMETRY": "0", "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                    "AWS_SESSION_TOKEN": f"sam-local-{uuid.uuid4().hex}", "AWS_DEFAULT_REGION": REGION,
                    "AWS_REGION": REGION, "AWS_ENDPOINT_URL_STS": self.moto.endpoint, "AWS_ENDPOINT_URL": self.moto.endpoint,
                    "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    "PYTHON": sys.executable, "NO_PROXY": f"127.0.0.1,localhost,{self.engine.gateway}",
                    "SAM_CLI_CONTEXT_DIR": str(self.work / "sam-home")})
        # SAM's own files (~/.aws-sam) and its lock files (in the temporary directory: a SAM killed mid-build
        # would leave one that blocks the next run for 5 minutes) stay in this run's directory.
        env["HOME"], env["TMPDIR"] = str(self.work / "home"), str(self.work / "tmp")
        for directory in (env["HOME"], env["TMPDIR"]):
            Path(directory).mkdir(exist_ok=True)
        return env

    def sam_build(self, sam: Path) -> Path:
        out = self.work / "build"
        result = run_bounded([str(sam), "build", FUNCTION, "--template-file", str(ROOT / "template.yaml"),
                              "--build-dir", str(out), "--parameter-overrides", "Architecture=x86_64"],
                             env=self.sam_env(), timeout=600, cwd=ROOT)
        if result.returncode != 0:
            raise CheckFailed(f"sam build exited {result.returncode}:\n{(result.stdout + result.stderr)[-4000:]}")
        return out

    def invoke(self, sam: Path, build: Path, shutdown: bool) -> None:
        """With --shutdown, moto by the bridge's address; without, by host.docker.internal and
        --add-host host.docker.internal:host-gateway (docs/sam.md's recipe for Linux)."""
        endpoint = self.moto.endpoint if shutdown else self.moto.endpoint.replace(self.engine.gateway, "host.docker.internal")
        env_vars = self.work / "env.json"
        env_vars.write_text(json.dumps({FUNCTION: {
            "AWS_ENDPOINT_URL": endpoint, "CACHE_EXTENSION_LOG_LEVEL": "debug",
            "CACHE_EXTENSION_INIT_STARTUP": "true", "CACHE_EXTENSION_TTL": "30s"}}))
        command = [str(sam), "local", "invoke", FUNCTION, "--template", str(build / "template.yaml"),
                   "--event", str(ROOT / "events" / "invoke.json"), "--env-vars", str(env_vars),
                   "--skip-pull-image", "--region", REGION]
        command += ["--shutdown"] if shutdown else ["--add-host", "host.docker.internal:host-gateway"]
        label = "sam local invoke" + (" --shutdown" if shutdown else "")
        started = time.monotonic()
        result = run_bounded(command, env=self.sam_env(), timeout=180, cwd=self.work)
        seconds = round(time.monotonic() - started, 1)
        check_no_secret(result.stdout, result.stderr)
        if result.returncode != 0:
            raise CheckFailed(f"{label} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-6000:]}")
        body = check_response(label, result.stdout, result.stderr)
        lines = check_logs(label, result.stderr, shutdown=shutdown)
        debug_gone = [line for line in lines if "went away" in line]
        self.report["invokes"].append({"command": label, "endpoint": endpoint, "seconds": seconds, "response": body,
                                       "extension_log": lines, "api_went_away_lines": debug_gone,
                                       "sam_stderr_tail": result.stderr.splitlines()[-12:]})
        self.log(f"{label}: {seconds} s, {json.dumps(body)}")

    def cleanup(self) -> list[str]:
        """Bounded by its own timeouts; neither --deadline nor a signal may cut it short."""
        signal.alarm(0)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        problems = []
        if self.moto is not None:
            self.moto.stop()
        if self.engine is not None:
            if self.engine.process is not None and self.engine.process.poll() is None:
                prune_sam_images(self.engine)
            problems += self.engine.stop()
            self.report["disk"] = disk_usage(STATE)
        shutil.rmtree(self.work, ignore_errors=True)
        return problems


def dockerfile_final_tags() -> list[str]:
    """The final stage's base image of the Dockerfile, tagged on the same stand-in."""
    froms = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+\S+)?\s*$", (ROOT / "Dockerfile").read_text(), re.MULTILINE | re.IGNORECASE)
    return [froms[-1]] if froms and "$" not in froms[-1] else []


def prune_sam_images(engine) -> None:
    """SAM's per-layer images (samcli/lambda-...) and dangling layers: rebuilt cheaply, so not kept."""
    listed = engine.docker_run(["images", "--format", "{{.Repository}}:{{.Tag}}"], timeout=30, check=False).stdout.split()
    sam_images = [image for image in listed if image.startswith("samcli/")]
    if sam_images:
        engine.docker_run(["rmi", "-f", *sam_images], timeout=120, check=False)
    engine.docker_run(["image", "prune", "-f"], timeout=120, check=False)
    engine.docker_run(["builder", "prune", "-f"], timeout=120, check=False)


def disk_usage(path: Path) -> str:
    result = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True, timeout=120)
    return result.stdout.split()[0] if result.returncode == 0 else "?"


def run_bounded(command: list[str], *, env: dict, timeout: float, cwd: Path) -> subprocess.CompletedProcess:
    """subprocess.run in a session of its own: on timeout its whole group is killed, not only the child."""
    process = subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="scripts/sam-local-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-dockerfile", dest="dockerfile", action="store_false",
                        help="skip step 5 (the Dockerfile's build and run)")
    parser.add_argument("--no-nodejs", dest="nodejs", action="store_false",
                        help="skip step 6 (the Node.js example with the standalone layer on a Node.js stand-in)")
    parser.add_argument("--deadline", type=float, default=1500, help="seconds for the whole run (default 1500)")
    parser.add_argument("--report", type=Path, help="write the run's report (JSON) there")
    args = parser.parse_args(argv)
    reason = unavailable_reason()
    if reason is not None and not (reason.startswith("no `node`") and not args.nodejs):
        print(f"sam-local-check cannot run here: {reason}", file=sys.stderr)
        return 3

    def on_signal(signum, frame):
        raise Deadline(f"stopped by signal {signum}" if signum != signal.SIGALRM else f"past --deadline {args.deadline} s")

    for signum in (signal.SIGTERM, signal.SIGALRM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    signal.alarm(int(args.deadline))
    check = Check(args, log=lambda message: print(message, file=sys.stderr, flush=True))
    try:
        report = check.run()
        code = 0
    except (Exception, Deadline) as exc:  # noqa: BLE001 - whatever failed, the report says it (cleanup already ran)
        print(f"sam-local-check FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        report, code = {**check.report, "failure": str(exc)[-4000:]}, 1
    finally:
        signal.alarm(0)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    print(json.dumps({"seconds": report.get("seconds"), "steps": report.get("steps"), "disk": report.get("disk"),
                      "left_behind": report.get("left_behind")}, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
