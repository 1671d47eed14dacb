"""Freshness through the real extension: stale-while-revalidate, refresh-ahead on INVOKE, POST /refresh."""

from __future__ import annotations

import json
import time

from conftest import REGION, SECRET_VALUES, unique
from local_lambda import aws
from test_end_to_end import parameters_config, poll, put_parameter


def put_secret(moto, name: str, value: str) -> None:
    SECRET_VALUES.add(value)
    aws.put_secret(moto.client("secretsmanager", REGION), name, value)


def test_an_expired_value_inside_its_stale_window_is_served_at_once_then_refreshed(start_extension, moto):
    name = unique("swr")
    before, after = unique("before"), unique("after")
    put_parameter(moto, name, before)
    ext = start_extension(parameters_config(name, ttl="200ms", stale="1m"))
    assert ext.read("parameters", name).text == before
    put_parameter(moto, name, after)
    moto.reset_calls()
    moto.delay("AmazonSSM.GetParameters", 1.0, times=1)  # the refresh is slow; the read must not wait for it
    time.sleep(0.25)  # past the 200 ms TTL
    started = time.monotonic()
    stale = ext.read("parameters", name)
    assert time.monotonic() - started < 0.5
    assert (stale.status, stale.text, stale.headers["x-cache"]) == (200, before, "stale")
    fresh = poll(lambda: (r := ext.read("parameters", name)).text == after and r)
    assert fresh.headers["x-cache"] in ("hit", "stale")
    assert moto.calls("AmazonSSM.GetParameters") <= 3  # one refresh per lapse of the 200 ms TTL, not per read


def test_invoke_refreshes_entries_about_to_expire(start_extension, moto):
    name = unique("ahead")
    first, second = unique("first"), unique("second")
    put_parameter(moto, name, first)
    ext = start_extension(parameters_config(name, ttl="1s", stale="0s"))
    fetched = time.monotonic()
    assert ext.read("parameters", name).text == first
    put_parameter(moto, name, second)
    ext.emulator.invoke()  # nothing is near expiry yet: no call
    time.sleep(max(0.0, fetched + 0.85 - time.monotonic()))  # inside the last 20% of the TTL
    moto.reset_calls()
    ext.emulator.invoke()
    reply = poll(lambda: (r := ext.read("parameters", name)).text == second and r, timeout=5)
    assert reply.headers["x-cache"] == "hit"  # refreshed ahead: the read never waited for AWS
    assert moto.calls("AmazonSSM.GetParameters") == 1


def test_forced_refresh_picks_up_a_rotated_secret(start_extension, moto):
    secret = unique("rotated")
    v1, v2 = unique("password-v1"), unique("password-v2")
    put_secret(moto, secret, v1)
    ext = start_extension(f"secrets:\n  - names: [{secret}]\n    ttl: 1h\n")
    assert ext.read("secrets", secret).text == v1
    put_secret(moto, secret, v2)
    assert ext.read("secrets", secret).text == v1  # cached for an hour
    reply = ext.request(f"/refresh?name={secret}&source=secrets", method="POST")
    assert reply.status == 200, reply.body
    assert json.loads(reply.body) == {"refreshed": [{"source": "secrets", "name": secret}], "failed": []}
    assert ext.read("secrets", secret).text == v2
    # The previous version, cached on demand under the same name, is refreshed in a call of its own and
    # keeps its own value.
    previous = f"/secretsmanager/get?secretId={secret}&versionStage=AWSPREVIOUS"
    assert json.loads(ext.request(previous).body)["SecretString"] == v1
    v3 = unique("password-v3")
    put_secret(moto, secret, v3)
    # A second forced refresh within a second of the last one is coalesced: poll past that window.
    poll(lambda: ext.request(f"/refresh?name={secret}", method="POST").status == 200
         and ext.read("secrets", secret).text == v3, interval=0.3)
    assert json.loads(ext.request(previous).body)["SecretString"] == v2


def test_refresh_all_and_its_errors(start_extension, moto):
    present, missing = unique("present"), unique("missing")
    put_parameter(moto, present, unique("here"))
    ext = start_extension(parameters_config(present, missing, ttl="1h"))
    every = json.loads(ext.request("/refresh?all=true", method="POST").body)
    assert every["refreshed"] == [{"source": "parameters", "name": present}]
    assert every["failed"] == [{"source": "parameters", "name": missing, "status": 404, "error": "NotFound"}]
    gone = ext.request(f"/refresh?name={missing}", method="POST")
    assert (gone.status, json.loads(gone.body)["error"]) == (404, "NotFound")
    cases = {
        "/refresh?name=not-in-config": (404, "NotConfigured"),
        "/refresh": (400, "BadRequest"),
        f"/refresh?name={present}&all=true": (400, "BadRequest"),
        "/refresh?all=yes": (400, "BadRequest"),
        f"/refresh?name={present}&source=s3": (400, "BadRequest"),
    }
    for path, (status, code) in cases.items():
        reply = ext.request(path, method="POST")
        assert (reply.status, json.loads(reply.body)["error"]) == (status, code), path
    assert ext.request(f"/refresh?name={present}", method="POST", token=None).status == 401
    assert ext.request(f"/refresh?name={present}").status == 405


def test_forced_refreshes_are_rate_limited_and_coalesced(start_extension, moto):
    name = unique("limited")
    put_parameter(moto, name, unique("value"))
    ext = start_extension(parameters_config(name, ttl="1h"))
    moto.reset_calls()
    statuses = [ext.request(f"/refresh?name={name}", method="POST") for _ in range(15)]
    ok = [r for r in statuses if r.status == 200]
    limited = [r for r in statuses if r.status == 429]
    assert len(ok) + len(limited) == 15 and 10 <= len(ok) < 15  # a bucket of 10, refilling at 1 a second
    assert json.loads(limited[0].body)["error"] == "RateLimited" and int(limited[0].headers["retry-after"]) >= 1
    # Refreshes within a second of the last fetch are answered without a call.
    assert moto.calls("AmazonSSM.GetParameters") <= 2
