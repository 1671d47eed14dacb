"""Entry point: register with the Extensions API first, then hand over to the runner.

Lambda's INIT waits for every extension, and it is billed: registration uses the standard library's
socket and json only, and everything heavier is imported after it. Before even that, core dumps are
turned off (hardening.py): the token is in the environment from the start.
"""

from __future__ import annotations

import gc
import os
import sys
import time

from . import hardening, malloc, modes
from .lifecycle import ExtensionsApi, ExtensionsApiError

EXTENSION_NAME = "cache-extension"


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    # INIT is CPU-bound module loading: no cyclic collections while it runs (they find next to nothing to free
    # in freshly loaded modules). runner.py turns them back on, with what INIT loaded frozen, when INIT is over.
    gc.disable()
    argv = sys.argv if argv is None else argv
    name = argv[1] if len(argv) > 1 and argv[1] else EXTENSION_NAME
    problems = [f"core dumps left on: {problem}" for problem in hardening.disable_core_dumps()]
    arenas = malloc.one_arena()
    if arenas:
        problems.append(f"malloc arenas left as they are: {arenas}")
    if problems and os.environ.get("CACHE_EXTENSION_LOG_LEVEL", "").strip().lower() == "debug":
        # Logging is configured later (runner.run), from settings this early start does not load yet.
        for problem in problems:
            print(f"DEBUG [cache-extension] {problem}", file=sys.stderr, flush=True)
    mode = modes.detect(os.environ)
    try:
        api = ExtensionsApi(os.environ.get("AWS_LAMBDA_RUNTIME_API", ""), name)
        api.register(list(mode.events))
    except ExtensionsApiError as exc:
        print(f"ERROR [{name}] could not register with the Extensions API: {exc}", file=sys.stderr, flush=True)
        return 1
    from .runner import run

    return run(api, mode, started, time.monotonic())
