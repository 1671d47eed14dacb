"""`secrets:` groups by filter, end to end against moto: BatchGetSecretValue with Filters, 20 a call, every page;
secrets served under their names, one added between listings, the max, and the allow rules."""

from __future__ import annotations

import json

from conftest import REGION, SECRET_VALUES, poll, unique

OPERATION = "secretsmanager:BatchGetSecretValue"


def create(sm, name, value, tags=()):
    SECRET_VALUES.add(value)
    sm.create_secret(Name=name, SecretString=value, Tags=[{"Key": k, "Value": v} for k, v in tags])


def test_a_filter_of_50_secrets(start_extension, moto):
    prefix = unique("flt50") + "/"
    sm = moto.client("secretsmanager", REGION)
    for i in range(50):
        create(sm, f"{prefix}s{i:02d}", f"filter-secret-value-{prefix}{i}")
    ext = start_extension(f"secrets:\n  - filter:\n      name: {prefix}\n")
    assert ext.upstream_calls(OPERATION) == 3  # 20 + 20 + 10
    for i in (0, 31, 49):
        reply = ext.read("secrets", f"{prefix}s{i:02d}")
        assert (reply.status, reply.body, reply.headers["x-cache"]) == (
            200, f"filter-secret-value-{prefix}{i}".encode(), "hit")
    assert ext.upstream_calls(OPERATION) == 3
    assert ext.upstream_calls("secretsmanager:GetSecretValue") == 0


def test_filters_end_to_end(start_extension, moto):
    prefix, tag = unique("flt") + "/", unique("team")
    sm = moto.client("secretsmanager", REGION)
    create(sm, f"{prefix}db", json.dumps({"user": "u", "password": "filter-db-password"}))
    SECRET_VALUES.add("filter-db-password")
    create(sm, f"{prefix}api", "filter-api-key-value")
    create(sm, unique("tagged"), "filter-tagged-value", tags=[(tag, "payments")])
    tagged = unique("tagged-too")
    create(sm, tagged, "filter-tagged-too-value", tags=[(tag, "payments")])
    create(sm, unique("untagged"), "filter-untagged-value")
    ext = start_extension(f"secrets:\n  - filter: {{name: {prefix}}}\n    ttl: 1s\n"
                          f"  - filter:\n      tag-key: {tag}\n      tag-value: payments\n")
    assert ext.read("secrets", f"{prefix}api").body == b"filter-api-key-value"
    assert ext.read("secrets", f"{prefix}missing").status == 404  # under the prefix, not listed: no call
    assert ext.request(f"/secrets?name={prefix}db&key=user").body == b"u"
    assert ext.read("secrets", tagged).body == b"filter-tagged-too-value"
    listed = ext.upstream_calls(OPERATION)

    # A name no filter or list covers: 404, with no AWS call. (The tags-only filter takes any name, and its
    # listing, fresh for 5 minutes, says it is not there.)
    for name in (unique("untagged"), "other/thing"):
        assert ext.read("secrets", name).status == 404, name
    assert ext.upstream_calls(OPERATION) == listed and ext.upstream_calls("secretsmanager:GetSecretValue") == 0

    # Added between listings: readable once the 1 s TTL runs out and a read lists again.
    create(sm, f"{prefix}added", "filter-added-value")
    assert poll(lambda: ext.read("secrets", f"{prefix}added").status == 200)
    assert ext.read("secrets", f"{prefix}added").body == b"filter-added-value"


def test_the_max_of_a_filter(start_extension, moto):
    prefix = unique("fltmax") + "/"
    sm = moto.client("secretsmanager", REGION)
    for i in range(4):
        create(sm, f"{prefix}s{i}", f"filter-max-value-{prefix}{i}")
    ext = start_extension(f"secrets:\n  - filter: {{name: {prefix}}}\n    max: 3\n")
    stats = json.loads(ext.request("/stats").body)
    assert stats["cache"]["secrets"]["PathMaxReached"] == 1 and stats["items"] == 4
    assert [line for line in ext.output.splitlines() if "holds more than its max: 3" in line]
