"""key=: one top-level key of a JSON object value, picked in the client from the whole value (which the near
cache keeps), by the extension's rule (GET /secrets?name=ID&key=K): a string member is its text, any other
member its JSON text exactly as the value holds it; the last of repeated keys counts. A value that is not a
JSON object (a binary secret included) is status 400 NotJsonObject, an absent key 404 KeyNotFound."""

from __future__ import annotations

import json
from json.decoder import scanstring

WHITESPACE = " \t\n\r"


def member(value, key: str):
    """(text, None), or (None, (status, code, message)) with a message that never quotes the value."""
    if not isinstance(key, str) or not key:
        raise TypeError("key must be a non-empty string")
    not_object = (400, "NotJsonObject", "the value is not a JSON object, so it has no keys")
    if not isinstance(value, str):
        return None, not_object
    try:
        parsed = json.loads(value)
    except ValueError:
        return None, not_object
    if not isinstance(parsed, dict):
        return None, not_object
    if key not in parsed:
        return None, (404, "KeyNotFound", f"the value has no top-level key {key!r}")
    found = parsed[key]
    return (found if isinstance(found, str) else _raw(value, key)), None


def _raw(text: str, key: str) -> str:
    """The source text of the last member named `key` of an object json.loads accepted."""
    decoder = json.JSONDecoder()
    i = _skip(text, 0) + 1
    found = ""
    while True:
        i = _skip(text, i)
        if text[i] == "}":
            return found
        name, i = scanstring(text, i + 1)
        start = _skip(text, _skip(text, i) + 1)
        _, end = decoder.raw_decode(text, start)
        if name == key:
            found = text[start:end]
        i = _skip(text, end)
        if text[i] == ",":
            i += 1


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i
