from __future__ import annotations

import textwrap

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cache_extension.config import MAX_ITEMS, Config, ConfigError, Item, load_config, parse_config

PATH = "/var/task/config.yaml"

# AWS's original Go sample (aws-samples/aws-lambda-extensions, cache-extension-demo), unchanged.
GO_SAMPLE = """\
parameters:
  - region: us-west-2
    names:
      - CacheExtensions_Parameter1
      - /aws/reference/secretsmanager/secret_info
dynamodb:
  - table: DynamoDbTable
    hashkey: pKey
    hashkeytype: S
    hashkeyvalue: pKey1
    sortkey: sKey
    sortkeytype: S
    sortkeyvalue: sKey1
"""


def parse(text: str, *, region: str | None = "us-east-1", ttl: float = 300.0) -> Config:
    return parse_config(textwrap.dedent(text), path=PATH, default_region=region, default_ttl=ttl)


def error(text: str, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, **kw)
    return str(info.value)


# -- valid files ---------------------------------------------------------------------


def test_go_sample_loads_unchanged():
    config = parse(GO_SAMPLE)
    assert [(i.source, i.name, i.region) for i in config.items] == [
        ("parameters", "CacheExtensions_Parameter1", "us-west-2"),
        ("parameters", "/aws/reference/secretsmanager/secret_info", "us-west-2"),
        ("dynamodb", "DynamoDbTable-pKey1-sKey1", "us-east-1"),
    ]
    item = config.get("dynamodb", "DynamoDbTable-pKey1-sKey1")
    assert item is not None
    assert item.table == "DynamoDbTable"
    assert item.key == {"pKey": {"S": "pKey1"}, "sKey": {"S": "sKey1"}}
    assert item.line == 7
    assert item.ttl == 300.0
    assert config.get("parameters", "CacheExtensions_Parameter1").line == 4
    assert config.get("parameters", "nope") is None
    assert config.get("secrets", "CacheExtensions_Parameter1") is None
    assert [i.name for i in config.by_source("parameters")] == [
        "CacheExtensions_Parameter1", "/aws/reference/secretsmanager/secret_info",
    ]
    assert config.by_source("secrets") == []
    assert config.path == PATH


def test_load_config_reads_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GO_SAMPLE.encode())  # a BOM is tolerated
    config = load_config(str(path), default_region="eu-west-1", default_ttl=60.0)
    assert len(config.items) == 3
    assert config.path == str(path)


def test_items_are_hashable():
    config = parse(GO_SAMPLE)
    assert len(set(config.items)) == 3


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n", "parameters: []\n", "parameters:\n",
                                  "secrets: []\ndynamodb: []\n"])
def test_empty_configs_are_valid(text):
    assert parse(text, region=None).items == ()


def test_default_region_and_scalar_names():
    config = parse("""
        parameters:
          - names: [1234, "quoted", 007, 1.0e3, true, ~x]
    """, region="ap-south-1")
    assert [i.name for i in config.items] == ["1234", "quoted", "007", "1.0e3", "true", "~x"]
    assert {i.region for i in config.items} == {"ap-south-1"}


def test_secrets_section():
    config = parse("""
        secrets:
          - region: eu-central-1
            versionstage: AWSPREVIOUS
            names:
              - prod/db
              - arn:aws:secretsmanager:eu-central-1:123456789012:secret:api-AbCdEf
          - names: [plain]
    """)
    db, arn, plain = config.items
    assert (db.source, db.name, db.region, db.version_stage, db.line) == (
        "secrets", "prod/db", "eu-central-1", "AWSPREVIOUS", 6)
    assert arn.name.startswith("arn:aws:secretsmanager:") and arn.version_stage == "AWSPREVIOUS"
    assert (plain.region, plain.version_stage) == ("us-east-1", None)
    assert config.get("secrets", "prod/db") is db


def test_key_types():
    config = parse("""
        dynamodb:
          - table: T
            hashkey: id
            hashkeytype: N
            hashkeyvalue: 007
            sortkey: blob
            sortkeytype: B
            sortkeyvalue: aGVsbG8=
          - table: T
            hashkey: id
            hashkeyvalue: 007
          - table: T
            hashkey: id
            hashkeytype: N
            hashkeyvalue: -1.5e3
    """)
    number, string, negative = config.items
    assert number.key == {"id": {"N": "007"}, "blob": {"B": b"hello"}}
    assert number.name == "T-007-aGVsbG8="
    assert string.key == {"id": {"S": "007"}}
    assert string.name == "T-007"
    assert negative.key == {"id": {"N": "-1.5e3"}}


def test_alias():
    config = parse("""
        dynamodb:
          - name: feature-flags
            table: my-table
            hashkey: pk
            hashkeyvalue: tenant-1
            region: us-west-1
    """)
    (item,) = config.items
    assert (item.name, item.table, item.region) == ("feature-flags", "my-table", "us-west-1")
    assert config.get("dynamodb", "feature-flags") is item
    assert config.get("dynamodb", "my-table-tenant-1") is None


def test_ttl_inheritance():
    config = parse("""
        parameters:
          - ttl: 30s
            names: [a, b]
          - names: [c]
        secrets:
          - ttl: 1h30m
            names: [s]
        dynamodb:
          - table: T
            hashkey: k
            hashkeyvalue: v
            ttl: 300ms
          - table: T
            hashkey: k
            hashkeyvalue: w
    """, ttl=42.0)
    ttls = {(i.source, i.name): i.ttl for i in config.items}
    assert ttls == {
        ("parameters", "a"): 30.0, ("parameters", "b"): 30.0, ("parameters", "c"): 42.0,
        ("secrets", "s"): 5400.0,
        ("dynamodb", "T-v"): pytest.approx(0.3), ("dynamodb", "T-w"): 42.0,
    }


def test_same_name_in_different_sources_is_fine():
    config = parse("""
        parameters:
          - names: [x]
        secrets:
          - names: [x]
    """)
    assert config.get("parameters", "x").source == "parameters"
    assert config.get("secrets", "x").source == "secrets"


# -- errors: each names file, line and key ----------------------------------------------


def test_missing_file_names_path_and_variables(tmp_path):
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        load_config(path, default_region="us-east-1", default_ttl=1.0)
    message = str(info.value)
    assert message.startswith(f"{path}: cannot read")
    assert "CACHE_EXTENSION_CONFIG" in message and "LAMBDA_TASK_ROOT" in message


def test_unreadable_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path), default_region="us-east-1", default_ttl=1.0)  # a directory


def test_invalid_utf8(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"parameters:\n  - names: [\xff]\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path), default_region="us-east-1", default_ttl=1.0)
    assert str(info.value) == f"{path}:2: the file is not valid UTF-8"


def test_error_attributes():
    with pytest.raises(ConfigError) as info:
        parse("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    hashkeytype: X\n")
    e = info.value
    assert (e.path, e.line, e.key) == (PATH, 5, "dynamodb[0].hashkeytype")
    assert str(e) == f"{PATH}:5: dynamodb[0].hashkeytype: must be one of S, N, B, got 'X'"


@pytest.mark.parametrize("text,line,message", [
    # YAML syntax
    ("parameters:\n  - names: [a\n  - b: c\n", 3, "invalid YAML"),
    ("parameters:\n  - region: a\n   names: b\n", 3, "invalid YAML"),
    ("parameters: []\nparameters: {\n", 3, "invalid YAML"),
    ("a: 1\n---\nb: 2\n", 2, "invalid YAML"),
    ("parameters: []\n\x00\n", 2, "invalid YAML: unacceptable character"),
])
def test_yaml_syntax_errors(text, line, message):
    assert error(text).startswith(f"{PATH}:{line}: {message}")


@pytest.mark.parametrize("text,line,words", [
    ("parameters:\n  - region: a\n   names: b\n", 3, "this line is indented differently from the lines above it "
     "(the block that starts at line 2)"),
    ("parameters:\n  - region: a\n    names:\n      - A\n  names2: x\n", 5, "indented differently"),
    ("parameters:\n\t- a\n", 2, "a tab character; YAML indents with spaces only"),
    ("parameters:\n  - names: a: b\n", 2, "a ':' where no key can start"),
    ("parameters:\n  - names: ['a\n", 3, "the quoted text opened at line 2 is not closed"),
    ("parameters:\n  - names: [a\n  - b: c\n", 3, "the list opened at line 2 is not closed with ']'"),
    ("parameters:\n  - region: a\n    names\n    x: y\n", 4, "line 3 has no ':' after its key"),
    ("a: 1\n---\nb: 2\n", 2, "a second YAML document ('---')"),
    ("a: *x\n", 1, "undefined alias 'x'"),
])
def test_yaml_syntax_errors_in_plain_words(text, line, words):
    message = error(text)
    assert message.startswith(f"{PATH}:{line}: invalid YAML: ") and words in message
    for jargon in ("<block end>", "<block mapping start>", "while parsing", "while scanning", "found '?'"):
        assert jargon not in message


def test_wrongly_indented_name_merging_two_names_is_an_error():
    # One column too far: YAML folds the second item into the first, "A - /b", which AWS would refuse.
    message = error("""\
        parameters:
          - region: us-west-2
            names:
              - CacheExtensions_Parameter1
               - /aws/reference/secretsmanager/secret_info
        """)
    assert message.startswith(f"{PATH}:4: parameters[0].names[0]: 'CacheExtensions_Parameter1 - /aws/reference/")
    assert "contains a space; SSM parameter names cannot" in message and "indented" in message
    assert "contains a space" in error("secrets:\n  - names: ['my secret']\n")
    assert "contains '\\t'" in error('parameters:\n  - names: ["a\\tb"]\n')
    assert "allow.parameters[0]" in error("allow:\n  parameters:\n    - /app/*\n     - /b/*\n")


def test_every_name_aws_accepts_is_kept():
    # Only what AWS refuses is refused: secret names take / _ + = . @ -, and ARNs and version selectors have ':'.
    names = ["a/b_c+d=e.f@g-h", "arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf", "p:3", "é"]
    config = parse("secrets:\n  - names:\n" + "".join(f"      - '{n}'\n" for n in names) +
                   "parameters:\n  - names: ['/a/b.c-d_e', 'arn:aws:ssm:us-east-1:123456789012:parameter/a']\n")
    assert [item.name for item in config.items] == names + ["/a/b.c-d_e", "arn:aws:ssm:us-east-1:123456789012:parameter/a"]


@pytest.mark.parametrize("text", ["", "# nothing here\n", "parameters:\n", "parameters: []\ndynamodb: []\n"])
def test_empty_config_warns_once(tmp_path, caplog, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with caplog.at_level("WARNING"):
        config = load_config(str(path), default_region="us-east-1", default_ttl=1.0)
    assert config.items == ()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"{path} lists no items: nothing is prefetched and every read is refused; add parameters:, "
                        "secrets:, dynamodb: or allow: (CACHE_EXTENSION_CONFIG names the file)"]


def test_config_with_items_or_allow_does_not_warn(tmp_path, caplog):
    for text in (GO_SAMPLE, "allow:\n  parameters: ['/app/*']\n"):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        with caplog.at_level("WARNING"):
            load_config(str(path), default_region="us-east-1", default_ttl=1.0)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize("text,line,key,message", [
    # unknown keys, naming the allowed ones
    ("parameters: []\nparameter: []\n", 2, "parameter",
     "unknown key 'parameter'; allowed: parameters, secrets, dynamodb"),
    ("parameters:\n  - names: [a]\n    regoin: x\n", 3, "parameters[0].regoin",
     "unknown key 'regoin'; allowed: region, names, path, recursive, max, ttl, stale"),
    ("parameters:\n  - names: [a]\n    versionstage: x\n", 3, "parameters[0].versionstage", "unknown key"),
    ("secrets:\n  - names: [a]\n    ttl: 1s\n    version: x\n", 4, "secrets[0].version",
     "unknown key 'version'; allowed: region, names, versionstage, filter, max, ttl, stale"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    hashKeyType: S\n", 5,
     "dynamodb[0].hashKeyType", "unknown key 'hashKeyType'; allowed: table, hashkey, hashkeytype"),
    # wrong types
    ("- names: [a]\n", 1, None, "the top level must be a mapping"),
    ("just text\n", 1, None, "the top level must be a mapping"),
    ("parameters:\n  names: [a]\n", 2, "parameters", "must be a list, got a mapping"),
    ("parameters:\n  - a\n", 2, "parameters[0]", "must be a mapping, got the text 'a'"),
    ("parameters:\n  - names: a\n", 2, "parameters[0].names", "must be a list, got the text 'a'"),
    ("parameters:\n  - names:\n", 2, "parameters[0].names", "missing value: expected a list"),
    ("parameters:\n  - names:\n      - a\n      - {b: c}\n", 4, "parameters[0].names[1].b", "unknown key 'b'; allowed: name, ttl, stale"),
    ("parameters:\n  - names:\n      - {ttl: 5s}\n", 3, "parameters[0].names[0]", "missing required key 'name'"),
    ("parameters:\n  - names:\n      - {name: a, stale: -1s}\n", 3, "parameters[0].names[0].stale", "must be zero or more"),
    ("parameters:\n  - names: [a]\n    stale: soon\n", 3, "parameters[0].stale", ""),
    ("parameters:\n  - names:\n      - a\n      - [b]\n", 4, "parameters[0].names[1]", "must be text, got a list"),
    ("parameters:\n  - names: [a]\n    region: [x]\n", 3, "parameters[0].region", "must be text, got a list"),
    ("parameters:\n  - names: [a]\n    region:\n", 3, "parameters[0].region", "missing value"),
    ("parameters:\n  - names: [a]\n    ttl:\n", 3, "parameters[0].ttl", "missing value"),
    ("parameters:\n  - names: [a]\n    ttl:\n\n\n", 3, "parameters[0].ttl", "missing value"),
    ("parameters:\n  - names: [a]\n    ttl: null\n", 3, "parameters[0].ttl", "is null (null)"),
    ("parameters:\n  - {names: [a], ? [k] : v}\n", 2, "parameters[0]", "keys must be plain names"),
    ("dynamodb:\n  - table:\n      name: T\n    hashkey: k\n    hashkeyvalue: v\n", 3, "dynamodb[0].table",
     "must be text, got a mapping"),
    # missing required keys (line of the mapping)
    ("parameters:\n  - region: us-west-2\n", 2, "parameters[0]", "missing required key 'names'"),
    ("dynamodb:\n  - hashkey: k\n    hashkeyvalue: v\n", 2, "dynamodb[0]", "missing required key 'table'"),
    ("dynamodb:\n  - table: T\n    hashkeyvalue: v\n", 2, "dynamodb[0]", "missing required key 'hashkey'"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n", 2, "dynamodb[0]", "missing required key 'hashkeyvalue'"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    sortkey: s\n", 5,
     "dynamodb[0].sortkey", "needs 'sortkeyvalue' too"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    sortkeyvalue: s\n", 5,
     "dynamodb[0].sortkeyvalue", "needs 'sortkey' too"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    sortkeytype: N\n", 5,
     "dynamodb[0].sortkeytype", "given without 'sortkey'"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    sortkey: k\n    sortkeyvalue: w\n", 5,
     "dynamodb[0].sortkey", "must differ from hashkey 'k'"),
    # duplicate keys in one mapping
    ("parameters:\n  - names: [a]\n    region: x\n    region: y\n", 4, "parameters[0].region",
     "duplicate key 'region' (first at line 3)"),
    ("parameters: []\nsecrets: []\nparameters: []\n", 3, "parameters", "duplicate key 'parameters' (first at line 1)"),
    # durations
    ("parameters:\n  - names: [a]\n    ttl: 30\n", 3, "parameters[0].ttl", 'time: missing unit in duration "30"'),
    ("secrets:\n  - names: [a]\n    ttl: 5d\n", 3, "secrets[0].ttl", 'time: unknown unit "d" in duration "5d"'),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    ttl: 1h 30m\n", 5, "dynamodb[0].ttl",
     'time: unknown unit "h " in duration "1h 30m"'),
    ("parameters:\n  - names: [a]\n    ttl: -1s\n", 3, "parameters[0].ttl", "must be greater than zero, got '-1s'"),
    ("parameters:\n  - names: [a]\n    ttl: 0\n", 3, "parameters[0].ttl", "must be greater than zero"),
    # key types and values
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeytype: s\n    hashkeyvalue: v\n", 4,
     "dynamodb[0].hashkeytype", "must be one of S, N, B, got 's'"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeytype: N\n    hashkeyvalue: abc\n", 5,
     "dynamodb[0].hashkeyvalue", "'abc' is not a number (hashkeytype is N)"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeytype: N\n    hashkeyvalue: .nan\n", 5,
     "dynamodb[0].hashkeyvalue", "'.nan' is not a number"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    sortkey: s\n    sortkeytype: B\n"
     "    sortkeyvalue: not base64!\n", 7, "dynamodb[0].sortkeyvalue", "'not base64!' is not valid base64"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeytype: B\n    hashkeyvalue: aGVsbG8\n", 5,
     "dynamodb[0].hashkeyvalue", "'aGVsbG8' is not valid base64 (hashkeytype is B)"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: ''\n", 4, "dynamodb[0].hashkeyvalue",
     "must not be empty"),
    # empty names
    ("parameters:\n  - names:\n      - a\n      - ''\n", 4, "parameters[0].names[1]", "must not be empty"),
    ("parameters:\n  - names:\n      - a\n      -\n      - b\n", 4, "parameters[0].names[1]", "missing value"),
    ("secrets:\n  - names: ['  ']\n", 2, "secrets[0].names[0]", "must not be empty"),
    ("dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    name: ''\n", 5, "dynamodb[0].name",
     "must not be empty"),
    ("parameters:\n  - names: [a]\n    region: ''\n", 3, "parameters[0].region", "must not be empty"),
    ("secrets:\n  - names: [a]\n    versionstage: ''\n", 3, "secrets[0].versionstage", "must not be empty"),
])
def test_errors_name_file_line_and_key(text, line, key, message):
    got = error(text)
    prefix = f"{PATH}:{line}: {key}: " if key else f"{PATH}:{line}: "
    assert got.startswith(prefix + message), got


def test_no_region_anywhere():
    text = "parameters:\n  - names: [a]\n"
    assert error(text, region=None) == (
        f"{PATH}:2: parameters[0]: no region: add 'region:' here or set AWS_REGION")
    text = GO_SAMPLE
    assert error(text, region=None).startswith(f"{PATH}:7: dynamodb[0]: no region")
    assert parse("parameters:\n  - names: [a]\n    region: r\n", region=None).items[0].region == "r"


def test_duplicate_addresses_name_both_lines():
    got = error("""\
        parameters:
          - region: us-east-1
            names: [a, b]
          - region: us-west-2
            names:
              - c
              - b
    """)
    assert got == (f"{PATH}:7: parameters[1].names[1]: parameters address 'b' is already defined "
                   "at line 3 (parameters[0].names[1])")


def test_duplicate_dynamodb_addresses():
    got = error("""\
        dynamodb:
          - table: a-b
            hashkey: k
            hashkeyvalue: c
          - table: a
            hashkey: k
            hashkeyvalue: b-c
    """)
    assert got == f"{PATH}:5: dynamodb[1]: dynamodb address 'a-b-c' is already defined at line 2 (dynamodb[0])"
    got = error("""\
        dynamodb:
          - table: T
            hashkey: k
            hashkeyvalue: v
            name: flags
          - name: flags
            table: U
            hashkey: k
            hashkeyvalue: v
    """)
    assert got.startswith(f"{PATH}:6: dynamodb[1]: dynamodb address 'flags' is already defined at line 2")


def test_item_limit():
    names = "\n".join(f"      - p{i}" for i in range(MAX_ITEMS))
    assert len(parse(f"parameters:\n  - names:\n{names}\n").items) == MAX_ITEMS
    got = error(f"parameters:\n  - names:\n{names}\n      - extra\n")
    assert got.startswith(f"{PATH}:{MAX_ITEMS + 3}: parameters[0].names[{MAX_ITEMS}]: more than {MAX_ITEMS} items")


def test_aliases_cannot_multiply_items():
    groups = "\n".join(f"  - region: r{i}\n    names: *n" for i in range(200))
    text = "parameters:\n  - region: r\n    names: &n [" + ", ".join(f"x{i}" for i in range(100)) + "]\n" + groups
    with pytest.raises(ConfigError):
        parse(text)


def test_deep_nesting_is_a_config_error():
    assert error("[" * 10000).startswith(f"{PATH}:1: invalid YAML")


# -- property: nothing but ConfigError escapes ----------------------------------------------

_fragments = st.sampled_from([
    "parameters:", "secrets:", "dynamodb:", "\n", "  ", "- ", "names:", "region:", "ttl:", "versionstage:",
    "table:", "hashkey:", "hashkeytype:", "hashkeyvalue:", "sortkey:", "sortkeytype:", "sortkeyvalue:",
    "name:", "S", "N", "B", "30s", "1h30m", "-1s", "5d", "0", "x", "[", "]", "{", "}", ",", "&a ", "*a", "~",
    "null", "''", '"', "#", "!!str ", "!!binary ", "? ", ": ", "---", "|", ">", "\t", "aGVsbG8=", "007", "-1.5e3",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.lists(_fragments, max_size=60).map("".join)))
def test_arbitrary_text_raises_only_config_error(text):
    try:
        config = parse_config(text, path=PATH, default_region=None, default_ttl=1.0)
    except ConfigError as e:
        assert str(e).startswith(PATH + ":")
        assert e.line is not None and e.line >= 1
    else:
        assert all(isinstance(item, Item) for item in config.items)


_scalars = st.one_of(
    st.sampled_from(["S", "N", "B", "30s", "-1s", "1.5h", "us-east-1", "aGVsbG8=", "007", "", "x-y", "null"]),
    st.text(max_size=8), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=True),
)
_keys = st.sampled_from([
    "parameters", "secrets", "dynamodb", "names", "region", "ttl", "versionstage", "table", "hashkey",
    "hashkeytype", "hashkeyvalue", "sortkey", "sortkeytype", "sortkeyvalue", "name", "other",
])
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(_keys, children, max_size=6)),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents)
def test_arbitrary_structures_raise_only_config_error(document):
    text = yaml.safe_dump(document)
    try:
        parse_config(text, path=PATH, default_region="us-east-1", default_ttl=1.0)
    except ConfigError as e:
        assert e.line is not None and e.line >= 1


# --- allow: names read on demand ------------------------------------------------------------------

ALLOW_CONFIG = """\
parameters:
  - names: [/app/prefetched]
secrets:
  - names: [app/db]
    versionstage: AWSPREVIOUS
    ttl: 1m
allow:
  parameters: [/app/*, ExactName]
  secrets: [shared/*]
  ttl: 30s
"""


def allow_config():
    return parse_config(ALLOW_CONFIG, path="config.yaml", default_region="eu-west-1", default_ttl=300.0)


def test_allow_lists_names_read_on_demand():
    config = allow_config()
    assert config.resolve("parameters", "/app/prefetched") is config.get("parameters", "/app/prefetched")
    on_demand = config.resolve("parameters", "/app/other")
    assert (on_demand.name, on_demand.region, on_demand.ttl) == ("/app/other", "eu-west-1", 30.0)
    assert config.resolve("parameters", "ExactName") is not None
    assert config.resolve("parameters", "ExactNameAndMore") is None
    assert config.resolve("parameters", "/other/x") is None
    assert config.resolve("secrets", "shared/key").ttl == 30.0
    assert config.resolve("secrets", "/app/other") is None  # patterns apply to their own source only
    assert config.resolve("dynamodb", "/app/other") is None


def test_versions_of_configured_items_and_allowed_names():
    config = allow_config()
    configured = config.get("secrets", "app/db")
    assert config.resolve_version("secrets", "app/db", "app/db", version_stage="AWSPREVIOUS") is configured
    current = config.resolve_version("secrets", "app/db", "app/db")
    assert (current.version_stage, current.ttl) == (None, 60.0)  # another stage of a configured secret
    by_id = config.resolve_version("secrets", "app/db", "app/db", version_id="v-1")
    assert by_id.version_id == "v-1"
    labelled = config.resolve_version("parameters", "/app/prefetched", "/app/prefetched:prod")
    assert labelled.name == "/app/prefetched:prod"
    assert config.resolve_version("parameters", "Nope", "Nope:3") is None


@pytest.mark.parametrize(
    "text, line, key, problem",
    [
        ("allow:\n  parameters: [/a*b]\n", 2, "allow.parameters[0]", "'*' may only end a pattern"),
        ("allow:\n  dynamodb: [x]\n", 2, "allow.dynamodb", "unknown key 'dynamodb'"),
        ("allow:\n  parameters: x\n", 2, "allow.parameters", "must be a list"),
        ("allow:\n  parameters: [a]\n  ttl: 5\n", 3, "allow.ttl", "missing unit"),
    ],
)
def test_allow_errors(text, line, key, problem):
    with pytest.raises(ConfigError) as error:
        parse_config(text, path="config.yaml", default_region="us-east-1", default_ttl=300.0)
    assert str(error.value).startswith(f"config.yaml:{line}: {key}: ")
    assert problem in str(error.value)


def test_stale_windows_per_group_name_and_default():
    text = ("parameters:\n  - stale: 1m\n    names:\n      - a\n      - {name: b, ttl: 2s, stale: 0s}\n"
            "secrets:\n  - names: [s]\n"
            "dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    stale: 1h\n"
            "allow:\n  parameters: ['/app/*']\n  stale: 30s\n")
    config = parse_config(text, path=PATH, default_region="us-west-2", default_ttl=300, default_stale=120)
    assert [(i.name, i.ttl, i.stale) for i in config.items] == [
        ("a", 300, 60), ("b", 2, 0), ("s", 300, 120), ("T-v", 300, 3600)]
    assert config.resolve("parameters", "/app/x").stale == 30
