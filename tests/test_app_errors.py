"""An unexpected failure inside a request answers 500 JSON and logs the exception type only."""

import asyncio
import json
import logging

from cache_extension.app import create_app
from cache_extension.config import parse_config


class BrokenStore:
    def read(self, item):
        raise RuntimeError("the secret value hunter2 leaked into an exception")


def call(app, path: str, query: str, token: str):
    messages = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": [(b"x-aws-parameters-secrets-token", token.encode())], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 4000)}
    asyncio.run(app(scope, receive, send))
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], body


def test_internal_errors_answer_500_without_details(caplog):
    config = parse_config("parameters:\n  - names: [p]\n", path="config.yaml", default_region="us-east-1", default_ttl=60)
    app = create_app(config, BrokenStore(), "token")
    with caplog.at_level(logging.DEBUG):
        status, body = call(app, "/parameters", "name=p", "token")
    assert status == 500
    assert json.loads(body) == {"error": "InternalError", "message": "the extension failed to answer this request"}
    assert "hunter2" not in caplog.text and "Traceback" not in caplog.text
    assert "RuntimeError" in caplog.text
