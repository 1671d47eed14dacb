"""Offline values: what a client answers instead of the extension (``values=`` or CACHE_EXTENSION_CLIENT_VALUES).

One rule in every client (Python, Node.js, Java, Go):

- parameters and secrets: a string is the value exactly as stored in AWS, what the extension would serve. Any
  other JSON value (object, array, number, boolean) stands for a value whose text is that JSON: a read gives
  its compact JSON text, transform "json" the parsed value, "binary" an error. null is refused. In code, bytes
  are a binary value (as the extension serves a binary secret).
- dynamodb: every value is an item, a JSON object (a dict in code); anything else is refused.

Refusals happen when the client is made, and name the section and the name, never the value (it may be a secret).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

SECTIONS = ("parameters", "secrets", "dynamodb")


class JsonText(str):
    """The JSON text of an offline JSON value: read as text, parsed by transform "json", never binary."""


class _WrittenInt(int):
    """A whole number of the values file, with its text as written (only until the file is checked)."""
    text: str


class _WrittenNumber(Decimal):
    """Any other number of the values file, with its text as written (1.50 stays 1.50, 1e3 stays 1e3)."""
    text: str


def _written_int(text: str) -> int:
    number = _WrittenInt(text)
    number.text = text
    return number


def _written_number(text: str) -> Decimal:
    number = _WrittenNumber(text)
    number.text = text
    return number


def load(path: str) -> Any:
    """The values file's JSON, its numbers remembering their text; ValueError/OSError (with no content) else."""
    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_int=_written_int, parse_float=_written_number)


def check(values: Any) -> dict:
    """Offline values checked and ready to answer from: parameters and secrets as str, bytes or JsonText, items
    as given (read through a deep copy). ValueError naming the section and the name, never the value."""
    if not isinstance(values, dict) or not set(values) <= set(SECTIONS):
        raise ValueError(f"offline values must be a dict with the keys {', '.join(SECTIONS)}")
    checked = {}
    for section, entries in values.items():
        if not isinstance(entries, dict):
            raise ValueError(f"offline values: {section} must be a dict of names to values")
        checked[section] = {name: _entry(section, name, value) for name, value in entries.items()}
    return checked


def _entry(section: str, name: Any, value: Any) -> Any:
    where = f"offline values: {section} {name!r}"
    if not isinstance(name, str):
        raise ValueError(f"offline values: the names in {section} must be strings")
    if section == "dynamodb":
        if not isinstance(value, dict):
            raise ValueError(f"{where} must be an item, a JSON object (a dict), not {_kind(value)}")
        return _plain(value)
    if value is None:
        raise ValueError(f"{where} is null: give a string (the value as stored in AWS) or a JSON value")
    if isinstance(value, (str, bytes)):
        return str(value) if isinstance(value, str) else bytes(value)
    try:
        return JsonText(_json(value))
    except (ValueError, RecursionError):
        raise ValueError(f"{where} is {_kind(value)}, neither a string nor a JSON value") from None


def _kind(value: Any) -> str:
    """What a refused value is, by its JSON kind or Python type: never its content."""
    if value is None:
        return "null"
    for kind, types in (("a string", str), ("a boolean", bool), ("a number", (int, float, Decimal)),
                        ("an array", (list, tuple)), ("an object", dict)):
        if isinstance(value, types):
            return kind
    return f"a {type(value).__name__}"


def _plain(value: Any) -> Any:
    """An item of the values file with its numbers plain again: int, or Decimal (every digit, as get_item's)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, _WrittenInt):
        return int(value)
    if isinstance(value, _WrittenNumber):
        return Decimal(value.text)
    return value


def _json(value: Any) -> str:
    """Compact JSON text, keys in their order, numbers of the values file as written; ValueError if not JSON."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (_WrittenInt, _WrittenNumber)):
        return value.text
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, (float, Decimal)):
        if not (value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)):
            raise ValueError("not a JSON number")
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError("object keys must be strings")
        return "{" + ",".join(f"{_json(key)}:{_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json(item) for item in value) + "]"
    raise ValueError("not a JSON value")
