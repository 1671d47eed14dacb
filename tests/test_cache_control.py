"""Cache-Control on value responses (issue 13, first step of the clients' near cache): whole seconds of
freshness left on a hit, max-age=0 for misses and stale values, on GET and HEAD and on the AWS-compatible
routes alike."""

from __future__ import annotations

import re
import time
from urllib.parse import quote

from conftest import unique
from test_end_to_end import parameters_config, poll, put_parameter


def max_age(reply) -> int:
    match = re.fullmatch(r"max-age=(\d+)", reply.headers.get("cache-control", ""))
    assert match, reply.headers
    return int(match.group(1))


def test_a_hit_says_how_long_it_stays_fresh_a_miss_and_a_stale_value_say_zero(start_extension, moto):
    name = unique("/cc/param")
    put_parameter(moto, name, unique("value"))
    ext = start_extension(parameters_config(name, ttl="1m", stale="5m"), env={"CACHE_EXTENSION_INIT_STARTUP": "false"})
    first = ext.read("parameters", name)
    assert (first.headers["x-cache"], max_age(first)) == ("miss", 0)
    hit = ext.read("parameters", name)
    assert hit.headers["x-cache"] == "hit" and 50 <= max_age(hit) <= 60  # (TTL jitter draws below 60 s)
    # HEAD and the AWS-compatible route carry it too, never above the TTL left
    head = ext.request(f"/parameters?name={quote(name, safe='')}", method="HEAD")
    compatible = ext.request(f"/systemsmanager/parameters/get?name={quote(name, safe='')}&withDecryption=true")
    for reply in (head, compatible):
        assert reply.status == 200 and reply.headers["x-cache"] == "hit"
        assert max_age(reply) <= max_age(hit)


def test_a_stale_value_says_zero_and_max_age_never_outlives_the_ttl(start_extension, moto):
    name = unique("/cc/short")
    put_parameter(moto, name, unique("value"))
    ext = start_extension(parameters_config(name, ttl="2s", stale="1m"))
    hit = ext.read("parameters", name)
    assert hit.headers["x-cache"] == "hit" and max_age(hit) <= 1  # 2 s TTL, some of it gone: rounded down
    read_at = time.monotonic()

    def stale():
        reply = ext.read("parameters", name)
        return reply if reply.headers["x-cache"] == "stale" else None

    reply = poll(stale, timeout=5)
    assert max_age(reply) == 0
    assert time.monotonic() - read_at >= max_age(hit)  # it was not fresh for longer than it said
