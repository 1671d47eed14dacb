"""Log set-up: one line per event, names and error codes only."""

from __future__ import annotations

import logging
import sys

# Their debug output includes request and response bodies, i.e. secret values: never below WARNING.
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "uvicorn", "uvicorn.error", "uvicorn.access", "asyncio")


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s [cache-extension] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
