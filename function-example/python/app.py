"""Example function: reads the sample's parameter, secret and DynamoDB item through the cache extension.

The client comes from the layer (/opt/python is on sys.path in Python runtimes); nothing to install.
Values read at module level are served from the prefetch that finished before this code runs.
"""

import hashlib

from cache_extension_client import CacheClient

cache = CacheClient()  # one keep-alive connection, reused by every invocation


def describe_secret(secret: str) -> dict:
    """Never return or log a secret: its UTF-8 length and SHA-256 are enough to check it."""
    data = secret.encode("utf-8")
    return {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def handler(event, context):
    return {
        "parameter": cache.get_parameter("CacheExtensions_Parameter1"),
        "secretFromReference": describe_secret(cache.get_parameter("/aws/reference/secretsmanager/secret_info")),
        "secret": describe_secret(cache.get_secret("secret_info")),
        "item": cache.get_item("DynamoDbTable-pKey1-sKey1"),
    }
