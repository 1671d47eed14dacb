"""run-local's function for your own config: reads each item the event lists through the layer's Python client.

A function like any other: /opt/python (the built layer's python/) is on its path and it reads with
cache_extension_client, as a function would, near cache off so that every read reaches the extension. Per
item it answers the HTTP status, X-Cache, the latency the function saw and a summary of the value: its length
and SHA-256 prefix, or for an item the event marks "show" (a String parameter) the value itself, truncated.
A secret's value never leaves this function.
"""

import hashlib
import json
import time

import cache_extension_client
from cache_extension_client import CacheClient, CacheExtensionError
from cache_extension_client import _transport

SHOWN = 40  # characters of a shown value

# The client's public calls give the value; X-Cache is only in the response's headers. Observe them (read
# only) on the client's own transport, so that the read itself is exactly a function's.
_last_headers: dict = {}
_exchange = _transport.Connection.exchange


def _observed_exchange(self, request):
    answer = _exchange(self, request)
    _last_headers.clear()
    _last_headers.update(answer[1])
    return answer


_transport.Connection.exchange = _observed_exchange
client = CacheClient(near_cache=False)
READS = {"parameters": client.get_parameter, "secrets": client.get_secret, "dynamodb": client.get_item}


def handler(event, context):
    return {"client": cache_extension_client.__file__, "rows": [read(item) for item in event["items"]]}


def read(item):
    _last_headers.clear()
    started = time.perf_counter()
    try:
        value = READS[item["route"]](item["name"])
        status, code = 200, None
    except CacheExtensionError as exc:
        value, status, code = None, exc.status, exc.code
    latency = time.perf_counter() - started
    row = {"status": status, "code": code, "x_cache": _last_headers.get("x-cache"), "seconds": latency}
    if value is not None:
        row["value"] = summary(value, item.get("show", False))
    return row


def summary(value, show):
    if show and isinstance(value, str):
        return json.dumps(value if len(value) <= SHOWN else value[:SHOWN] + "...")
    if isinstance(value, dict):
        data, what = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode(), "bytes of JSON"
    elif isinstance(value, bytes):
        data, what = value, "bytes (binary)"
    else:
        data, what = str(value).encode("utf-8"), "bytes"
    return f"{len(data)} {what}, sha256 {hashlib.sha256(data).hexdigest()[:12]}"
