"""DynamoDB items, read with BatchGetItem."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Sequence

from ..dynamodb_json import item_to_json
from .base import Fetcher, FetchError, Value, not_found

if TYPE_CHECKING:
    from ..config import Item

UNPROCESSED_ATTEMPTS = 5  # BatchGetItem may hand keys back under load; retry them with backoff, a bounded number of times


class ItemFetcher(Fetcher):
    source = "dynamodb"
    operation = "dynamodb:BatchGetItem"
    batch_size = 100  # BatchGetItem takes at most 100 keys

    def __init__(self, clients, *, sleep=time.sleep) -> None:
        super().__init__(clients)
        self._sleep = sleep

    def fetch_batch(self, items: Sequence[Item]) -> dict[str, Value | FetchError]:
        client = self.clients.get("dynamodb", items[0].region, items[0].role)
        key_names = {item.table: tuple(item.key) for item in items}  # one key schema per table
        wanted: dict[tuple, list[Item]] = {}
        request: dict[str, Any] = {}
        for item in items:
            wanted.setdefault((item.table, _identity(item.key)), []).append(item)
            # Two configured names may address the same key; ask for it once.
            keys = request.setdefault(item.table, {"Keys": []})["Keys"]
            if item.key not in keys:
                keys.append(item.key)
        found: dict[str, Value] = {}
        for attempt in range(UNPROCESSED_ATTEMPTS):
            response = client.batch_get_item(RequestItems=request)
            for table, rows in response.get("Responses", {}).items():
                for row in rows:
                    identity = _identity({name: row.get(name) for name in key_names.get(table, ())})
                    for item in wanted.get((table, identity), ()):
                        found[item.name] = Value(item_to_json(row), "application/json")
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
            self._sleep(random.uniform(0, 0.05 * 2**attempt))  # full jitter
        outcomes: dict[str, Value | FetchError] = {}
        for item in items:
            if item.name in found:
                outcomes[item.name] = found[item.name]
            elif request and any(item.key in spec["Keys"] for spec in request.values()):
                outcomes[item.name] = FetchError("ProvisionedThroughputExceeded", 502,
                                                 f"{self.operation} left the key unprocessed", transient=True)
            else:
                outcomes[item.name] = not_found("item")
        return outcomes


    def split(self, items: Sequence[Item]) -> list[Sequence[Item]]:
        """By table first (most errors of BatchGetItem belong to a table: ResourceNotFoundException for one that
        does not exist, AccessDeniedException for one the role may not read), then by key."""
        tables = sorted({item.table for item in items})
        if len(tables) < 2:
            return super().split(items)
        first = set(tables[: len(tables) // 2])
        return [[item for item in items if item.table in first], [item for item in items if item.table not in first]]


def _identity(key: dict[str, Any]) -> tuple:
    """A comparable form of a key: DynamoDB normalises numbers ("042" comes back as "42")."""
    parts = []
    for name in sorted(key):
        value = key[name]
        if not isinstance(value, dict):
            return ("<missing>", name)
        (kind, data), = value.items()
        parts.append((name, kind, Decimal(data) if kind == "N" else data))
    return tuple(parts)
