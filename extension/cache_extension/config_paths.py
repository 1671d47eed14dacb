"""`parameters:` groups by path: `path: /myapp/prod/` (with `recursive:` and `max:`) instead of `names:`.

The group is one cache entry of its own (an Item with a Listing), fetched with GetParametersByPath; each
parameter under the path becomes an entry served under its full name (an Item whose member_of is the path).
A name under a path may be read (config.Config.resolve); what the last listing did not return is 404 with no
AWS call until the group's TTL runs out.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX = 1000
MAX_MAX = 10_000  # config.MAX_ITEMS: the most entries one configuration may make
PATH_KEYS = ("region", "path", "recursive", "max", "ttl", "stale")


@dataclass(frozen=True)
class Listing:
    """How a group is listed: GetParametersByPath's Recursive, the most values kept, and for a `secrets:` group
    BatchGetSecretValue's Filters as ((key, (value, ...)), ...) (config_filters.py)."""

    recursive: bool = False
    max: int = DEFAULT_MAX
    filters: tuple = ()


def prefix(path: str) -> str:
    """The path as a name prefix: "/myapp/prod" and "/myapp/prod/" both hold "/myapp/prod/x"."""
    return path.rstrip("/") + "/"


def covers(path: str, listing: Listing, name: str) -> bool:
    """Whether `name` is under `path` as GetParametersByPath lists it: directly, or at any depth when recursive."""
    start = prefix(path)
    if not name.startswith(start) or len(name) == len(start):
        return False
    return listing.recursive or "/" not in name[len(start):]


def overlap(a: str, b: str) -> bool:
    """Two paths one of which holds the other (or the same path): their members could be listed twice."""
    return prefix(a).startswith(prefix(b)) or prefix(b).startswith(prefix(a))


def parse_path_group(parser, entries: dict, node, kp: str) -> tuple[str, Listing, int]:
    """(path, listing, line) of a `parameters:` group with `path:`, checked strictly; parser is config._Parser."""
    if "names" in entries:
        raise parser.error(entries["names"][0], f"{kp}.names", "a group has either 'names' or 'path', not both")
    path_node = entries["path"][1]
    path = parser.text(entries, "path", kp)
    if not path.startswith("/") or path == "/":
        raise parser.error(path_node, f"{kp}.path", f"{path!r} must start with '/' and name a hierarchy, "
                                                     "e.g. /myapp/prod/ (GetParametersByPath reads names under it)")
    parser.check_name("parameters", path, path_node, f"{kp}.path")
    recursive = False
    if "recursive" in entries:
        value_node = entries["recursive"][1]
        if value_node.tag != "tag:yaml.org,2002:bool":
            raise parser.error(value_node, f"{kp}.recursive", f"must be true or false, got {value_node.value!r}")
        recursive = value_node.value.lower() in ("true", "yes", "on")
    return path, Listing(recursive, parse_max(parser, entries, kp)), path_node.start_mark.line + 1


def parse_max(parser, entries: dict, kp: str) -> int:
    """A group's `max:`, DEFAULT_MAX without one."""
    if "max" not in entries:
        return DEFAULT_MAX
    value_node = entries["max"][1]
    text = parser.text(entries, "max", kp)
    if value_node.tag != "tag:yaml.org,2002:int" or not text.isdigit() or not 1 <= int(text) <= MAX_MAX:
        raise parser.error(value_node, f"{kp}.max", f"must be a whole number from 1 to {MAX_MAX}, got {text!r}")
    return int(text)
