"""DynamoDB's typed attribute values as plain JSON, without losing a digit.

json.dumps would force numbers through float (or refuse Decimal); DynamoDB numbers carry up to 38
significant digits, so this writes N values as the number text DynamoDB returned.
"""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

# JSON's number grammar; DynamoDB's canonical output fits it, anything else is normalised first.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?\Z")


def item_to_json(item: dict[str, Any]) -> bytes:
    """A low-level item ({"attr": {"S": "..."}, ...}) as a JSON object with real types."""
    parts: list[str] = []
    _write_map(item, parts)
    return "".join(parts).encode("utf-8")


def json_number(text: str) -> str:
    if _JSON_NUMBER.match(text):
        return text
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError("not a DynamoDB number") from None
    if not number.is_finite():
        raise ValueError("not a DynamoDB number")
    normalised = format(number, "f") if -30 < number.adjusted() < 30 else format(number, "E")
    return normalised if _JSON_NUMBER.match(normalised) else str(float(number))


def _write_map(attributes: dict[str, Any], parts: list[str]) -> None:
    parts.append("{")
    for index, (name, value) in enumerate(attributes.items()):
        if index:
            parts.append(",")
        parts.append(json.dumps(name, ensure_ascii=False))
        parts.append(":")
        _write_value(value, parts)
    parts.append("}")


def _write_list(values: Any, parts: list[str], write: Any) -> None:
    parts.append("[")
    for index, value in enumerate(values):
        if index:
            parts.append(",")
        write(value, parts)
    parts.append("]")


def _write_value(value: dict[str, Any], parts: list[str]) -> None:
    (kind, data), = value.items()  # exactly one type key per attribute value
    if kind == "S":
        parts.append(json.dumps(data, ensure_ascii=False))
    elif kind == "N":
        parts.append(json_number(data))
    elif kind == "BOOL":
        parts.append("true" if data else "false")
    elif kind == "NULL":
        parts.append("null")
    elif kind == "B":
        parts.append(_base64(data))
    elif kind == "M":
        _write_map(data, parts)
    elif kind == "L":
        _write_list(data, parts, _write_value)
    elif kind == "SS":
        _write_list(data, parts, lambda s, p: p.append(json.dumps(s, ensure_ascii=False)))
    elif kind == "NS":
        _write_list(data, parts, lambda n, p: p.append(json_number(n)))
    elif kind == "BS":
        _write_list(data, parts, lambda b, p: p.append(_base64(b)))
    else:
        raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def _base64(data: bytes) -> str:
    return '"' + base64.b64encode(data).decode("ascii") + '"'
