"""run-local with your own config (or --resources): every configured item, read by a function, in one table.

The example functions read the sample's four names, so with another config there is nothing to compare
them with. Instead the function is runtimes/read_every_item.py: it reads each item config.yaml lists
through the layer's Python client and answers status, X-Cache, latency and a summary of the value, which
this module lays out, one row per item. The config is parsed by the extension's own config module.
"""

from __future__ import annotations

import base64
import statistics
from pathlib import Path
from typing import Any

from cache_extension.config import Config, ConfigError, load_config
from cache_extension.config_filters import aws_filters
from cache_extension.logs import count as plural

from . import layer
from .aws import SAMPLE_PARAMETER

SAMPLE_CONFIG = layer.ROOT / "config.yaml"
KINDS = {"parameters": "parameter", "secrets": "secret", "dynamodb": "dynamodb"}


def read_config(path: Path, region: str) -> Config | None:
    """The config as the extension reads it; None if it is invalid (the extension then says why, at INIT)."""
    try:
        return load_config(str(path), default_region=region, default_ttl=300.0)
    except ConfigError:
        return None


def is_sample(config: Config | None, region: str) -> bool:
    """Whether `config` lists what the sample's config.yaml lists (what the example functions read)."""
    sample = read_config(SAMPLE_CONFIG, region)
    return config is not None and sample is not None and addresses(config) == addresses(sample)


def addresses(config: Config) -> set[tuple[str, str]]:
    return {(item.source, item.name) for item in config.items}


def items_to_read(config: Config | None, shown: set[str]) -> list[dict[str, Any]]:
    """The reader function's event items: each configured item, and whether its value may be shown
    (only a String or StringList parameter's: never a SecureString's, a secret's or an item's)."""
    if config is None:
        return []
    return [{"route": item.source, "name": item.name, "kind": KINDS[item.source], "label": label(item),
             "show": item.source == "parameters" and item.name in shown}
            for item in config.items]


def expand_listings(items: list[dict[str, Any]] | None, config: Config | None, moto: Any, region: str,
                    shown: set[str]) -> list[dict[str, Any]] | None:
    """Each `path:` or `filter:` group replaced by what it lists in the local AWS, so that the function reads its
    members by name as a function would (the group itself is no name to read). run-local asks moto the same
    question the extension does (GetParametersByPath, BatchGetSecretValue's Filters), without values."""
    if items is None or config is None:
        return items
    groups = {(item.source, item.name): item for item in config.items if item.listing is not None}
    expanded: list[dict[str, Any]] = []
    for entry in items:
        group = groups.get((entry["route"], entry["name"]))
        if group is None:
            expanded.append(entry)
            continue
        names = _listed(group, moto, region)[: group.listing.max]
        expanded += [{"route": group.source, "name": name, "kind": KINDS[group.source], "label": name,
                      "show": group.source == "parameters" and name in shown} for name in names]
    return expanded


def _listed(group: Any, moto: Any, region: str) -> list[str]:
    """The names a group lists upstream, in the group's region."""
    if group.source == "parameters":
        pages = moto.client("ssm", group.region or region).get_paginator("get_parameters_by_path").paginate(
            Path=group.name, Recursive=group.listing.recursive, WithDecryption=False)
        return sorted(p["Name"] for page in pages for p in page["Parameters"])
    pages = moto.client("secretsmanager", group.region or region).get_paginator("list_secrets").paginate(
        Filters=aws_filters(group.listing))
    return sorted(secret["Name"] for page in pages for secret in page["SecretList"])


def shown_parameters(resources: Any) -> set[str]:
    """Parameters put upstream as String or StringList: the sample's one, and the resources file's."""
    shown = {SAMPLE_PARAMETER[0]}
    if resources is not None:
        secure = {p.name for p in resources.parameters if p.type == "SecureString"}
        shown = (shown - secure) | resources.shown_parameters()
    return shown


def label(item: Any) -> str:
    if item.source != "dynamodb":
        return item.name
    key = " ".join(f"{name}={_key_text(value)}" for name, value in (item.key or {}).items())
    alias = "" if item.name.startswith(f"{item.table}-") else f" ({item.name})"  # `name:` in config.yaml
    return f"{item.table} {key}{alias}"


def _key_text(value: dict) -> str:
    kind, data = next(iter(value.items()))
    return base64.b64encode(data).decode() if kind == "B" else str(data)


def allow_line(config: Config | None) -> str | None:
    """`allow:` names are read on demand: they cannot be listed, so they are not in the table."""
    if config is None or config.allow is None:
        return None
    patterns = [f"{source} {pattern}" for source, names in config.allow.patterns.items() for pattern in names]
    return (f"  allow: ({', '.join(patterns)}) is read on demand: those names cannot be listed, so none was read "
            f"here; a function reads them by name")


def describe(result: Any, first: Any = None) -> str:
    """The invocation line's text for the reader function: how many items, and their statuses."""
    if not result.ok:
        return f"ERROR {result.error.error_type}: {result.error.message}"
    statuses = [row["status"] for row in result.response["rows"]]
    if first is not None and first.ok and statuses == [row["status"] for row in first.response["rows"]]:
        return "(the same statuses)"
    counts: dict[int, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return f"read {plural(len(statuses), 'item')}: " + ", ".join(f"{n} x {status}" for status, n in counts.items())


def print_table(items: list[dict[str, Any]], results: list[Any], ms: Any) -> bool:
    """One row per item from the cold invoke (status, X-Cache, latency), with the warm invokes' p50 latency.
    True if every item answered 200."""
    if not results or not results[0].ok:
        return False
    cold = results[0].response["rows"]
    warm = [r.response["rows"] for r in results[1:] if r.ok]
    print(f"\nevery configured item, read by the function through the layer's Python client "
          f"({_client_path(results[0].response)}), {plural(len(items), 'item')}:")
    header = ("kind", "name", "status", "X-Cache", "cold", "warm p50", "value")
    rows = []
    for index, (item, row) in enumerate(zip(items, cold)):
        p50 = statistics.median(w[index]["seconds"] for w in warm) if warm else None
        status = str(row["status"]) + (f" {row['code']}" if row.get("code") else "")
        rows.append((item["kind"], item["label"], status, row.get("x_cache") or "-", ms(row["seconds"]),
                     ms(p50) if p50 is not None else "n/a", row.get("value", "")))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + "  " + str(row[-1]))
    print("  values: a String parameter's shown (truncated); SecureString parameters, secrets and items only as "
          "length and SHA-256 prefix")
    return all(row["status"] == 200 for row in cold)


def _client_path(response: dict) -> str:
    path = Path(response.get("client", ""))
    return str(Path(*path.parts[-3:-1])) if len(path.parts) >= 3 else "cache_extension_client"
