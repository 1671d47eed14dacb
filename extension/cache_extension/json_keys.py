"""One top-level key of a JSON object value (GET /secrets?name=ID&key=password, the same on /parameters).

A string member is answered as its text; any other member as its JSON text exactly as the value holds it
(numbers keep every digit as written, nested whitespace kept). When a key appears more than once, the last
one counts, as json.loads and every client's JSON parser have it. Errors name the key's length at most,
never a value: a message here could otherwise quote a secret.
"""

from __future__ import annotations

import json
from json.decoder import scanstring

WHITESPACE = " \t\n\r"


class MemberError(Exception):
    """The value has no such key (404 KeyNotFound) or is not a JSON object (400 NotJsonObject)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_object() -> MemberError:
    return MemberError(400, "NotJsonObject", "the value is not a JSON object, so it has no keys")


def member(body: bytes, content_type: str, key: str) -> str:
    """The text of member `key` of the JSON object `body`, or MemberError."""
    if not content_type.startswith("text/"):
        raise not_object()  # a binary secret
    try:
        text = body.decode("utf-8")
        parsed = json.loads(text)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError both; neither message is repeated
        raise not_object() from None
    if not isinstance(parsed, dict):
        raise not_object()
    if key not in parsed:
        raise MemberError(404, "KeyNotFound", "the value has no top-level key of that name")
    found = parsed[key]
    if isinstance(found, str):
        return found
    return _raw(text, key)


def _raw(text: str, key: str) -> str:
    """The source text of the last member named `key` of a valid JSON object (json.loads accepted it)."""
    decoder = json.JSONDecoder()
    i = _skip(text, 0) + 1  # past "{"
    found = None
    while True:
        i = _skip(text, i)
        if text[i] == "}":
            break
        name, i = scanstring(text, i + 1)
        i = _skip(text, i) + 1  # past ":"
        start = _skip(text, i)
        _, end = decoder.raw_decode(text, start)
        if name == key:
            found = text[start:end]
        i = _skip(text, end)
        if text[i] == ",":
            i += 1
    if found is None:  # not reachable for a value json.loads took as an object with the key
        raise MemberError(404, "KeyNotFound", "the value has no top-level key of that name")
    return found


def _skip(text: str, i: int) -> int:
    while i < len(text) and text[i] in WHITESPACE:
        i += 1
    return i
