"""`secrets:` groups by filter in config.yaml: strict checks with file:line, and which names they let be read."""

from __future__ import annotations

import pytest

from cache_extension.config import ConfigError, parse_config
from cache_extension.config_paths import Listing

PATH = "/var/task/config.yaml"


def parse(text):
    return parse_config(text, path=PATH, default_region="us-west-2", default_ttl=300.0)


def test_a_filter_group():
    config = parse("secrets:\n  - filter:\n      name: app/\n      tag-key: [team, owner]\n    max: 50\n    ttl: 1m\n")
    group = config.items[0]
    assert group.listing == Listing(max=50, filters=(("name", ("app/",)), ("tag-key", ("team", "owner"))))
    assert (group.name, group.ttl, group.line) == ("(filter name=app/ tag-key=team,owner)", 60.0, 2)
    assert config.resolve("secrets", "app/db").member_of == group.name
    assert config.resolve("secrets", "APP/db").member_of == group.name  # AWS matches name prefixes in any case
    assert config.resolve("secrets", "other/db") is None  # outside the prefix: 404 NotConfigured, no call
    assert config.resolve("secrets", group.name) is None  # the group's own entry is not a readable name
    assert config.resolve("parameters", "app/db") is None


def test_a_filter_by_tags_only_leaves_names_to_its_listing_after_allow():
    config = parse("secrets:\n  - filter: {tag-key: team}\n  - names: [listed]\nallow:\n  secrets: ['shared/*']\n")
    group = config.items[0]
    assert config.resolve("secrets", "any/name").member_of == group.name  # its listing decides: no call
    assert config.resolve("secrets", "listed").member_of is None
    assert config.resolve("secrets", "shared/x").member_of is None  # allow: first
    # No other version of a name only its listing could vouch for.
    assert config.resolve_version("secrets", "any/name", "any/name", version_stage="AWSPREVIOUS") is None


@pytest.mark.parametrize("text, line, key, says", [
    ("secrets:\n  - filter: {name: a/}\n    names: [x]\n", 3, "secrets[0].names", "either 'names' or 'filter'"),
    ("secrets:\n  - filter: {name: a/}\n    versionstage: AWSPREVIOUS\n", 3, "secrets[0].versionstage",
     "AWSCURRENT version only"),
    ("secrets:\n  - filter: {}\n", 2, "secrets[0].filter", "must be a mapping"),
    ("secrets:\n  - filter: app/\n", 2, "secrets[0].filter", "must be a mapping"),
    ("secrets:\n  - filter: {description: x}\n", 2, "secrets[0].filter.description",
     "unknown key 'description'; allowed: name, tag-key, tag-value"),
    ("secrets:\n  - filter: {name: '!app/'}\n", 2, "secrets[0].filter.name", "negative matches"),
    ("secrets:\n  - filter: {tag-value: 'a*b'}\n", 2, "secrets[0].filter.tag-value", "letters, digits"),
    ("secrets:\n  - filter: {name: []}\n", 2, "secrets[0].filter.name", "1 to 10 values"),
    ("secrets:\n  - filter: {name: [a, b, c, d, e, f, g, h, i, j, k]}\n", 2, "secrets[0].filter.name", "1 to 10"),
    ("secrets:\n  - filter: {name: a/}\n    max: 0\n", 3, "secrets[0].max", "from 1 to 10000"),
    ("secrets:\n  - names: [x]\n    max: 5\n", 3, "secrets[0].max", "goes with 'filter:'"),
    ("secrets:\n  - region: us-west-2\n", 2, "secrets[0]", "missing required key 'names' (or 'filter')"),
    ("secrets:\n  - filter: {name: a/}\n    max: 9000\n  - filter: {name: b/}\n    max: 2000\n", 4,
     "secrets[1].filter", "add up to more than 10000 values"),
])
def test_errors_name_file_line_and_key(text, line, key, says):
    with pytest.raises(ConfigError) as raised:
        parse(text)
    error = raised.value
    assert (error.path, error.line, error.key) == (PATH, line, key), str(error)
    assert says in error.problem, error.problem
    assert str(error).startswith(f"{PATH}:{line}: {key}: ")
