"""The upstream resources behind tests/contract/cases.json, and the running extension they need."""

from __future__ import annotations

from pathlib import Path

from local_lambda.aws import MotoServer, create_sample_resources, put_secret

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases.json"
CONFIG = HERE / "config.yaml"
REGION = "us-west-2"
BINARY = b"\x00\xff\x01\x02"
SECRET_VALUES = {"MySecret", "unsafe-name-secret", '{"user": "admin", "port": 5432}'}
# key= cases: members read as text, non-strings exactly as written (1.50, 21 digits, nested spacing), the last of
# a repeated key counting.
JSON_KEYS = ('{"user": "first-user", "port": 5432, "big": 123456789012345678901.50, "opts": {"tls": true,  "n": 1.50},'
             ' "list": [1, "two"], "none": null, "user": "svc-user", "quoted": "a\\"b\\u00e9"}')
DENIED = "/contract/denied"  # GetParameters for it fails upstream with AccessDeniedException
# DynamoDB's numbers (38 significant digits, magnitudes 1E-130 to 9.99...E+125), in the item "exact-numbers"
# of ContractTable: the case "item, every digit of its numbers" expects each client to keep every digit.
EXACT_NUMBERS = {
    "big": "12345678901234567890.123456789012345678",  # issue 12's: 38 digits, a float keeps 17
    "bigInteger": "12345678901234567890123456789012345678",
    "small": "0.12345678901234567890123456789012345678",
    "negative": "-98765432109876543210.98765432109876543",
    "largest": "9.9999999999999999999999999999999999999E+125",
    "tiny": "1E-130",
    "whole": "42",
    "half": "1.5",
}


def create_contract_resources(moto: MotoServer) -> None:
    """Idempotent: moto's state lives as long as the test process."""
    create_sample_resources(moto, REGION)
    ssm = moto.client("ssm", REGION)
    ssm.put_parameter(Name="/contract/json", Value='{"a": 1, "b": [true, null], "c": "x", "d": 2.5}', Type="String", Overwrite=True)
    ssm.put_parameter(Name="/contract/json-keys", Value=JSON_KEYS, Type="String", Overwrite=True)
    ssm.put_parameter(Name="/contract/base64", Value="AP8BAg==", Type="String", Overwrite=True)
    ssm.put_parameter(Name="/contract/ttl-1s", Value="one-second-ttl-value", Type="String", Overwrite=True)
    ssm.put_parameter(Name="/contract/ttl-3s", Value="three-second-ttl-value", Type="String", Overwrite=True)
    sm = moto.client("secretsmanager", REGION)
    for name, value in [("contract/binary", BINARY), ("contract/json-secret", '{"user": "admin", "port": 5432}'),
                        ("contract/user+name=x@y.z", "unsafe-name-secret")]:
        put_secret(sm, name, value)
    ddb = moto.client("dynamodb", REGION)
    if "ContractTable" not in ddb.list_tables()["TableNames"]:
        ddb.create_table(TableName="ContractTable", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName="ContractTable", Item={"id": {"S": "a b&c=d?e#f%/+é"}, "n": {"N": "1.5"}, "flag": {"BOOL": True}})
    ddb.put_item(TableName="ContractTable", Item={"id": {"S": "exact-numbers"}, **{
        name: {"N": text} for name, text in EXACT_NUMBERS.items()},
        "nested": {"M": {"inner": {"N": EXACT_NUMBERS["big"]}}}, "list": {"L": [{"N": EXACT_NUMBERS["bigInteger"]}]}})


def fail_denied(moto: MotoServer) -> None:
    moto.fail("AmazonSSM.GetParameters", status=400, code="AccessDeniedException", match=DENIED)
