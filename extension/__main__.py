"""Runs the extension: `python3 extension/__main__.py` here, and `python3 /opt/cache-extension/__main__.py` in
the layer, where the package sits beside its vendored dependencies (sys.path[0] is this file's directory)."""

import sys

from cache_extension.main import main

sys.exit(main())
