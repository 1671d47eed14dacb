"""Entry point: register with the Extensions API first, then hand over to the runner.

Lambda's INIT waits for every extension, and it is billed: registration uses the standard library's
socket and json only, and everything heavier is imported after it. Before even that, core dumps are
turned off (hardening.py): the token is in the environment from the start.
"""

from __future__ import annotations

import os
import sys
import time

from . import hardening, modes
from .lifecycle import ExtensionsApi, ExtensionsApiError

EXTENSION_NAME = "cache-extension"


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    argv = sys.argv if argv is None else argv
    name = argv[1] if len(argv) > 1 and argv[1] else EXTENSION_NAME
    problems = hardening.disable_core_dumps()
    if problems and os.environ.get("CACHE_EXTENSION_LOG_LEVEL", "").strip().lower() == "debug":
        # Logging is configured later (runner.run), from settings this early start does not load yet.
        for problem in problems:
            print(f"DEBUG [cache-extension] core dumps left on: {problem}", file=sys.stderr, flush=True)
    mode = modes.detect(os.environ)
    try:
        api = ExtensionsApi(os.environ.get("AWS_LAMBDA_RUNTIME_API", ""), name)
        api.register(list(mode.events))
    except ExtensionsApiError as exc:
        print(f"ERROR [{name}] could not register with the Extensions API: {exc}", file=sys.stderr, flush=True)
        return 1
    from .runner import run

    return run(api, mode, started, time.monotonic())
