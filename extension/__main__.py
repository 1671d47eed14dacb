"""Runs the extension when Python is given this directory: `python3 extension` here, and
`python3 /opt/cache-extension` in the layer, where the package sits beside its vendored dependencies."""

import sys

from cache_extension.main import main

sys.exit(main())
