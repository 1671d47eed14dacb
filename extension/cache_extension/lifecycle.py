"""A client of the Lambda Extensions API. Standard library only: it runs before any heavy import."""

from __future__ import annotations

import http.client
import json

BASE = "/2020-01-01/extension"


class ExtensionsApiError(Exception):
    pass


class ExtensionsApi:
    def __init__(self, address: str, name: str) -> None:
        self.address = address  # host:port, no scheme, as in AWS_LAMBDA_RUNTIME_API
        self.name = name
        self.identifier: str | None = None

    def register(self, events: list[str]) -> dict:
        status, headers, body = self._call(
            "POST", "/register", {"events": events}, {"Lambda-Extension-Name": self.name}
        )
        if status != 200 or not headers.get("Lambda-Extension-Identifier"):
            raise ExtensionsApiError(f"register answered HTTP {status}")
        self.identifier = headers["Lambda-Extension-Identifier"]
        return json.loads(body or b"{}")

    def next_event(self) -> dict:
        """Blocks until Lambda sends the next event; no timeout, as Lambda may keep us frozen."""
        status, _, body = self._call("GET", "/event/next", timeout=None)
        if status != 200:
            raise ExtensionsApiError(f"event/next answered HTTP {status}")
        return json.loads(body)

    def init_error(self, error_type: str, message: str) -> None:
        self._report("/init/error", error_type, message)

    def exit_error(self, error_type: str, message: str) -> None:
        self._report("/exit/error", error_type, message)

    def _report(self, path: str, error_type: str, message: str) -> None:
        body = {"errorMessage": message, "errorType": error_type, "stackTrace": []}
        self._call("POST", path, body, {"Lambda-Extension-Function-Error-Type": error_type})

    def _call(self, method: str, path: str, body: dict | None = None, headers: dict | None = None, timeout: float | None = 5.0):
        host, _, port = self.address.rpartition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
        all_headers = dict(headers or {})
        if self.identifier:
            all_headers["Lambda-Extension-Identifier"] = self.identifier
        payload = None
        if body is not None:
            payload = json.dumps(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        try:
            connection.request(method, BASE + path, body=payload, headers=all_headers)
            response = connection.getresponse()
            return response.status, response.headers, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ExtensionsApiError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from None
        finally:
            connection.close()
