"""Lambda Managed Instances under the project's emulator (tests/test_rie.py runs the same under AWS's RIE):
the extension registers for SHUTDOWN only, and with no INVOKE events and no freeze it refreshes on a timer."""

from __future__ import annotations

import time
import uuid

from conftest import REGION, unique

TTL = 2.0


def _config(name: str) -> str:
    return f"parameters:\n  - names: [{name}]\n    ttl: {TTL:g}s\n    stale: 1m\n"


def test_registers_for_shutdown_only_and_refreshes_without_invokes(start_extension, moto):
    name = unique("/mi/param")
    ssm = moto.client("ssm", REGION)
    ssm.put_parameter(Name=name, Value="v1", Type="String")
    handle = start_extension(_config(name), max_concurrency=8)
    assert handle.extension.events == ["SHUTDOWN"]  # INVOKE would be refused (403) and fail INIT
    assert "(lambda-managed-instances)" in handle.output  # the mode it logged as ready in
    reply = handle.read("parameters", name)
    assert (reply.status, reply.text, reply.headers["x-cache"]) == (200, "v1", "hit")

    # Changed upstream: served new, as a hit, within TTL + 1 s, with no invoke at all (the timer refreshed it).
    ssm.put_parameter(Name=name, Value="v2", Type="String", Overwrite=True)
    changed = time.monotonic()
    while time.monotonic() - changed < TTL + 1.0:
        reply = handle.read("parameters", name)
        if reply.text == "v2":
            break
        assert reply.headers["x-cache"] == "hit", "served stale: the timer did not refresh ahead of the TTL"
        time.sleep(0.05)
    assert (reply.text, reply.headers["x-cache"]) == ("v2", "hit")

    # The timer sleeps until the next refresh is due: about one call per 80% of the TTL, no busy loop.
    before = moto.calls("AmazonSSM.GetParameters")
    time.sleep(3 * TTL)
    calls = moto.calls("AmazonSSM.GetParameters") - before
    assert 2 <= calls <= 5, f"{calls} GetParameters calls in {3 * TTL:g} s with a {TTL:g} s TTL"

    exits = handle.emulator.shutdown()
    assert exits["cache-extension"] is not None and exits["cache-extension"] < 1.0
    assert "shutdown (spindown)" in handle.output


def test_a_denied_item_is_not_retried_by_the_timer(start_extension, moto):
    allowed, denied = unique("/mi/ok"), unique("/mi/missing")
    moto.client("ssm", REGION).put_parameter(Name=allowed, Value=uuid.uuid4().hex, Type="String")
    handle = start_extension(f"parameters:\n  - names: [{allowed}, {denied}]\n    ttl: 1h\n", max_concurrency=2)
    assert handle.read("parameters", denied).status == 404
    before = moto.calls("AmazonSSM.GetParameters")
    time.sleep(2.0)
    # a name that does not exist waits for reads (and their error hold); the timer never polls it
    assert moto.calls("AmazonSSM.GetParameters") == before
