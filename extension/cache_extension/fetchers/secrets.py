"""Secrets Manager, read directly (the /secrets route)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .base import Fetcher, FetchError, Value, metadata, text_value

# GetSecretValue's fields besides the secret, for the AWS-compatible route.
META_FIELDS = ("ARN", "CreatedDate", "Name", "VersionId", "VersionStages")

if TYPE_CHECKING:
    from ..config import Item


class SecretFetcher(Fetcher):
    source = "secrets"
    operation = "secretsmanager:BatchGetSecretValue"
    batch_size = 20  # BatchGetSecretValue takes at most 20 ids

    def fetch_batch(self, items: Sequence[Item]) -> dict[str, Value | FetchError]:
        client = self.clients.get("secretsmanager", items[0].region, items[0].role)
        if items[0].listing is not None:  # a filter group: in a batch of its own (store.py)
            from .secrets_filter import list_secrets

            return {items[0].name: list_secrets(client, items[0])}
        # The batch call only returns AWSCURRENT; pinned stages and versions need GetSecretValue one by one.
        current = [item for item in items if item.version_stage in (None, "AWSCURRENT") and not item.version_id]
        pinned = [item for item in items if item.version_stage not in (None, "AWSCURRENT") or item.version_id]
        outcomes = {item.name: self._get_one(client, item) for item in pinned}
        if len(current) == 1:
            outcomes[current[0].name] = self._get_one(client, current[0])
        elif current:
            def batch(part: Sequence[Item]) -> dict[str, Value | FetchError]:
                try:
                    return self._get_batch(client, part)
                except Exception as exc:
                    # Roles often allow GetSecretValue on named secrets but not BatchGetSecretValue.
                    if FetchError.from_exception(exc, self.operation).code != "AccessDeniedException":
                        raise
                    return {item.name: self._get_one(client, item) for item in part}

            # Per-secret failures come back in Errors; one that fails the whole call is looked for in parts.
            outcomes.update(self.isolated(current, batch, self.operation))
        return outcomes

    def _get_batch(self, client, items: Sequence[Item]) -> dict[str, Value | FetchError]:
        response = client.batch_get_secret_value(SecretIdList=[item.name for item in items])
        by_id: dict[str, dict] = {}
        for secret in response.get("SecretValues", []):
            arn = secret.get("ARN", "")
            # An id may be the name, the full ARN, or the ARN without its random 6-character suffix.
            for alias in (secret.get("Name"), arn, arn[:-7] if len(arn) > 7 else None):
                if alias:
                    by_id[alias] = secret
        errors = {error.get("SecretId"): error.get("ErrorCode") or "UnknownError" for error in response.get("Errors", [])}
        outcomes: dict[str, Value | FetchError] = {}
        for item in items:
            if item.name in by_id:
                outcomes[item.name] = _secret_value(by_id[item.name])
            elif item.name in errors:
                outcomes[item.name] = FetchError.from_code(errors[item.name], self.operation)
        return outcomes

    def _get_one(self, client, item: Item) -> Value | FetchError:
        kwargs = {"SecretId": item.name}
        if item.version_stage:
            kwargs["VersionStage"] = item.version_stage
        if item.version_id:
            kwargs["VersionId"] = item.version_id
        try:
            return _secret_value(client.get_secret_value(**kwargs))
        except Exception as exc:
            return FetchError.from_exception(exc, "secretsmanager:GetSecretValue")


def _secret_value(secret: dict) -> Value:
    meta = metadata(secret, META_FIELDS)
    if "SecretString" in secret:
        return text_value(secret["SecretString"], meta)
    return Value(bytes(secret.get("SecretBinary", b"")), "application/octet-stream", meta)
