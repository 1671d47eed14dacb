import base64
import json
from decimal import Decimal

import pytest

from cache_extension.dynamodb_json import item_to_json, json_number


def test_every_attribute_type_becomes_plain_json():
    item = {
        "pKey": {"S": "pKey1"},
        "count": {"N": "42"},
        "big": {"N": "12345678901234567890.123456789012345678"},
        "flag": {"BOOL": True},
        "off": {"BOOL": False},
        "nothing": {"NULL": True},
        "blob": {"B": b"\x00\xffbin"},
        "map": {"M": {"inner": {"S": "x"}, "n": {"N": "-1.5"}}},
        "list": {"L": [{"S": "a"}, {"N": "1"}, {"L": []}]},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2.5"]},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "unicode": {"S": "żółw \"quoted\" \\ \n"},
    }
    decoded = json.loads(item_to_json(item), parse_float=Decimal)
    assert decoded == {
        "pKey": "pKey1",
        "count": 42,
        "big": Decimal("12345678901234567890.123456789012345678"),
        "flag": True,
        "off": False,
        "nothing": None,
        "blob": base64.b64encode(b"\x00\xffbin").decode(),
        "map": {"inner": "x", "n": Decimal("-1.5")},
        "list": ["a", 1, []],
        "ss": ["a", "b"],
        "ns": [1, Decimal("2.5")],
        "bs": ["AQ==", "Ag=="],
        "unicode": "żółw \"quoted\" \\ \n",
    }


def test_numbers_keep_every_digit_in_the_raw_text():
    body = item_to_json({"n": {"N": "98765432109876543210987654321098765432"}})
    assert body == b'{"n":98765432109876543210987654321098765432}'


@pytest.mark.parametrize(
    "text, expected",
    [("0", "0"), ("-7", "-7"), ("1E+5", "1E+5"), ("1e-130", "1e-130"), ("+5", "5"), (".5", "0.5"), ("007", "7"), ("5.", "5")],
)
def test_number_text_is_valid_json(text, expected):
    assert json_number(text) == expected
    json.loads(json_number(text))


@pytest.mark.parametrize("text", ["NaN", "Infinity", "abc", ""])
def test_non_numbers_are_refused(text):
    with pytest.raises(ValueError):
        json_number(text)


def test_unknown_type_is_refused():
    with pytest.raises(ValueError):
        item_to_json({"x": {"Z": "?"}})
