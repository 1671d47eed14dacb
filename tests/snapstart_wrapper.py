"""Runs the extension from a layer with a wall clock a test can move: SnapStart's restore, simulated.

Usage: python3 -E -S snapstart_wrapper.py <layer>/cache-extension <extension name>
The file named by SNAPSTART_TEST_WALL_OFFSET_FILE holds seconds to add to time.time(). A restore moves the
wall clock (Lambda syncs it) and not the monotonic one; patching time.time before the extension imports
anything does just that, for this process only. Test code: it is never part of the layer.
"""

import os
import runpy
import sys
import time

_offset_file = os.environ.pop("SNAPSTART_TEST_WALL_OFFSET_FILE")
_real_time = time.time


def _time() -> float:
    try:
        with open(_offset_file) as file:
            return _real_time() + float(file.read() or 0)
    except (OSError, ValueError):
        return _real_time()


time.time = _time
layer_package, name = sys.argv[1], sys.argv[2]
sys.argv = [layer_package, name]
sys.path.insert(0, layer_package)
runpy.run_path(layer_package, run_name="__main__")
