"""An unexpected failure inside a request answers 500 JSON and logs the exception type only."""

import asyncio
import json
import logging

from cache_extension.app import create_app
from cache_extension.config import parse_config
from cache_extension.http_common import Request, Response


class BrokenStore:
    def read(self, item):
        raise RuntimeError("the secret value hunter2 leaked into an exception")


def call(app, path: str, query: str, token: str, *, method: str = "GET",
         headers: list[tuple[bytes, bytes]] | None = None, client: tuple[str, int] | None = ("127.0.0.1", 1)):
    """One request to the app in this process (as the server hands it over): (status, body)."""
    if headers is None:
        headers = [(b"x-aws-parameters-secrets-token", token.encode())]
    answer = app.handle(Request(method, path, query.encode(), list(headers), client))
    if not isinstance(answer, Response):
        answer = asyncio.run(answer)
    return answer.status, answer.body


def test_internal_errors_answer_500_without_details(caplog):
    config = parse_config("parameters:\n  - names: [p]\n", path="config.yaml", default_region="us-east-1", default_ttl=60)
    app = create_app(config, BrokenStore(), "token")
    with caplog.at_level(logging.DEBUG):
        status, body = call(app, "/parameters", "name=p", "token")
    assert status == 500
    assert json.loads(body) == {"error": "InternalError", "message": "the extension failed to answer this request"}
    assert "hunter2" not in caplog.text and "Traceback" not in caplog.text
    assert "RuntimeError" in caplog.text
