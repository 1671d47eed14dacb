"""`parameters:` groups by path, end to end against moto: GetParametersByPath paginated and decrypted, members
served under their full names, parameters added and removed between listings, the max, and the allow rules."""

from __future__ import annotations

import json
import time

from conftest import REGION, SECRET_VALUES, poll, unique


def test_a_path_of_100_parameters(start_extension, moto):
    """INIT lists the path in pages of 10 (GetParametersByPath's most), and every parameter is then a hit."""
    root = unique("/paths100")
    ssm = moto.client("ssm", REGION)
    for i in range(100):
        ssm.put_parameter(Name=f"{root}/p{i:03d}", Value=f"path-value-{i}", Type="String")
    ext = start_extension(f"parameters:\n  - path: {root}/\n")
    # 10 pages of 10; moto answers a full page with a NextToken even when nothing follows, so it adds an 11th,
    # empty page (AWS may too: a NextToken promises nothing).
    assert ext.upstream_calls("ssm:GetParametersByPath") in (10, 11)
    init_calls = ext.upstream_calls("ssm:GetParametersByPath")
    assert ext.upstream_calls("ssm:GetParameters") == 0
    for i in (0, 57, 99):
        reply = ext.read("parameters", f"{root}/p{i:03d}")
        assert (reply.status, reply.body, reply.headers["x-cache"]) == (200, f"path-value-{i}".encode(), "hit")
    assert ext.upstream_calls("ssm:GetParametersByPath") == init_calls


def test_paths_end_to_end(start_extension, moto):
    root = unique("/paths")
    secure = "path-secure-value-not-logged"
    SECRET_VALUES.add(secure)
    ssm = moto.client("ssm", REGION)
    for i in range(23):  # three pages
        ssm.put_parameter(Name=f"{root}/app/p{i:02d}", Value=f"v{i}", Type="String")
    ssm.put_parameter(Name=f"{root}/app/secure", Value=secure, Type="SecureString")
    ssm.put_parameter(Name=f"{root}/app/deep/nested", Value="nested-value", Type="String")
    ssm.put_parameter(Name=f"{root}/other/x", Value="outside-value", Type="String")
    ssm.put_parameter(Name=f"{root}/tree/a/b/c", Value="tree-value", Type="String")
    ext = start_extension(f"parameters:\n  - path: {root}/app\n    ttl: 1s\n    stale: 1s\n"
                          f"  - path: {root}/tree/\n    recursive: true\n")
    assert ext.read("parameters", f"{root}/app/p22").body == b"v22"
    assert ext.read("parameters", f"{root}/app/secure").body == secure.encode()  # decrypted
    listed = ext.upstream_calls("ssm:GetParametersByPath")

    # Outside every path, filter and list: 404 NotConfigured, with no AWS call.
    for name in (f"{root}/other/x", f"{root}/app/deep/nested", f"{root}/app", f"{root}/elsewhere"):
        reply = ext.read("parameters", name)
        assert (reply.status, json.loads(reply.body)["error"]) == (404, "NotConfigured"), name
    # Under the path but not listed: 404 NotFound, with no AWS call while the listing is fresh.
    reply = ext.read("parameters", f"{root}/app/not-there")
    assert reply.status == 404
    assert ext.upstream_calls("ssm:GetParametersByPath") in (listed, listed + 1)  # + one if the 1 s TTL ran out
    assert ext.upstream_calls("ssm:GetParameters") == 0

    # Added between listings: readable once the group's TTL runs out and a read lists the path again.
    ssm.put_parameter(Name=f"{root}/app/added", Value="added-value", Type="String")
    assert poll(lambda: ext.read("parameters", f"{root}/app/added").status == 200)
    assert ext.read("parameters", f"{root}/app/added").body == b"added-value"
    # Removed: 404 once its stale window is over (TTL 1 s + stale 1 s).
    ssm.delete_parameter(Name=f"{root}/app/p00")
    removed = time.monotonic()
    assert poll(lambda: ext.read("parameters", f"{root}/app/p00").status == 404)
    assert time.monotonic() - removed < 10
    assert ext.upstream_calls("ssm:GetParameters") == 0  # members are only ever listed

    # Recursive: names at any depth under the path may be read.
    assert ext.read("parameters", f"{root}/tree/a/b/c").body == b"tree-value"


def test_the_max_is_logged_once_and_counted(start_extension, moto):
    root = unique("/pathsmax")
    ssm = moto.client("ssm", REGION)
    for i in range(8):
        ssm.put_parameter(Name=f"{root}/p{i}", Value=f"max-value-{i}", Type="String")
    ext = start_extension(f"parameters:\n  - path: {root}/\n    max: 5\n")
    stats = json.loads(ext.request("/stats").body)
    assert stats["cache"]["parameters"]["PathMaxReached"] == 1
    assert stats["items"] == 6  # the group and its first 5 parameters
    assert stats["upstream"]["ssm:GetParametersByPath"]["calls"] == 1  # one page of 6 (the max, and one more)
    served = [ext.read("parameters", f"{root}/p{i}").status for i in range(8)]
    assert served.count(200) == 5 and served.count(404) == 3
    lines = [line for line in ext.output.splitlines() if "holds more than its max" in line]
    assert len(lines) == 1 and f"{root}/" in lines[0] and "raise max" in lines[0], ext.output
