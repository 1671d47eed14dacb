"""`secrets:` groups by filter: `filter:` (name prefix, tag key, tag value) instead of `names:`.

The group is one cache entry of its own (an Item with a Listing whose filters are set), fetched with
BatchGetSecretValue's Filters, 20 secrets a call; each matching secret becomes an entry served under its name
(store_paths.py). A filter with a name prefix lets names with that prefix be read (the listing decides which
exist); one with tags only can say nothing from a name, so there the listing alone decides, after `allow:`.
"""

from __future__ import annotations

import re

from .config_paths import Listing, parse_max

FILTER_GROUP_KEYS = ("region", "filter", "max", "ttl", "stale")
FILTER_KEYS = ("name", "tag-key", "tag-value")  # BatchGetSecretValue's Filters keys, as AWS spells them
MAX_VALUES = 10  # values per filter key (Filter.Values)
# Filter.Values' pattern without its leading '!' (a negative match, which a read's name could not be checked by).
_VALUE = re.compile(r"[a-zA-Z0-9 :_@/+=.\-]{1,512}\Z")


def label(filters: tuple) -> str:
    """The group's name in logs and entry keys: no secret name can hold a space or parentheses."""
    return "(filter " + " ".join(f"{key}={','.join(values)}" for key, values in filters) + ")"


def aws_filters(listing: Listing) -> list[dict]:
    """The group's filter as BatchGetSecretValue's (and ListSecrets') `Filters` parameter takes it."""
    return [{"Key": key, "Values": list(values)} for key, values in listing.filters]


def names_prefixes(listing: Listing) -> tuple[str, ...]:
    return dict(listing.filters).get("name", ())


def covers(listing: Listing, name: str, definite: bool) -> bool:
    """Whether a read of `name` goes to this group: by its name prefixes (Secrets Manager matches them without
    regard to case), or, for a filter by tags only, in the second pass (after `allow:`), where only its listing
    can say."""
    prefixes = names_prefixes(listing)
    if prefixes:
        return definite and any(name.lower().startswith(prefix.lower()) for prefix in prefixes)
    return not definite


def parse_filter_group(parser, entries: dict, node, kp: str) -> tuple[str, Listing, int]:
    """(label, listing, line) of a `secrets:` group with `filter:`; parser is config._Parser."""
    from yaml.nodes import MappingNode, SequenceNode

    for key in ("names", "versionstage"):
        if key in entries:
            raise parser.error(entries[key][0], f"{kp}.{key}", "a group has either 'names' or 'filter', not both"
                               if key == "names" else "a filter group reads each secret's AWSCURRENT version only")
    key_node, filter_node = entries["filter"]
    fkp = f"{kp}.filter"
    if not isinstance(filter_node, MappingNode) or not filter_node.value:
        raise parser.error(filter_node, fkp, f"must be a mapping of {', '.join(FILTER_KEYS)} to text or a list")
    filters = []
    for name, (_, value_node) in parser.mapping(filter_node, fkp, FILTER_KEYS).items():
        vkp = f"{fkp}.{name}"
        nodes = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        if not 1 <= len(nodes) <= MAX_VALUES:
            raise parser.error(value_node, vkp, f"must hold 1 to {MAX_VALUES} values")
        values = tuple(parser.scalar(value, vkp) for value in nodes)
        for value, where in zip(values, nodes):
            if value.startswith("!"):
                raise parser.error(where, vkp, f"{value[:60]!r}: negative matches ('!') are not supported")
            if not _VALUE.match(value):
                raise parser.error(where, vkp, f"{value[:60]!r}: filter values hold letters, digits, spaces and "
                                               ":_@/+=.- only, at most 512 characters")
        filters.append((name, values))
    filters = tuple(sorted(filters))
    return label(filters), Listing(max=parse_max(parser, entries, kp), filters=filters), key_node.start_mark.line + 1
