"""`run-local --resources FILE`: your own SSM parameters, secrets and DynamoDB tables, seeded into the local AWS.

The file is YAML, or JSON when its name ends in .json:

    parameters:
      - name: /app/region              # type: String (the default), StringList or SecureString
        value: eu-west-1
      - name: /app/hosts
        type: StringList
        value: [a.example.com, b.example.com]   # or "a.example.com,b.example.com"
    secrets:
      - name: app/db
        value: {user: app, password: not-a-real-one}   # text, or a mapping (stored as its JSON)
      - name: app/cert
        binary: AAECAwQ=                                 # a binary secret, as base64
    dynamodb:
      - table: Orders
        hashkey: id                    # hashkeytype / sortkeytype: S (the default), N or B, as in config.yaml
        sortkey: line
        sortkeytype: N
        items:                         # plain JSON values, as the extension serves items (not DynamoDB JSON):
          - {id: order-1, line: 1, total: 12.5, paid: true, tags: [a, b], note: null}

Strings are S, numbers N, true/false BOOL, null NULL, lists L, mappings M; a B key is written as base64.
Parsing is strict, as config.yaml's: an unknown key, a wrong type, a duplicate or a value of the wrong kind
is an error naming the file, the entry and (YAML) the line. Errors never quote a value from the file.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .aws import MotoServer, put_secret

PARAMETER_TYPES = ("String", "StringList", "SecureString")
KEY_TYPES = ("S", "N", "B")
SECTIONS = {"parameters": ("name", "type", "value"), "secrets": ("name", "value", "binary"),
            "dynamodb": ("table", "hashkey", "hashkeytype", "sortkey", "sortkeytype", "items")}
# AWS's own name rules, checked here so that a typo is an error with a line rather than moto's 400 later.
_SSM_NAME = re.compile(r"[a-zA-Z0-9_.\-/]{1,2048}\Z")
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}\Z")
_TABLE_NAME = re.compile(r"[a-zA-Z0-9_.\-]{3,255}\Z")
_REFERENCE = "/aws/reference/secretsmanager/"
_STR = "tag:yaml.org,2002:str"

KeyPath = tuple  # a key path into the file: ("dynamodb", 0, "items", 2, "id")


class ResourcesError(Exception):
    """The resources file is unreadable or invalid; str(e) is "FILE[:LINE]: entry: problem"."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    value: str


@dataclass(frozen=True)
class Secret:
    name: str
    value: str | bytes  # bytes: a binary secret (SecretBinary)


@dataclass(frozen=True)
class Table:
    name: str
    hash_key: tuple[str, str]  # (attribute, type)
    sort_key: tuple[str, str] | None
    items: tuple[dict, ...]  # low-level DynamoDB items ({"id": {"S": "order-1"}, ...})


@dataclass(frozen=True)
class Resources:
    path: str
    parameters: tuple[Parameter, ...] = ()
    secrets: tuple[Secret, ...] = ()
    tables: tuple[Table, ...] = ()

    def shown_parameters(self) -> set[str]:
        """Parameters whose values may be shown (truncated): String and StringList, not SecureString."""
        return {p.name for p in self.parameters if p.type != "SecureString"}


def load_resources(path: Path) -> Resources:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ResourcesError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ResourcesError(f"{path}: not UTF-8 text") from None
    reader = _Reader(str(path))
    data = reader.json(text) if path.suffix.lower() == ".json" else reader.yaml(text)
    return reader.resources(data)


class _Reader:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lines: dict[KeyPath, int] = {}  # YAML only: where each value starts

    def error(self, at: KeyPath, problem: str, entry: str | None = None) -> ResourcesError:
        line = next((self.lines[at[:n]] for n in range(len(at), -1, -1) if at[:n] in self.lines), None)
        where = f"{self.path}:{line}" if line else self.path
        if entry is not None:  # "dynamodb[0] (Orders) items[1]" and the key path inside that entry, if any
            inside = at[4:] if len(at) >= 4 and at[2] == "items" else at[2:]
            entry += f" {_show_path(inside)}" if inside and inside != ("?",) else ""
        return ResourcesError(f"{where}: {entry or _show_path(at)}: {problem}" if at else f"{where}: {problem}")

    # -- the file's syntax ---------------------------------------------------------------

    def json(self, text: str) -> Any:
        def pairs(items: list[tuple[str, Any]]) -> dict:
            out: dict = {}
            for key, value in items:
                if key in out:
                    raise ResourcesError(f"{self.path}: the key {key!r} appears twice in one object")
                out[key] = value
            return out

        try:
            return json.loads(text, object_pairs_hook=pairs, parse_float=Decimal, parse_constant=_no_constant)
        except json.JSONDecodeError as exc:
            raise ResourcesError(f"{self.path}:{exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        except ValueError as exc:
            raise ResourcesError(f"{self.path}: invalid JSON: {exc}") from None

    def yaml(self, text: str) -> Any:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = f":{mark.line + 1}" if mark else ""
            raise ResourcesError(f"{self.path}{line}: invalid YAML: {exc.problem or exc.context}") from None
        except yaml.YAMLError as exc:
            raise ResourcesError(f"{self.path}: invalid YAML: {exc}") from None
        return None if root is None else self.node(root, (), yaml.SafeLoader(""))

    def node(self, node: Node, at: KeyPath, loader: yaml.SafeLoader) -> Any:
        self.lines[at] = node.start_mark.line + 1
        if isinstance(node, MappingNode):
            out: dict = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag != _STR:
                    self.lines[at + ("?",)] = key_node.start_mark.line + 1
                    raise self.error(at + ("?",), "keys must be plain text", _show_path(at) or "top level")
                if key_node.value in out:
                    self.lines[at + (key_node.value,)] = key_node.start_mark.line + 1
                    raise self.error(at + (key_node.value,), "appears twice")
                out[key_node.value] = self.node(value_node, at + (key_node.value,), loader)
            return out
        if isinstance(node, SequenceNode):
            return [self.node(child, at + (i,), loader) for i, child in enumerate(node.value)]
        try:
            return loader.construct_object(node)
        except yaml.YAMLError as exc:
            raise self.error(at, f"invalid value ({getattr(exc, 'problem', None) or exc})") from None

    # -- what it says --------------------------------------------------------------------

    def resources(self, data: Any) -> Resources:
        if data is None:
            raise self.error((), "the file is empty: list parameters:, secrets: and/or dynamodb:")
        self.mapping(data, (), tuple(SECTIONS), "top level")
        sections = {}
        for section in SECTIONS:
            entries = data.get(section)
            if entries is None:
                entries = []
            if not isinstance(entries, list):
                raise self.error((section,), f"must be a list of entries, not {_kind(entries)}")
            sections[section] = entries
        parameters = self.unique([self.parameter(e, ("parameters", i)) for i, e in enumerate(sections["parameters"])],
                                 "parameters")
        secrets = self.unique([self.secret(e, ("secrets", i)) for i, e in enumerate(sections["secrets"])], "secrets")
        tables = self.unique([self.table(e, ("dynamodb", i)) for i, e in enumerate(sections["dynamodb"])], "dynamodb")
        if not (parameters or secrets or tables):
            raise self.error((), "lists nothing: give parameters:, secrets: and/or dynamodb: entries")
        return Resources(self.path, tuple(parameters), tuple(secrets), tuple(tables))

    def unique(self, entries: list, section: str) -> list:
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            if entry.name in seen:
                raise self.error((section, i), f"{entry.name!r} is listed twice", _entry(section, i, entry.name))
            seen.add(entry.name)
        return entries

    def mapping(self, value: Any, at: KeyPath, allowed: tuple[str, ...], entry: str | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.error(at, f"must be a mapping ({', '.join(allowed)}), not {_kind(value)}", entry)
        for key in value:
            if key not in allowed:
                raise self.error(at + (key,), f"unknown key {key!r}; the keys are {', '.join(allowed)}", entry)
        return value

    def text(self, entry: dict, key: str, at: KeyPath, label: str, *, required: bool = True,
             default: str | None = None) -> str | None:
        if key not in entry:
            if required:
                raise self.error(at, f"missing required key {key!r}", label)
            return default
        value = entry[key]
        if not isinstance(value, str):
            raise self.error(at + (key,), f"{key} must be text, not {_kind(value)} (write it in quotes)", label)
        return value

    def parameter(self, entry: Any, at: KeyPath) -> Parameter:
        label = _entry(at[0], at[1], entry.get("name") if isinstance(entry, dict) else None)
        self.mapping(entry, at, SECTIONS["parameters"], label)
        name = self.text(entry, "name", at, label)
        if not _SSM_NAME.match(name):
            raise self.error(at + ("name",), "an SSM parameter name has 1 to 2048 of a-z A-Z 0-9 _ . - /", label)
        if name.startswith(_REFERENCE):
            raise self.error(at + ("name",), f"{_REFERENCE}... reads a secret: list it under secrets:", label)
        kind = self.text(entry, "type", at, label, required=False, default="String")
        if kind not in PARAMETER_TYPES:
            raise self.error(at + ("type",), f"must be one of {', '.join(PARAMETER_TYPES)}, not {kind!r}", label)
        if "value" not in entry:
            raise self.error(at, "missing required key 'value'", label)
        value = entry["value"]
        if kind == "StringList" and isinstance(value, list):
            for i, part in enumerate(value):
                if not isinstance(part, str) or not part or "," in part:
                    raise self.error(at + ("value", i), "each StringList element must be non-empty text "
                                                        "without a comma", label)
            value = ",".join(value)
        if not isinstance(value, str):
            hint = " or a list of text" if kind == "StringList" else ""
            raise self.error(at + ("value",), f"must be text{hint}, not {_kind(value)} (write it in quotes)", label)
        if not value:
            raise self.error(at + ("value",), "must not be empty (SSM needs at least one character)", label)
        return Parameter(name, kind, value)

    def secret(self, entry: Any, at: KeyPath) -> Secret:
        label = _entry(at[0], at[1], entry.get("name") if isinstance(entry, dict) else None)
        self.mapping(entry, at, SECTIONS["secrets"], label)
        name = self.text(entry, "name", at, label)
        if not _SECRET_NAME.match(name):
            raise self.error(at + ("name",), "a secret name has 1 to 512 of A-Z a-z 0-9 / _ + = . @ -", label)
        if ("value" in entry) == ("binary" in entry):
            raise self.error(at, "give exactly one of 'value' (text or a mapping) and 'binary' (base64)", label)
        if "binary" in entry:
            encoded = self.text(entry, "binary", at, label)
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise self.error(at + ("binary",), "is not valid base64", label) from None
            if not data:
                raise self.error(at + ("binary",), "must not be empty", label)
            return Secret(name, data)
        value = entry["value"]
        if isinstance(value, dict):
            value = json.dumps(self.plain(value, at + ("value",), label), separators=(",", ":"))
        elif not isinstance(value, str):
            raise self.error(at + ("value",), f"must be text or a mapping, not {_kind(value)} (write it in quotes)",
                             label)
        if not value:
            raise self.error(at + ("value",), "must not be empty", label)
        return Secret(name, value)

    def table(self, entry: Any, at: KeyPath) -> Table:
        label = _entry(at[0], at[1], entry.get("table") if isinstance(entry, dict) else None)
        self.mapping(entry, at, SECTIONS["dynamodb"], label)
        name = self.text(entry, "table", at, label)
        if not _TABLE_NAME.match(name):
            raise self.error(at + ("table",), "a table name has 3 to 255 of a-z A-Z 0-9 _ . -", label)
        if "sortkeytype" in entry and "sortkey" not in entry:
            raise self.error(at + ("sortkeytype",), "given without 'sortkey'", label)
        keys = [(self.text(entry, "hashkey", at, label), self.key_type(entry, "hashkeytype", at, label))]
        if "sortkey" in entry:
            keys.append((self.text(entry, "sortkey", at, label), self.key_type(entry, "sortkeytype", at, label)))
            if keys[1][0] == keys[0][0]:
                raise self.error(at + ("sortkey",), "must differ from hashkey", label)
        items = entry.get("items") or []
        if not isinstance(items, list):
            raise self.error(at + ("items",), f"must be a list of items, not {_kind(items)}", label)
        seen: set[str] = set()
        converted = []
        for i, item in enumerate(items):
            where = at + ("items", i)
            item_label = f"{label} items[{i}]"
            if not isinstance(item, dict):
                raise self.error(where, f"an item must be a mapping of attributes, not {_kind(item)}", item_label)
            low = {}
            for attribute, value in item.items():
                low[attribute] = self.attribute(value, where + (attribute,), item_label)
            for key, kind in keys:
                if key not in item:
                    raise self.error(where, f"missing its key attribute {key!r}", item_label)
                low[key] = self.key_value(item[key], kind, where + (key,), item_label)
            identity = json.dumps([low[key] for key, _ in keys], default=repr)
            if identity in seen:
                raise self.error(where, "has the same key as an item before it", item_label)
            seen.add(identity)
            converted.append(low)
        sort_key = keys[1] if len(keys) > 1 else None
        return Table(name, keys[0], sort_key, tuple(converted))

    def key_type(self, entry: dict, key: str, at: KeyPath, label: str) -> str:
        kind = self.text(entry, key, at, label, required=False, default="S")
        if kind not in KEY_TYPES:
            raise self.error(at + (key,), f"must be one of {', '.join(KEY_TYPES)}, not {kind!r}", label)
        return kind

    def key_value(self, value: Any, kind: str, at: KeyPath, label: str) -> dict:
        if kind == "S":
            if not isinstance(value, str) or not value:
                raise self.error(at, f"a key of type S must be non-empty text, not {_kind(value)}", label)
            return {"S": value}
        if kind == "N":
            if not _is_number(value):
                raise self.error(at, f"a key of type N must be a number, not {_kind(value)}", label)
            return {"N": _number(value)}
        try:
            data = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
        except (binascii.Error, ValueError):
            data = b""
        if not data:
            raise self.error(at, "a key of type B must be non-empty base64 text", label)
        return {"B": data}

    def attribute(self, value: Any, at: KeyPath, label: str) -> dict:
        """A plain JSON value as a low-level DynamoDB attribute value."""
        if value is None:
            return {"NULL": True}
        if isinstance(value, bool):
            return {"BOOL": value}
        if _is_number(value):
            return {"N": _number(value)}
        if isinstance(value, str):
            return {"S": value}
        if isinstance(value, list):
            return {"L": [self.attribute(v, at + (i,), label) for i, v in enumerate(value)]}
        if isinstance(value, dict):
            return {"M": {k: self.attribute(v, at + (k,), label) for k, v in value.items()}}
        raise self.error(at, f"is {_kind(value)}, not a JSON value (write it in quotes)", label)

    def plain(self, value: Any, at: KeyPath, label: str) -> Any:
        """A mapping's values checked as JSON (for a secret written as a mapping)."""
        self.attribute(value, at, label)
        # a Decimal (from a .json file) back to a JSON number
        return json.loads(json.dumps(value, default=lambda d: int(d) if d == d.to_integral_value() else float(d)))


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, Decimal) and value.is_finite()


def _number(value: Any) -> str:
    return str(value) if not isinstance(value, float) else repr(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    names = {bool: "true/false", int: "a number", float: "a number", Decimal: "a number", str: "text",
             list: "a list", dict: "a mapping", bytes: "binary data", datetime.date: "a date",
             datetime.datetime: "a date and time"}
    return names.get(type(value), f"a {type(value).__name__}")


def _entry(section: str, index: int, name: Any) -> str:
    return f"{section}[{index}]" + (f" ({name})" if isinstance(name, str) and name else "")


def _show_path(at: KeyPath) -> str:
    out = ""
    for part in at:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- seeding -------------------------------------------------------------------------------


def seed(server: MotoServer, resources: Resources, region: str) -> None:
    """Put every resource into moto, after the sample's: a name in both takes the file's value (and schema)."""
    ssm = server.client("ssm", region)
    for parameter in resources.parameters:
        ssm.put_parameter(Name=parameter.name, Value=parameter.value, Type=parameter.type, Overwrite=True)
    secrets = server.client("secretsmanager", region)
    for secret in resources.secrets:
        put_secret(secrets, secret.name, secret.value)
    dynamodb = server.client("dynamodb", region)
    for table in resources.tables:
        keys = [(table.hash_key, "HASH")] + ([(table.sort_key, "RANGE")] if table.sort_key else [])
        try:
            dynamodb.delete_table(TableName=table.name)  # the sample's table, say: the file's schema wins
        except dynamodb.exceptions.ResourceNotFoundException:
            pass
        dynamodb.create_table(
            TableName=table.name,
            KeySchema=[{"AttributeName": name, "KeyType": role} for (name, _), role in keys],
            AttributeDefinitions=[{"AttributeName": name, "AttributeType": kind} for (name, kind), _ in keys],
            BillingMode="PAY_PER_REQUEST",
        )
        for item in table.items:
            dynamodb.put_item(TableName=table.name, Item=item)
