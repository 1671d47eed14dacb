"""The Python example without the extension: the same reads, straight from AWS with boto3.

The baseline AWS's cache-extension-demo blog post compares against. Same response as app.py:
``{"parameter", "secretFromReference": {length, sha256}, "secret": {length, sha256}, "item"}``.
Clients are created at module level, once per execution environment, as a function should; each
invocation still makes four AWS calls (the extension makes none once its cache is warm).
Endpoints, region and credentials come from boto3's own configuration (AWS_ENDPOINT_URL locally).
"""

import base64
import hashlib
from decimal import Decimal

import boto3
from boto3.dynamodb.types import Binary, TypeDeserializer
from botocore.config import Config

PARAMETER = "CacheExtensions_Parameter1"
SECRET = "secret_info"
TABLE = "DynamoDbTable"
KEY = {"pKey": {"S": "pKey1"}, "sKey": {"S": "sKey1"}}

_config = Config(connect_timeout=1, read_timeout=3, retries={"mode": "standard"})
ssm = boto3.client("ssm", config=_config)
secretsmanager = boto3.client("secretsmanager", config=_config)
dynamodb = boto3.client("dynamodb", config=_config)
_deserializer = TypeDeserializer()


def describe_secret(secret: str) -> dict:
    """Never return or log a secret: its UTF-8 length and SHA-256 are enough to check it."""
    data = secret.encode("utf-8")
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def plain(value):
    """A deserialized DynamoDB value as plain JSON, as the extension serves an item."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return base64.b64encode(value.value).decode("ascii")
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, set, frozenset)):
        return [plain(item) for item in value]
    return value


def handler(event, context):
    parameter = ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"]
    reference = ssm.get_parameter(Name=f"/aws/reference/secretsmanager/{SECRET}", WithDecryption=True)
    secret = secretsmanager.get_secret_value(SecretId=SECRET)["SecretString"]
    item = dynamodb.get_item(TableName=TABLE, Key=KEY)["Item"]
    return {
        "parameter": parameter,
        "secretFromReference": describe_secret(reference["Parameter"]["Value"]),
        "secret": describe_secret(secret),
        "item": {name: plain(_deserializer.deserialize(value)) for name, value in item.items()},
    }
