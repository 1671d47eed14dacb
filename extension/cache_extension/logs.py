"""Log set-up: one line per event, names and error codes only; JSON lines when Lambda's log format is JSON."""

from __future__ import annotations

import json
import logging
import sys
import time

# Their debug output includes request and response bodies, i.e. secret values: never below WARNING.
QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "asyncio")


def printable(text: str) -> str:
    """A name as it may appear in a log line: control characters escaped, so a name cannot forge a line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def count(number: int, noun: str, plural: str | None = None) -> str:
    """'1 item', '2 items' ('1 entry', '2 entries' with plural='entries'): log lines read as sentences."""
    return f"{number} {noun}" if number == 1 else f"{number} {plural or noun + 's'}"


class JsonFormatter(logging.Formatter):
    """Lambda's JSON log shape (timestamp, level, message), so log filters and Insights queries apply."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        return json.dumps({"timestamp": stamp, "level": record.levelname, "message": record.getMessage(),
                           "logger": "cache-extension"}, ensure_ascii=False)


def configure(level: str = "INFO", *, json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stdout)
    formatter = JsonFormatter() if json_lines else logging.Formatter("%(levelname)s [cache-extension] %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
