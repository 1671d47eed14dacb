"""What the extension says about itself at start: in plain words, each problem once."""

from __future__ import annotations

import os
import subprocess
import time

from conftest import PATH


def _run_launcher(layer_dir, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(layer_dir / "extensions" / "cache-extension")], capture_output=True, text=True,
                          timeout=30, env={"PATH": PATH, **env})


def test_without_the_extensions_api_it_says_the_variable_is_not_set(python_layer_dir):
    result = _run_launcher(python_layer_dir, {})
    assert result.returncode == 1
    assert result.stderr.strip() == ("ERROR [cache-extension] could not register with the Extensions API: "
                                     "AWS_LAMBDA_RUNTIME_API is not set: Lambda sets it for extensions it launches "
                                     "(locally, scripts/run-local does)")


def test_a_malformed_extensions_api_address_is_named(python_layer_dir):
    result = _run_launcher(python_layer_dir, {"AWS_LAMBDA_RUNTIME_API": "localhost"})
    assert result.returncode == 1
    assert "AWS_LAMBDA_RUNTIME_API is 'localhost', not host:port" in result.stderr


def test_one_prefetched_item_is_one_item(start_extension):
    handle = start_extension("parameters:\n  - names: [CacheExtensions_Parameter1]\n",
                             env={"CACHE_EXTENSION_LOG_LEVEL": "info"})
    deadline = time.monotonic() + 10
    while "prefetched" not in handle.output and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "prefetched 1 item in " in handle.output, handle.output
