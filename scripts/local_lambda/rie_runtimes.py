"""Runtimes other than Python under AWS's RIE (rie.py), each with AWS's own runtime interface client, laid out as
Lambda's images lay them out, and with no python3 anywhere on PATH (what a function on the standalone layer has).

    nodejs_runtime(...)    Node.js under aws-lambda-ric from npm (native code: built by npm install here)
    java_runtime(...)      Java under com.amazonaws:aws-lambda-java-runtime-interface-client from Maven Central
    provided_runtime(...)  a provided.al2023 `bootstrap` (the Go example), nothing but the binary
    build_go_bootstrap()   function-example/go built with its documented command
    install_node_ric() / install_java_ric()   the two clients into .venv/tools, once
                           (both: `python -m local_lambda.rie_runtimes install`, which scripts/_venv.sh runs)

Each *_runtime returns what python_runtime returns: RIE's command, the environment, the binds (namespace path ->
host path) and the files (namespace path -> text) for rie.RieEnvironment. PATH is /var/lang/bin alone, where the
runtime's own binaries are bound: /usr/bin (which has a python3 here) is not on it. Every runtime starts through a
small sh bootstrap that says on its first line whether python3 can be found on that PATH (NO_PYTHON_LINE).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from local_lambda.rie import LAMBDA_LD_LIBRARY_PATH, ROOT

TOOLS = ROOT / ".venv" / "tools"
# 4.0.2 declares node >= 22 (npm only warns) and runs on this machine's Node 20, as the test shows; 3.x would run
# autoreconf to build its curl, and autoconf, automake and libtool are not installed here.
NODE_RIC_VERSION = "4.0.2"
NODE_RIC_DIR = TOOLS / f"aws-lambda-ric-{NODE_RIC_VERSION}"  # an npm prefix: node_modules/aws-lambda-ric
JAVA_RIC = ("com.amazonaws", "aws-lambda-java-runtime-interface-client", "2.10.1")
JAVA_RIC_DIR = TOOLS / f"aws-lambda-java-ric-{JAVA_RIC[2]}"  # lib/*.jar: the client and its dependencies
MAVEN_DEPENDENCY_PLUGIN = "3.8.1"
GO_EXAMPLE = ROOT / "function-example" / "go"
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}

LANG_BIN = "/var/lang/bin"
NO_PYTHON_LINE = "rie-runtime: no python3 on PATH"
# Lambda's NODE_PATH: the layer's modules (the client), then the runtime's.
NODE_PATH = "/opt/nodejs/node{0}/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules:/var/runtime:/var/task"

# The first lines of every bootstrap: the check that no python3 is reachable, from inside the namespace; then
# what Lambda gives every runtime and classic RIE does not (the clients need the task root).
_CHECK = f"""#!/bin/sh
if found=$(command -v python3); then echo "rie-runtime: python3 on PATH at $found" >&2; else echo "{NO_PYTHON_LINE}" >&2; fi
export _HANDLER="${{1:-$_HANDLER}}" LAMBDA_TASK_ROOT="${{LAMBDA_TASK_ROOT:-/var/task}}" \
  LAMBDA_RUNTIME_DIR="${{LAMBDA_RUNTIME_DIR:-/var/runtime}}"
"""
# Lambda's nodejs images: node at /var/lang/bin, the client's entry point run on the handler (_HANDLER; RIE classic
# mode gives it as the last argument).
NODE_BOOTSTRAP = _CHECK + "exec /var/lang/bin/node /var/runtime/node_modules/aws-lambda-ric/index.mjs\n"
# Lambda's java images: the JDK at /var/lang, the client's jars at /var/runtime/lib; the client loads the function
# from /var/task (classes and lib/*.jar) and /opt/java/lib itself.
JAVA_BOOTSTRAP = _CHECK + ("exec /var/lang/bin/java -XX:+TieredCompilation -XX:TieredStopAtLevel=1 -Xshare:auto "
                           "-cp '/var/runtime/lib/*' com.amazonaws.services.lambda.runtime.api.client.AWSLambda "
                           '"$_HANDLER"\n')
# provided.al2023: Lambda runs the function's own bootstrap.
PROVIDED_BOOTSTRAP = _CHECK + "exec /var/task/bootstrap\n"


class RuntimeUnavailable(RuntimeError):
    """A runtime or its client cannot be had here; the message says why."""


class BuildError(RuntimeError):
    """A function did not build (its tools are here)."""


def _env() -> dict[str, str]:
    return {"PATH": LANG_BIN, "LD_LIBRARY_PATH": LAMBDA_LD_LIBRARY_PATH, "LANG": "en_US.UTF-8", "TZ": ":UTC"}


def _which(name: str) -> Path:
    found = shutil.which(name)
    if found is None:
        raise RuntimeUnavailable(f"`{name}` is not on PATH")
    return Path(found).resolve()


def lang_dir(work: Path, binaries: dict[str, Path]) -> Path:
    """A directory to bind at /var/lang whose bin/ holds symlinks to these binaries only (resolved in the
    namespace, where /usr is the machine's): the runtime's interpreter on PATH, and nothing else."""
    bin_dir = Path(work) / "lang" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, target in binaries.items():
        link = bin_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    return bin_dir.parent


def nodejs_runtime(handler: str, work: Path, *, ric_dir: Path = NODE_RIC_DIR):
    """Node.js (this machine's `node`) under aws-lambda-ric (installed by install_node_ric) at
    /var/runtime/node_modules. work: a directory for the /var/lang tree."""
    modules = Path(ric_dir) / "node_modules"
    if not (modules / "aws-lambda-ric" / "index.mjs").is_file():
        raise RuntimeUnavailable(f"aws-lambda-ric is not installed in {ric_dir} (install_node_ric())")
    major = node_version().split(".")[0].lstrip("v")
    env = {**_env(), "NODE_PATH": NODE_PATH.format(major), "AWS_EXECUTION_ENV": f"AWS_Lambda_nodejs{major}.x"}
    binds = {"/var/lang": lang_dir(work, {"node": _which("node")}), "/var/runtime/node_modules": modules}
    return ["/var/runtime/bootstrap", handler], env, binds, {"/var/runtime/bootstrap": NODE_BOOTSTRAP}


def node_version() -> str:
    """`node --version` of the node on PATH ("v20.20.2"): the native addon aws-lambda-ric builds is for it alone."""
    result = subprocess.run([str(_which("node")), "--version"], capture_output=True, text=True, timeout=30)
    return result.stdout.strip()


def java_home() -> Path:
    """The JDK of the `java` on PATH (its bin/ has java, javac, ...: no python3)."""
    home = _which("java").parent.parent
    if not (home / "bin" / "java").is_file():
        raise RuntimeUnavailable(f"no JDK around {_which('java')}")
    return home


def java_runtime(handler: str, *, ric_dir: Path = JAVA_RIC_DIR):
    """Java (the JDK of `java` on PATH, bound whole at /var/lang as in Lambda's images) under AWS's runtime
    interface client and its dependencies (install_java_ric) at /var/runtime/lib."""
    lib = Path(ric_dir) / "lib"
    if not any(lib.glob(f"{JAVA_RIC[1]}-*.jar")):
        raise RuntimeUnavailable(f"{JAVA_RIC[1]} is not installed in {ric_dir} (install_java_ric())")
    home = java_home()
    release = (home / "release").read_text() if (home / "release").is_file() else ""
    major = re.search(r'JAVA_VERSION="(?:1\.)?(\d+)', release)
    env = {**_env(), "JAVA_HOME": "/var/lang", "AWS_EXECUTION_ENV": f"AWS_Lambda_java{major.group(1) if major else ''}"}
    binds = {"/var/lang": home, "/var/runtime/lib": lib}
    return ["/var/runtime/bootstrap", handler], env, binds, {"/var/runtime/bootstrap": JAVA_BOOTSTRAP}


def provided_runtime():
    """provided.al2023: the function's `bootstrap` in /var/task is the runtime; /var/lang/bin is empty."""
    env = {**_env(), "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023"}
    return ["/var/runtime/bootstrap", "bootstrap"], env, {}, {"/var/runtime/bootstrap": PROVIDED_BOOTSTRAP}


# -- what the runtimes need, installed once into .venv/tools ---------------------------------------


def _run(command: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None, what: str) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeUnavailable(f"{what}: no result within {timeout:.0f} s") from None
    if result.returncode != 0:
        raise RuntimeUnavailable(f"{what} failed ({result.returncode}): {(result.stdout + result.stderr).strip()[-3000:]}")


def _stamp(directory: Path) -> Path:
    return directory / ".installed"


def install_node_ric(*, log=print, timeout: float = 900) -> Path:
    """`npm install aws-lambda-ric@NODE_RIC_VERSION` into NODE_RIC_DIR, once. Its install scripts build curl and
    aws-lambda-cpp from the sources in the package, then the addon with node-gyp: cmake, make and a C++ compiler."""
    stamp = f"{NODE_RIC_VERSION} {node_version()}\n"  # a new node needs the addon built again
    if _stamp(NODE_RIC_DIR).is_file() and _stamp(NODE_RIC_DIR).read_text() == stamp:
        return NODE_RIC_DIR
    npm = str(_which("npm"))
    for tool in ("cmake", "make", "g++"):
        _which(tool)
    log(f"installing aws-lambda-ric {NODE_RIC_VERSION} into {NODE_RIC_DIR} (it builds native code)")
    shutil.rmtree(NODE_RIC_DIR, ignore_errors=True)
    NODE_RIC_DIR.mkdir(parents=True)
    (NODE_RIC_DIR / "package.json").write_text('{"private": true}\n')
    env = {**os.environ, "MAKEFLAGS": f"-j{os.cpu_count() or 1}"}
    _run([npm, "install", "--no-audit", "--no-fund", "--no-save", "--loglevel=error",
          f"aws-lambda-ric@{NODE_RIC_VERSION}"], cwd=NODE_RIC_DIR, env=env, timeout=timeout,
         what=f"npm install aws-lambda-ric@{NODE_RIC_VERSION}")
    if not list((NODE_RIC_DIR / "node_modules" / "aws-lambda-ric").rglob("rapid-client.node")):
        raise RuntimeUnavailable("npm install aws-lambda-ric built no rapid-client.node")
    _stamp(NODE_RIC_DIR).write_text(stamp)
    return NODE_RIC_DIR


JAVA_RIC_POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by scripts/local_lambda/rie_runtimes.py: only to fetch AWS's Java runtime interface client. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local</groupId>
  <artifactId>rie-java-runtime</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>{0}</groupId><artifactId>{1}</artifactId><version>{2}</version></dependency>
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId><artifactId>maven-dependency-plugin</artifactId><version>{3}</version>
  </plugin></plugins></build>
</project>
"""


def install_java_ric(*, log=print, timeout: float = 600) -> Path:
    """The Java runtime interface client and its dependencies into JAVA_RIC_DIR/lib, once: Maven resolves them
    (into ~/.m2, so a second install is offline) and `dependency:copy-dependencies` copies the jars."""
    if _stamp(JAVA_RIC_DIR).is_file():
        return JAVA_RIC_DIR
    mvn = str(_which("mvn"))
    log(f"fetching {':'.join(JAVA_RIC)} into {JAVA_RIC_DIR} with Maven")
    shutil.rmtree(JAVA_RIC_DIR, ignore_errors=True)
    JAVA_RIC_DIR.mkdir(parents=True)
    (JAVA_RIC_DIR / "pom.xml").write_text(JAVA_RIC_POM.format(*JAVA_RIC, MAVEN_DEPENDENCY_PLUGIN))
    _run([mvn, "-B", "-q", "dependency:copy-dependencies", "-DincludeScope=runtime",
          f"-DoutputDirectory={JAVA_RIC_DIR / 'lib'}"], cwd=JAVA_RIC_DIR, timeout=timeout,
         what=f"mvn dependency:copy-dependencies of {JAVA_RIC[1]}")
    if not any((JAVA_RIC_DIR / "lib").glob(f"{JAVA_RIC[1]}-*.jar")):
        raise RuntimeUnavailable(f"Maven copied no {JAVA_RIC[1]} jar")
    _stamp(JAVA_RIC_DIR).write_text(JAVA_RIC[2] + "\n")
    return JAVA_RIC_DIR


def go_build_command(arch: str) -> tuple[list[str], dict[str, str]]:
    """function-example/go's documented build: GOOS=linux GOARCH=... CGO_ENABLED=0 go build -tags lambda.norpc."""
    env = {"GOOS": "linux", "GOARCH": GO_ARCH.get(arch, arch), "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    return ["go", "build", "-tags", "lambda.norpc", "-o", "bootstrap", "."], env


def build_go_bootstrap(out_dir: Path, *, example: Path = GO_EXAMPLE, timeout: float = 600) -> Path:
    """function-example/go built as a provided.al2023 `bootstrap` for this machine, into out_dir (modules from
    the Go module proxy, cached in Go's own module and build caches)."""
    if not (example / "go.mod").is_file():
        raise RuntimeUnavailable(f"{example} has no go.mod: the Go example is not in this tree")
    go = str(_which("go"))
    command, build_env = go_build_command(os.uname().machine)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [go, *command[1:-3], "-o", str(out_dir / "bootstrap"), "."]
    try:
        _run(command, cwd=example, env={**os.environ, **build_env}, timeout=timeout, what="go build of function-example/go")
    except RuntimeUnavailable as exc:  # Go is here: the example itself does not build
        raise BuildError(str(exc)) from None
    return out_dir / "bootstrap"


def main(argv: list[str]) -> int:
    if argv[:1] == ["install"]:
        failed = 0
        for step in (install_node_ric, install_java_ric):
            try:
                print(step(log=lambda message: print(message, file=sys.stderr)))
            except RuntimeUnavailable as exc:
                print(f"not installed: {exc}", file=sys.stderr)
                failed = 1
        return failed
    print("usage: python -m local_lambda.rie_runtimes install   (aws-lambda-ric from npm and AWS's Java runtime "
          "interface client from Maven Central into .venv/tools)")
    return 0 if argv[:1] in (["-h"], ["--help"]) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
