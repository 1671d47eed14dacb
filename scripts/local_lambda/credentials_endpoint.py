"""Lambda's container credentials endpoint, as SnapStart functions and their extensions read it.

SnapStart environments have no AWS_SESSION_TOKEN and no access keys: botocore's default chain finds
AWS_CONTAINER_CREDENTIALS_FULL_URI and sends AWS_CONTAINER_AUTHORIZATION_TOKEN as its Authorization header.
This serves that endpoint on loopback, refusing any other token, with dummy credentials moto accepts.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/2021-04-23/credentials"


class CredentialsEndpoint:
    """Lambda's container credentials endpoint, as botocore's container provider reads it."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.served = 0
        self.refused = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.headers.get("Authorization") != endpoint.token:
                    endpoint.refused += 1
                    self._send(401, {"message": "missing or wrong authorization token"})
                    return
                endpoint.served += 1
                expires = datetime.now(timezone.utc) + timedelta(days=30)  # outlives a simulated restore
                self._send(200, {"AccessKeyId": "ASIACONTAINERCREDS", "SecretAccessKey": "container-secret",
                                 "Token": "container-session", "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")})

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}{PATH}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def environment(self) -> dict[str, str]:
        """What Lambda sets in a SnapStart environment for this endpoint (and instead of the session token)."""
        return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.uri, "AWS_CONTAINER_AUTHORIZATION_TOKEN": self.token}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> CredentialsEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
