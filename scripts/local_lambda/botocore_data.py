"""botocore's data directory cut down to what the extension calls, at layer build.

botocore loads a service's whole model (every operation and shape, documentation included) when a client
is made, and endpoints.json (every service in every partition) with the first client, all parsed into
OrderedDicts that stay cached for the life of the process. For the three sources that was ~45 ms of CPU
and ~13 MiB of RSS of a cold start, for operations the extension never calls (docs/benchmarks.md has the
measured before and after). So the layer keeps, per service, only the operations in OPERATIONS and the
shapes they reach, without documentation; endpoints.json keeps only these services. Everything else
botocore needs (its credential chain, endpoint rule sets, retry and default configuration) is untouched.

Add an operation here when a fetcher starts calling one: tests/test_layer.py checks that every
`client.<operation>(` call in extension/cache_extension/fetchers is in the trimmed models.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# service -> the operations kept. sts: the credential providers that assume a role (web identity, a
# role in the shared config) call these. DescribeEndpoints: DynamoDB's endpoint discovery operation.
OPERATIONS = {
    "ssm": ("GetParameters", "GetParametersByPath"),
    "secretsmanager": ("GetSecretValue", "BatchGetSecretValue"),
    "dynamodb": ("BatchGetItem", "DescribeEndpoints"),
    "sts": ("AssumeRole", "AssumeRoleWithWebIdentity"),
}
DATA_FILES = ("endpoints.json", "partitions.json", "sdk-default-configuration.json", "_retry.json")
# Per API version: what a client needs. Paginators, waiters and examples are read only by get_paginator,
# get_waiter and the docs, which the extension never calls.
VERSION_FILES = ("endpoint-rule-set-1.json.gz", "service-2.sdk-extras.json")
DROPPED_KEYS = frozenset({"documentation", "documentationUrl", "examples"})
NAMED = frozenset({"operations", "shapes", "members"})  # maps keyed by names, not by model keywords


class DataError(ValueError):
    """botocore's data does not have what OPERATIONS names: the message says what is missing."""


def trim(data: Path) -> None:
    """Cut botocore's data directory down in place."""
    for path in data.iterdir():
        keep = path.name in OPERATIONS if path.is_dir() else path.name in DATA_FILES
        if not keep:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    missing = [name for name in (*OPERATIONS, *DATA_FILES) if not (data / name).exists()]
    if missing:
        raise DataError(f"botocore's data directory lacks {', '.join(missing)}")
    for service, operations in OPERATIONS.items():
        versions = sorted(p for p in (data / service).iterdir() if p.is_dir())
        for old in versions[:-1]:  # botocore loads the latest API version only
            shutil.rmtree(old)
        _trim_version(versions[-1], operations)
    endpoints = json.loads((data / "endpoints.json").read_text())
    for partition in endpoints["partitions"]:
        partition["services"] = {name: entry for name, entry in partition["services"].items() if name in OPERATIONS}
    _write(data / "endpoints.json", endpoints)


def _trim_version(directory: Path, operations: tuple[str, ...]) -> None:
    model_path = directory / "service-2.json.gz"
    if model_path.exists():
        import gzip

        model = json.loads(gzip.decompress(model_path.read_bytes()))
    else:
        model_path = directory / "service-2.json"
        model = json.loads(model_path.read_text())
    for path in directory.iterdir():
        if path.name not in VERSION_FILES:
            path.unlink()
    _write(directory / "service-2.json", trim_model(model, operations))


def trim_model(model: dict, operations: tuple[str, ...]) -> dict:
    """The model with only `operations` and the shapes they reach, documentation dropped."""
    missing = [name for name in operations if name not in model["operations"]]
    if missing:
        raise DataError(f"{model['metadata'].get('serviceId')}'s model has no {', '.join(missing)}")
    kept_operations = {name: model["operations"][name] for name in operations}
    shapes: dict[str, dict] = {}
    pending = [ref["shape"] for operation in kept_operations.values()
               for ref in (operation.get("input"), operation.get("output"), *operation.get("errors", ())) if ref]
    while pending:
        name = pending.pop()
        if name in shapes:
            continue
        shape = shapes[name] = model["shapes"][name]
        refs = list(shape.get("members", {}).values()) + [shape[key] for key in ("member", "key", "value") if key in shape]
        pending += [ref["shape"] for ref in refs]
    trimmed = {**model, "operations": kept_operations, "shapes": {name: shapes[name] for name in sorted(shapes)}}
    return _undocumented(trimmed)


def _undocumented(node, names: bool = False):
    """Without DROPPED_KEYS; `names`: node maps names (operations, shapes, members) that are kept whatever they are."""
    if isinstance(node, dict):
        return {key: _undocumented(value, key in NAMED) for key, value in node.items()
                if names or key not in DROPPED_KEYS}
    if isinstance(node, list):
        return [_undocumented(value) for value in node]
    return node


def _write(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, separators=(",", ":")))
