"""config.yaml: what to prefetch, cache and serve.

Accepts the original Go sample's format unchanged and adds, all optional: a `secrets:`
section, `ttl` and `stale` on groups and items (a name may be a mapping with its own), `region`
everywhere, and `name` (an alias) plus N/B key types on DynamoDB items. Only what this file lists
can be fetched, so parsing is strict: unknown keys, wrong types and duplicates are errors that name
file, line and key.

We walk PyYAML's node tree (yaml.compose) rather than safe_load's plain objects because
nodes keep their line numbers and the scalar text exactly as written ("007" stays "007").
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from . import config_filters
from .config_paths import Listing, covers, overlap, parse_path_group
from .config_roles import ROLE_KEYS, Role, parse_role
from .goparse import parse_duration
from .yaml_errors import plain_yaml_error

SOURCES = ("parameters", "secrets", "dynamodb")
SECTIONS = SOURCES + ("allow",)
KEY_TYPES = ("S", "N", "B")
MAX_ITEMS = 10_000  # sanity bound: also stops YAML aliases from multiplying entries

_GROUP_KEYS = {
    "parameters": ("region", "names", "path", "recursive", "max", "ttl", "stale") + ROLE_KEYS,
    "secrets": ("region", "names", "versionstage", "filter", "max", "ttl", "stale") + ROLE_KEYS,
}
_NAME_KEYS = ("name", "ttl", "stale") + ROLE_KEYS  # a `names:` entry written as a mapping
_ALLOW_KEYS = ("parameters", "secrets", "region", "ttl", "stale")
_DYNAMODB_KEYS = (
    "table", "hashkey", "hashkeytype", "hashkeyvalue",
    "sortkey", "sortkeytype", "sortkeyvalue", "region", "name", "ttl", "stale",
) + ROLE_KEYS
_NULL_TAG = "tag:yaml.org,2002:null"
# DynamoDB's number syntax (ASCII digits, optional sign, fraction and exponent; no NaN/Infinity).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")


class ConfigError(Exception):
    """config.yaml is unreadable or invalid. str(e) is "path:line: key.path: problem"."""

    def __init__(self, problem: str, *, path: str | None = None, line: int | None = None, key: str | None = None):
        self.problem = problem
        self.path = path
        self.line = line
        self.key = key
        where = ":".join(str(part) for part in (path, line) if part is not None)
        super().__init__(": ".join(part for part in (where, key, problem) if part))


@dataclass(frozen=True)
class Item:
    source: str                 # "parameters" | "secrets" | "dynamodb" (also the HTTP route)
    name: str                   # the address clients use in ?name=
    region: str
    ttl: float                  # seconds
    stale: float = 0.0          # seconds past the TTL the value may still be served (refreshing, or AWS failing)
    version_stage: str | None = None  # secrets only
    version_id: str | None = None     # secrets only, on demand (the AWS-compatible route's versionId)
    table: str | None = None          # dynamodb only
    # dynamodb only: boto3 low-level key, e.g. {"pKey": {"S": "pKey1"}}; B values are bytes.
    # Left out of the hash so items stay hashable (a dict is not).
    key: dict | None = field(default=None, hash=False)
    line: int = 0               # where the item is defined in the file, for log messages
    listing: Listing | None = None    # parameters only: a path group (name is the path), GetParametersByPath
    member_of: str | None = None      # parameters only: a name read under that group's path
    role: Role | None = None          # read with this role's credentials (STS AssumeRole), else the function's


@dataclass(frozen=True)
class Allow:
    """Names that may be read on demand without being prefetched: exact, or a prefix ending in '*'."""

    patterns: dict  # source -> tuple of patterns
    region: str
    ttl: float
    stale: float = 0.0

    def allows(self, source: str, name: str) -> bool:
        for pattern in self.patterns.get(source, ()):
            if name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1])):
                return True
        return False


@dataclass(frozen=True)
class Config:
    path: str
    items: tuple[Item, ...]
    allow: Allow | None = None
    _index: dict = field(init=False, repr=False, compare=False)
    _sources: dict = field(init=False, repr=False, compare=False)
    _groups: dict = field(init=False, repr=False, compare=False)  # source -> its groups by path or filter

    def __post_init__(self) -> None:
        items = tuple(self.items)
        object.__setattr__(self, "items", items)
        # A path group's own entry is not a name anyone reads: reads of names under it go through path_of.
        object.__setattr__(self, "_index", {(item.source, item.name): item for item in items if item.listing is None})
        sources: dict[str, list[Item]] = {}
        for item in items:
            sources.setdefault(item.source, []).append(item)
        object.__setattr__(self, "_sources", sources)
        object.__setattr__(self, "_groups", {source: [item for item in group if item.listing is not None]
                                             for source, group in sources.items()})

    def get(self, source: str, name: str) -> Item | None:
        return self._index.get((source, name))

    def by_source(self, source: str) -> list[Item]:
        return list(self._sources.get(source, ()))

    @property
    def sources(self) -> set[str]:
        """Sources that can be read: configured ones and those `allow:` opens for reads on demand."""
        allowed = {source for source, patterns in self.allow.patterns.items() if patterns} if self.allow else set()
        return set(self._sources) | allowed

    def resolve(self, source: str, name: str) -> Item | None:
        """The item a request may read: configured, under a configured path, or on demand when `allow:`
        permits the name."""
        return self._index.get((source, name)) or self._on_demand(source, name, name)

    def group_of(self, source: str, name: str, definite: bool = True) -> Item | None:
        """The group whose listing `name` belongs to, if any: a path that holds it (config_paths.covers), a filter
        by a name prefix it has; not `definite`: a filter by tags only, which any name may match
        (config_filters.covers)."""
        for group in self._groups.get(source, ()):
            if (config_filters.covers(group.listing, name, definite) if source == "secrets"
                    else definite and covers(group.name, group.listing, name)):
                return group
        return None

    def resolve_version(self, source: str, base: str, name: str, *, version_stage: str | None = None,
                        version_id: str | None = None) -> Item | None:
        """For the AWS-compatible routes: `name` is `base` with a version selector (SSM's "N:3") or
        with a stage or version id (secrets). Other versions of a configured item may be read too."""
        item = self._index.get((source, name))
        current = version_stage or "AWSCURRENT"
        if item is not None and version_id is None and current == (item.version_stage or "AWSCURRENT"):
            return item
        return self._on_demand(source, name, base, version_stage, version_id)

    def _on_demand(self, source: str, name: str, base: str, version_stage: str | None = None,
                   version_id: str | None = None) -> Item | None:
        if source == "dynamodb":
            return None  # items are addressed by configured keys only
        template = self._index.get((source, base))
        group = self.group_of(source, base) if template is None else None
        if template is None and group is None and not (self.allow and self.allow.allows(source, base)):
            group = self.group_of(source, base, definite=False)  # a filter by tags: its listing decides
            if group is not None and (name != base or version_stage or version_id):
                return None  # no version of a name it did not list: nothing to check it against without a call
        if group is not None and name == base and version_stage is None and version_id is None:
            return Item(source, name, group.region, group.ttl, group.stale, member_of=group.name, line=group.line,
                        role=group.role)
        if group is not None:
            template = group  # another version of a name under the path or prefix: fetched on its own
        if template is None:
            if not (self.allow and self.allow.allows(source, base)):
                return None
            template = Item(source, base, self.allow.region, self.allow.ttl, self.allow.stale)
        return Item(source, name, template.region, template.ttl, template.stale, version_stage=version_stage,
                    version_id=version_id, role=template.role)


def load_config(path: str, *, default_region: str | None, default_ttl: float, default_stale: float = 0.0,
                source_ttls: dict | None = None) -> Config:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(
            f"cannot read the config file ({e.strerror or e}); its path comes from "
            "CACHE_EXTENSION_CONFIG, else $LAMBDA_TASK_ROOT/config.yaml",
            path=path,
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError("the file is not valid UTF-8", path=path, line=line) from None
    config = parse_config(text, path=path, default_region=default_region, default_ttl=default_ttl,
                          source_ttls=source_ttls, default_stale=default_stale)
    if not config.sources:
        logging.getLogger("cache_extension.config").warning(
            "%s lists no items: nothing is prefetched and every read is refused; add parameters:, secrets:, "
            "dynamodb: or allow: (CACHE_EXTENSION_CONFIG names the file)", path)
    return config


def parse_config(text: str, *, path: str, default_region: str | None, default_ttl: float,
                 default_stale: float = 0.0, source_ttls: dict | None = None) -> Config:
    """source_ttls: a default TTL per source (settings.py: AWS's extension's per-service TTLs), else default_ttl."""
    parser = _Parser(path, default_region, default_ttl, default_stale)
    parser.source_ttls = dict(source_ttls or {})
    return parser.parse(text)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _show(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if _is_null(node):
        return "nothing"
    return f"the text {_show(node.value)}"


# A mapping's entries by key name: (key node, value node).
_Entries = dict[str, tuple[Node, Node]]


class _Parser:
    def __init__(self, path: str, default_region: str | None, default_ttl: float, default_stale: float = 0.0):
        self.path = path
        self.default_region = default_region
        self.default_ttl = float(default_ttl)
        self.default_stale = float(default_stale)
        self.source_ttls: dict = {}
        self.items: list[Item] = []
        self.allow: Allow | None = None
        self.seen: dict[tuple[str, str], tuple[int, str]] = {}  # address -> (line, key path)
        self.listed = 0  # the most parameters the path groups may hold together

    def error(self, where: Node | int, key: str | None, problem: str) -> ConfigError:
        line = where if isinstance(where, int) else _line(where)
        return ConfigError(problem, path=self.path, line=line, key=key)

    # -- document ---------------------------------------------------------------

    def parse(self, text: str) -> Config:
        root = self.compose(text)
        if root is not None and not _is_null(root):  # empty file, or only comments / "---"
            if not isinstance(root, MappingNode):
                raise self.error(root, None, f"the top level must be a mapping with parameters, secrets, "
                                             f"dynamodb and/or allow, got {_kind(root)}")
            for name, (key_node, value_node) in self.mapping(root, "", SECTIONS).items():
                if _is_null(value_node):
                    continue  # a section with every entry commented out
                if name == "allow":
                    self.allow_section(value_node)
                    continue
                section = self.sequence(key_node, value_node, name)
                for i, node in enumerate(section.value):
                    if name == "dynamodb":
                        self.dynamodb(node, f"dynamodb[{i}]")
                    else:
                        self.group(name, node, f"{name}[{i}]")
        return Config(self.path, tuple(self.items), self.allow)

    def compose(self, text: str) -> Node | None:
        try:
            return yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            raise self.error(mark.line + 1 if mark else 1, None, f"invalid YAML: {plain_yaml_error(e)}") from None
        except yaml.reader.ReaderError as e:
            line = text.count("\n", 0, e.position) + 1
            char = f"#x{e.character:04x}" if isinstance(e.character, int) else repr(e.character)
            raise self.error(line, None, f"invalid YAML: unacceptable character {char}: {e.reason}") from None
        except yaml.YAMLError as e:
            raise self.error(1, None, f"invalid YAML: {e}") from None
        except RecursionError:
            raise self.error(1, None, "invalid YAML: nested too deeply") from None

    # -- sections -----------------------------------------------------------------

    def group(self, source: str, node: Node, kp: str) -> None:
        entries = self.mapping(node, kp, _GROUP_KEYS[source])
        region = self.region(entries, node, kp)
        ttl, stale = self.ttl(entries, kp, self.source_ttls.get(source)), self.stale(entries, kp)
        role = parse_role(self, entries, kp)
        listed = {"parameters": "path", "secrets": "filter"}[source]
        if listed in entries:
            parse = parse_path_group if source == "parameters" else config_filters.parse_filter_group
            name, listing, line = parse(self, entries, node, kp)
            self.add_group(Item(source, name, region, ttl, stale, line=line, listing=listing, role=role),
                           f"{kp}.{listed}")
            return
        for key in ("recursive", "max"):
            if key in entries:
                raise self.error(entries[key][0], f"{kp}.{key}", f"goes with '{listed}:' (a group by {listed}), "
                                                                 "not 'names:'")
        if "names" not in entries:
            raise self.error(node, kp, f"missing required key 'names' (or '{listed}')")
        stage = self.text(entries, "versionstage", kp) if "versionstage" in entries else None
        key_node, value_node = entries["names"]
        names = self.sequence(key_node, value_node, f"{kp}.names")
        for j, name_node in enumerate(names.value):
            nkp = f"{kp}.names[{j}]"
            item_ttl, item_stale, item_role = ttl, stale, role
            if isinstance(name_node, MappingNode):  # - {name: N, ttl: 30s, stale: 5m}
                named = self.mapping(name_node, nkp, _NAME_KEYS)
                if "name" not in named:
                    raise self.error(name_node, nkp, "missing required key 'name'")
                name = self.text(named, "name", nkp)
                item_ttl = self.ttl(named, nkp, ttl)
                item_stale = self.stale(named, nkp, stale)
                item_role = parse_role(self, named, nkp, role)
            else:
                name = self.scalar(name_node, nkp)
            self.check_name(source, name, name_node, nkp)
            self.add(Item(source, name, region, item_ttl, item_stale, version_stage=stage, line=_line(name_node),
                          role=item_role), nkp)

    def allow_section(self, node: Node) -> None:
        entries = self.mapping(node, "allow", _ALLOW_KEYS)
        patterns: dict[str, tuple[str, ...]] = {}
        for source in ("parameters", "secrets"):
            if source not in entries:
                continue
            key_node, value_node = entries[source]
            found = []
            for j, pattern_node in enumerate(self.sequence(key_node, value_node, f"allow.{source}").value):
                pkp = f"allow.{source}[{j}]"
                pattern = self.scalar(pattern_node, pkp)
                self.check_name(source, pattern, pattern_node, pkp)
                if "*" in pattern[:-1]:
                    raise self.error(pattern_node, pkp, f"{_show(pattern)}: '*' may only end a pattern (a prefix)")
                found.append(pattern)
            patterns[source] = tuple(found)
        self.allow = Allow(patterns, self.region(entries, node, "allow"), self.ttl(entries, "allow"),
                           self.stale(entries, "allow"))

    def dynamodb(self, node: Node, kp: str) -> None:
        entries = self.mapping(node, kp, _DYNAMODB_KEYS)
        for required in ("table", "hashkey", "hashkeyvalue"):
            if required not in entries:
                raise self.error(node, kp, f"missing required key {required!r}")
        if ("sortkey" in entries) != ("sortkeyvalue" in entries):
            present, missing = ("sortkey", "sortkeyvalue") if "sortkey" in entries else ("sortkeyvalue", "sortkey")
            raise self.error(entries[present][0], f"{kp}.{present}", f"needs {missing!r} too (they go together)")
        if "sortkeytype" in entries and "sortkey" not in entries:
            raise self.error(entries["sortkeytype"][0], f"{kp}.sortkeytype", "given without 'sortkey'")

        table = self.text(entries, "table", kp)
        hashkey = self.text(entries, "hashkey", kp)
        hash_text, hash_value = self.key_value(entries, "hash", kp)
        key = {hashkey: hash_value}
        address = f"{table}-{hash_text}"
        if "sortkey" in entries:
            sortkey = self.text(entries, "sortkey", kp)
            if sortkey == hashkey:
                raise self.error(entries["sortkey"][1], f"{kp}.sortkey", f"must differ from hashkey {_show(hashkey)}")
            sort_text, sort_value = self.key_value(entries, "sort", kp)
            key[sortkey] = sort_value
            address += f"-{sort_text}"
        if "name" in entries:
            address = self.text(entries, "name", kp)

        item = Item(
            "dynamodb", address, self.region(entries, node, kp), self.ttl(entries, kp), self.stale(entries, kp),
            table=table, key=key, line=_line(node), role=parse_role(self, entries, kp),
        )
        self.add(item, kp)

    def key_value(self, entries: _Entries, prefix: str, kp: str) -> tuple[str, dict]:
        """The key value as written, and its low-level attribute value ({"S": ...})."""
        type_key, value_key = f"{prefix}keytype", f"{prefix}keyvalue"
        kind = "S"
        if type_key in entries:
            kind = self.text(entries, type_key, kp)
            if kind not in KEY_TYPES:
                raise self.error(entries[type_key][1], f"{kp}.{type_key}",
                                 f"must be one of {', '.join(KEY_TYPES)}, got {_show(kind)}")
        text = self.text(entries, value_key, kp, allow_blank=True)
        where, vkp = entries[value_key][1], f"{kp}.{value_key}"
        if text == "":
            raise self.error(where, vkp, "must not be empty (DynamoDB key values cannot be empty)")
        if kind == "N":
            if not _NUMBER.match(text):
                raise self.error(where, vkp, f"{_show(text)} is not a number ({type_key} is N)")
            return text, {"N": text}
        if kind == "B":
            import base64  # only needed for binary keys; keeps the common import path lean
            import binascii

            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise self.error(where, vkp, f"{_show(text)} is not valid base64 ({type_key} is B)") from None
            if not data:
                raise self.error(where, vkp, "must not be empty (DynamoDB key values cannot be empty)")
            return text, {"B": data}
        return text, {"S": text}

    def check_name(self, source: str, name: str, node: Node, kp: str) -> None:
        """AWS refuses whitespace and control characters in every parameter and secret name (and ARN); a
        list item indented one column too far is joined to the one above it by YAML: "A - /b"."""
        bad = next((ch for ch in name if ch.isspace() or not ch.isprintable()), None)
        if bad is None:
            return
        allowed = ("letters, digits and . - _ /" if source == "parameters" else "letters, digits and / _ + = . @ -")
        what = "SSM parameter" if source == "parameters" else "Secrets Manager secret"
        hint = "; is a '- ' item indented more than the one above it, so YAML joined the lines?" \
            if re.search(r"\s-\s", name) else ""
        raise self.error(node, kp, f"{_show(name)} contains {'a space' if bad == ' ' else repr(bad)}; "
                                   f"{what} names cannot ({allowed}){hint}")

    def add_group(self, item: Item, kp: str) -> None:
        for other in self.items if item.source == "parameters" else ():
            if other.listing is not None and other.source == "parameters" and overlap(other.name, item.name):
                raise self.error(item.line, kp, f"path {_show(item.name)} overlaps path {_show(other.name)} at "
                                                f"line {other.line}: a parameter would be listed twice")
        self.listed += item.listing.max
        if self.listed > MAX_ITEMS:
            raise self.error(item.line, kp, f"the groups' max: add up to more than {MAX_ITEMS} values")
        self.add(item, kp)

    def add(self, item: Item, kp: str) -> None:
        address = (item.source, item.name)
        previous = self.seen.get(address)
        if previous is not None:
            line, where = previous
            raise self.error(item.line, kp, f"{item.source} address {_show(item.name)} is already defined "
                                            f"at line {line} ({where})")
        if len(self.items) >= MAX_ITEMS:
            raise self.error(item.line, kp, f"more than {MAX_ITEMS} items; split the configuration")
        self.seen[address] = (item.line, kp)
        self.items.append(item)

    # -- shared fields ------------------------------------------------------------

    def region(self, entries: _Entries, node: Node, kp: str) -> str:
        if "region" in entries:
            return self.text(entries, "region", kp)
        if self.default_region:
            return self.default_region
        raise self.error(node, kp, "no region: add 'region:' here or set AWS_REGION")

    def ttl(self, entries: _Entries, kp: str, default: float | None = None) -> float:
        return self.duration(entries, "ttl", kp, self.default_ttl if default is None else default, zero=False)

    def stale(self, entries: _Entries, kp: str, default: float | None = None) -> float:
        return self.duration(entries, "stale", kp, self.default_stale if default is None else default, zero=True)

    def duration(self, entries: _Entries, key: str, kp: str, default: float, *, zero: bool) -> float:
        if key not in entries:
            return default
        text = self.text(entries, key, kp)
        where, dkp = entries[key][1], f"{kp}.{key}"
        try:
            seconds = parse_duration(text)
        except ValueError as e:
            raise self.error(where, dkp, f"{e} (use a Go duration such as 30s, 5m or 1h30m)") from None
        if seconds < 0 or (seconds == 0 and not zero):
            limit = "zero or more" if zero else "greater than zero"
            raise self.error(where, dkp, f"must be {limit}, got {_show(text)}")
        return seconds

    # -- node helpers -----------------------------------------------------------

    def mapping(self, node: Node, kp: str, allowed: tuple[str, ...]) -> _Entries:
        if not isinstance(node, MappingNode):
            raise self.error(node, kp or None, f"must be a mapping, got {_kind(node)}")
        entries: _Entries = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.error(key_node, kp or None, f"keys must be plain names, got {_kind(key_node)}")
            name = key_node.value
            key_path = f"{kp}.{name}" if kp else name
            if name not in allowed:
                raise self.error(key_node, key_path, f"unknown key {_show(name)}; allowed: {', '.join(allowed)}")
            if name in entries:
                first = _line(entries[name][0])
                raise self.error(key_node, key_path, f"duplicate key {_show(name)} (first at line {first})")
            entries[name] = (key_node, value_node)
        return entries

    def sequence(self, key_node: Node, value_node: Node, kp: str) -> SequenceNode:
        if _is_null(value_node):
            raise self.error(key_node, kp, "missing value: expected a list")
        if not isinstance(value_node, SequenceNode):
            raise self.error(value_node, kp, f"must be a list, got {_kind(value_node)}")
        return value_node

    def text(self, entries: _Entries, key: str, kp: str, *, allow_blank: bool = False) -> str:
        key_node, value_node = entries[key]
        return self.scalar(value_node, f"{kp}.{key}", null_line=_line(key_node), allow_blank=allow_blank)

    def scalar(self, node: Node, kp: str, *, null_line: int | None = None, allow_blank: bool = False) -> str:
        if not isinstance(node, ScalarNode):
            raise self.error(node, kp, f"must be text, got {_kind(node)}")
        if _is_null(node):
            # An empty value's mark can sit on a later line; the key's line is where to look.
            where = null_line if null_line is not None else node
            if node.value:
                raise self.error(where, kp, f"is null ({node.value}); quote it if you mean the text")
            raise self.error(where, kp, "missing value")
        if not allow_blank and not node.value.strip():
            raise self.error(node, kp, "must not be empty")
        return node.value
