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
    into: str  # the line(s) it moves under (ending with the def of the function that needs it), one level in
    why: str

    @property
    def moved(self) -> str:
        """The import as it reads in its new place: indented one level deeper than the def it follows."""
        last = self.into.rstrip("\n").rsplit("\n", 1)[-1]
        return " " * (len(last) - len(last.lstrip()) + 4) + self.line


DEFERRED = (
    # urllib3 2.x imports importlib.metadata (and with it zipfile and email parsing) on import, only to check
    # h2's version when a program opts into HTTP/2 with inject_into_urllib3(); botocore never does. Measured
    # on the layer: 0.8 MiB of RSS after the prefetch and ~8 ms of INIT (3 items: 229 -> 221 ms, 40.7 -> 39.9 MiB).
    DeferredImport("urllib3/http2/__init__.py", "from importlib.metadata import version\n",
                   "def inject_into_urllib3() -> None:\n", "importlib.metadata for an opt-in HTTP/2 check"),
    # botocore's docstrings are lazy (LazyLoadedDocstring renders one when help() or __doc__ reads it), but the
    # modules that render them load on import: botocore.docs' package imports its whole service documenter
    # for generate_docs(), docstring.py the method, paginator and waiter documenters and the RST writer. The
    # extension never reads a docstring. Measured on the layer, 3 items, median of 7: RSS after the prefetch
    # 39.9 -> 38.6 MiB, INIT 205 -> 196 ms.
    DeferredImport("botocore/docs/__init__.py", "from botocore.docs.service import ServiceDocumenter\n",
                   "def generate_docs(root_dir, session):\n", "the service documenter for generate_docs()"),
    DeferredImport("botocore/docs/docstring.py", "from botocore.docs.bcdoc.restdoc import DocumentStructure\n",
                   "    def _create_docstring(self):\n", "the RST writer, for a docstring read"),
    DeferredImport("botocore/docs/docstring.py", "from botocore.docs.method import document_model_driven_method\n",
                   "class ClientMethodDocstring(LazyLoadedDocstring):\n    def _write_docstring(self, *args, **kwargs):\n",
                   "the method documenter, for a docstring read"),
    DeferredImport("botocore/docs/docstring.py", "from botocore.docs.waiter import document_wait_method\n",
                   "class WaiterDocstring(LazyLoadedDocstring):\n    def _write_docstring(self, *args, **kwargs):\n",
                   "the waiter documenter, for a docstring read"),
    DeferredImport("botocore/docs/docstring.py", "from botocore.docs.paginator import document_paginate_method\n",
                   "class PaginatorDocstring(LazyLoadedDocstring):\n    def _write_docstring(self, *args, **kwargs):\n",
                   "the paginator documenter, for a docstring read"),
)


def apply(packages: Path, *, log=print) -> list[DeferredImport]:
    """Apply every edit that fits; returns the ones skipped."""
    skipped = []
    for edit in DEFERRED:
        path = packages / edit.path
        text = path.read_text() if path.exists() else ""
        if edit.into + edit.moved in text:
            continue  # applied already
        if not text.startswith(edit.line) and "\n" + edit.line not in text or edit.into not in text:
            log(f"vendor patch skipped ({edit.why}): {edit.path} no longer has the line it moves")
            skipped.append(edit)
            continue
        text = text[len(edit.line):] if text.startswith(edit.line) else text.replace("\n" + edit.line, "\n", 1)
        text = text.replace(edit.into, edit.into + edit.moved, 1)
        path.write_text(text)
    return skipped
