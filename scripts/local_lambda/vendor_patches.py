"""Edits to vendored packages at layer build: an import that only an unused, opt-in feature needs is moved
into that feature, so a cold start does not pay for it.

Each edit names the exact line it moves and the line it moves it under. When a new version of the package
no longer has that line, the edit is skipped (the layer stays correct, only slower) and the build says so;
tests/test_layer.py fails then, so that the edit is updated or dropped rather than silently lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class DeferredImport(NamedTuple):
    path: str  # relative to the vendored packages' directory
    line: str  # the module-level import, moved
    into: str  # the line it moves under (the function that needs it), indented one level there
    why: str


DEFERRED = (
    # urllib3 2.x imports importlib.metadata (and with it zipfile and email parsing) on import, only to check
    # h2's version when a program opts into HTTP/2 with inject_into_urllib3(); botocore never does. Measured
    # on the layer: 0.8 MiB of RSS after the prefetch and ~8 ms of INIT (3 items: 229 -> 221 ms, 40.7 -> 39.9 MiB).
    DeferredImport("urllib3/http2/__init__.py", "from importlib.metadata import version\n",
                   "def inject_into_urllib3() -> None:\n", "importlib.metadata for an opt-in HTTP/2 check"),
)


def apply(packages: Path, *, log=print) -> list[DeferredImport]:
    """Apply every edit that fits; returns the ones skipped."""
    skipped = []
    for edit in DEFERRED:
        path = packages / edit.path
        text = path.read_text() if path.exists() else ""
        if edit.into + "    " + edit.line in text:
            continue  # applied already
        if not text.startswith(edit.line) and "\n" + edit.line not in text or edit.into not in text:
            log(f"vendor patch skipped ({edit.why}): {edit.path} no longer has the line it moves")
            skipped.append(edit)
            continue
        text = text[len(edit.line):] if text.startswith(edit.line) else text.replace("\n" + edit.line, "\n", 1)
        text = text.replace(edit.into, edit.into + "    " + edit.line, 1)
        path.write_text(text)
    return skipped
