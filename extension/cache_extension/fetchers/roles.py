"""`role_arn:` (and `external_id:`): calls for an item made with credentials from STS AssumeRole.

One session per role (ARN and external id): a botocore session whose credentials are refreshable, so botocore
assumes the role again before they expire (in the last 15 minutes of a one-hour session, at the latest 10
minutes before the end), under its lock, while calls go on with the credentials they have. The role is assumed
with the extension's own credentials (the function's role), which need only sts:AssumeRole on it; the first
AssumeRole happens at the first call for the role, and its failure (AccessDenied, say) is that call's failure.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any, Callable

SESSION_NAME = "lambda-cache-extension"
DURATION = 3600  # seconds: the longest a role assumed from a Lambda function's role (role chaining) may last


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RoleSessions:
    """botocore sessions, one per config_roles.Role, made on first use. sts(region) is a client with the extension's own
    credentials; time_fetcher is botocore's clock for the credentials' expiry (a test moves it)."""

    def __init__(self, sts: Callable[[str], Any], time_fetcher: Callable[[], datetime] = _now) -> None:
        self._sts = sts
        self._time = time_fetcher
        self._sessions: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def session(self, role: Any, region: str) -> Any:
        with self._lock:
            session = self._sessions.get(role)
            if session is None:
                import botocore.session
                from botocore.credentials import DeferredRefreshableCredentials

                session = botocore.session.get_session()
                session._credentials = DeferredRefreshableCredentials(  # botocore's own way to plug them in
                    self._assume(role, region), "assume-role", time_fetcher=self._time)
                self._sessions[role] = session
            return session

    def _assume(self, role: Any, region: str) -> Callable[[], dict]:
        def refresh() -> dict:
            request = {"RoleArn": role.arn, "RoleSessionName": SESSION_NAME, "DurationSeconds": DURATION}
            if role.external_id:
                request["ExternalId"] = role.external_id
            credentials = self._sts(region).assume_role(**request)["Credentials"]
            expiration = credentials["Expiration"]
            return {"access_key": credentials["AccessKeyId"], "secret_key": credentials["SecretAccessKey"],
                    "token": credentials["SessionToken"],
                    "expiry_time": expiration.isoformat() if isinstance(expiration, datetime) else str(expiration)}

        return refresh
