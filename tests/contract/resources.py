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
DENIED = "/contract/denied"  # GetParameters for it fails upstream with AccessDeniedException


def create_contract_resources(moto: MotoServer) -> None:
    """Idempotent: moto's state lives as long as the test process."""
    create_sample_resources(moto, REGION)
    ssm = moto.client("ssm", REGION)
    ssm.put_parameter(Name="/contract/json", Value='{"a": 1, "b": [true, null], "c": "x", "d": 2.5}', Type="String", Overwrite=True)
    ssm.put_parameter(Name="/contract/base64", Value="AP8BAg==", Type="String", Overwrite=True)
    sm = moto.client("secretsmanager", REGION)
    for name, value in [("contract/binary", BINARY), ("contract/json-secret", '{"user": "admin", "port": 5432}'),
                        ("contract/user+name=x@y.z", "unsafe-name-secret")]:
        put_secret(sm, name, value)
    ddb = moto.client("dynamodb", REGION)
    if "ContractTable" not in ddb.list_tables()["TableNames"]:
        ddb.create_table(TableName="ContractTable", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName="ContractTable", Item={"id": {"S": "a b&c=d?e#f%/+é"}, "n": {"N": "1.5"}, "flag": {"BOOL": True}})


def fail_denied(moto: MotoServer) -> None:
    moto.fail("AmazonSSM.GetParameters", status=400, code="AccessDeniedException", match=DENIED)
