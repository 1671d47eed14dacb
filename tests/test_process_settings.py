"""What the extension sets about its own process for a lean INIT: one malloc arena (malloc.py), and no
cyclic garbage collection while INIT loads its modules, turned back on with INIT's objects frozen."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

ARENA_CHECK = f"""
import sys
sys.path.insert(0, {str(ROOT / 'extension')!r})
from cache_extension import malloc
print(malloc.one_arena())
"""


def test_one_malloc_arena_on_linux():
    result = subprocess.run([sys.executable, "-E", "-S", "-c", ARENA_CHECK], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None"  # mallopt(M_ARENA_MAX, 1) accepted


def test_collection_is_back_on_after_init_with_inits_objects_frozen(start_extension):
    ext = start_extension(env={"CACHE_EXTENSION_LOG_LEVEL": "debug"})
    assert ext.read("parameters", "CacheExtensions_Parameter1").text == "MyParameter"
    frozen = re.findall(r"garbage collection on, (\d+) objects from INIT frozen", ext.output)
    assert len(frozen) == 1 and int(frozen[0]) > 10_000, ext.output[-2000:]  # modules, models: tens of thousands
    assert "malloc arenas left as they are" not in ext.output
    # Logged before INIT's end: the extension said it was ready after turning collection back on.
    assert ext.output.index("garbage collection on") < ext.output.index("ready on")
