"""A `secrets:` group by filter: BatchGetSecretValue with Filters, 20 secrets a call, every page up to the max."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config_filters import aws_filters
from .base import FetchError, Value
from .ssm_path import PathValues

if TYPE_CHECKING:
    from ..config import Item

PAGE_SIZE = 20  # BatchGetSecretValue's MaxResults at most
CONTENT_TYPE = "application/x-secrets-filter"  # never served: a group's own entry has no route
OPERATION = "secretsmanager:BatchGetSecretValue"


def list_secrets(client: Any, item: Item) -> PathValues:
    from .. import names
    from .secrets import _secret_value  # the same Value (and metadata) as a secret read by name

    members: dict[str, Value | FetchError] = {}
    request: dict = {"Filters": aws_filters(item.listing)}
    limit = item.listing.max
    while True:
        # One more than the max still needs, so that reaching it says whether more remain, with no extra page.
        request["MaxResults"] = min(PAGE_SIZE, limit - len(members) + 1)
        response = client.batch_get_secret_value(**request)
        found = [(secret.get("Name", ""), _secret_value(secret)) for secret in response.get("SecretValues", [])]
        for error in response.get("Errors", []):  # a matching secret this role cannot read (KMS, say)
            alias = names.parse("secrets", error.get("SecretId", ""))
            name = alias.names[0] if alias is not None else error.get("SecretId", "")
            found.append((name, FetchError.from_code(error.get("ErrorCode") or "UnknownError", OPERATION)))
        for name, value in found:
            if not name:
                continue
            if len(members) == limit:
                return PathValues(b"", CONTENT_TYPE, None, members, truncated=True)
            members[name] = value
        token = response.get("NextToken")
        if not token:
            return PathValues(b"", CONTENT_TYPE, None, members)
        request["NextToken"] = token
