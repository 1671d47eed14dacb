"""`parameters:` groups by path in config.yaml: strict checks with file:line, and which names they let be read."""

from __future__ import annotations

import pytest

from cache_extension.config import ConfigError, parse_config
from cache_extension.config_paths import DEFAULT_MAX, Listing

PATH = "/var/task/config.yaml"


def parse(text):
    return parse_config(text, path=PATH, default_region="us-west-2", default_ttl=300.0)


def test_a_path_group():
    config = parse("parameters:\n  - path: /app/prod\n    recursive: true\n    max: 50\n    ttl: 1m\n"
                   "  - names: [/app/prod/listed]\n")
    group = config.items[0]
    assert (group.name, group.listing, group.ttl, group.line) == ("/app/prod", Listing(True, 50), 60.0, 2)
    assert config.get("parameters", "/app/prod") is None  # the group's own entry is not a readable name
    deep = config.resolve("parameters", "/app/prod/a/b")
    assert (deep.member_of, deep.ttl, deep.listing) == ("/app/prod", 60.0, None)
    assert config.resolve("parameters", "/app/prod/listed").member_of is None  # listed by name: its own item
    assert parse("parameters:\n  - path: /app/\n").items[0].listing == Listing(False, DEFAULT_MAX)


@pytest.mark.parametrize("name, readable", [
    ("/app/prod/x", True), ("/app/prod/x/y", False), ("/app/prod", False), ("/app/prod/", False),
    ("/app/production", False), ("/app/other/x", False), ("x", False),
])
def test_names_a_path_lets_be_read(name, readable):
    config = parse("parameters:\n  - path: /app/prod/\n")  # not recursive: direct children only
    assert (config.resolve("parameters", name) is not None) is readable
    assert config.resolve("secrets", name) is None


def test_allow_and_paths_together():
    config = parse("parameters:\n  - path: /app/prod/\nallow:\n  parameters: ['/shared/*']\n")
    assert config.resolve("parameters", "/shared/x").member_of is None
    assert config.resolve("parameters", "/app/prod/x").member_of == "/app/prod/"
    assert config.resolve("parameters", "/elsewhere/x") is None


@pytest.mark.parametrize("text, line, key, says", [
    ("parameters:\n  - path: /a/\n    names: [x]\n", 3, "parameters[0].names", "either 'names' or 'path'"),
    ("parameters:\n  - path: app/\n", 2, "parameters[0].path", "must start with '/'"),
    ("parameters:\n  - path: /\n", 2, "parameters[0].path", "must start with '/'"),
    ("parameters:\n  - path: /a b/\n", 2, "parameters[0].path", "contains a space"),
    ("parameters:\n  - path: /a/\n    recursive: maybe\n", 3, "parameters[0].recursive", "true or false"),
    ("parameters:\n  - path: /a/\n    recursive: 'true'\n", 3, "parameters[0].recursive", "true or false"),
    ("parameters:\n  - path: /a/\n    max: 0\n", 3, "parameters[0].max", "from 1 to 10000"),
    ("parameters:\n  - path: /a/\n    max: 10001\n", 3, "parameters[0].max", "from 1 to 10000"),
    ("parameters:\n  - path: /a/\n    max: lots\n", 3, "parameters[0].max", "from 1 to 10000"),
    ("parameters:\n  - path: /a/\n    max: 1.5\n", 3, "parameters[0].max", "from 1 to 10000"),
    ("parameters:\n  - names: [x]\n    recursive: true\n", 3, "parameters[0].recursive", "goes with 'path:'"),
    ("parameters:\n  - names: [x]\n    max: 5\n", 3, "parameters[0].max", "goes with 'path:'"),
    ("parameters:\n  - path: /a/\n  - path: /a/b\n", 3, "parameters[1].path", "overlaps path '/a/' at line 2"),
    ("parameters:\n  - path: /a/b/\n  - region: eu-west-1\n    path: /a\n", 4, "parameters[1].path", "overlaps"),
    ("parameters:\n  - path: /a/\n    max: 6000\n  - path: /b/\n    max: 5000\n", 4, "parameters[1].path",
     "add up to more than 10000 values"),
    ("secrets:\n  - path: /a/\n", 2, "secrets[0].path", "unknown key 'path'"),
    ("parameters:\n  - region: us-west-2\n", 2, "parameters[0]", "missing required key 'names' (or 'path')"),
])
def test_errors_name_file_line_and_key(text, line, key, says):
    with pytest.raises(ConfigError) as raised:
        parse(text)
    error = raised.value
    assert (error.path, error.line, error.key) == (PATH, line, key), str(error)
    assert says in error.problem
    assert str(error).startswith(f"{PATH}:{line}: {key}: ")
