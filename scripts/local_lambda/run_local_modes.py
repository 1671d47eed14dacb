"""`run-local --mode`: the environment Lambda sets in each mode, for the extension and the function.

The modes as Lambda documents them: on-demand (the default), SnapStart (no
session token: credentials from the container credentials endpoint; INIT once, restored later) and Managed
Instances (never frozen, several invokes at once, extensions get SHUTDOWN only). The emulator does the
Managed Instances lifecycle itself (LambdaEmulator(max_concurrency=N)); this module says what each mode
changes and which example functions can run it here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .credentials_endpoint import CredentialsEndpoint

MI_CONCURRENCY = 4  # AWS_LAMBDA_MAX_CONCURRENCY here: a few slots, enough to show invokes overlapping
# The HTTP API's token in SnapStart mode: the container authorization token (there is no session token).
CONTAINER_TOKEN = "local-container-token"


@dataclass(frozen=True)
class Mode:
    name: str  # the --mode value
    initialization_type: str  # AWS_LAMBDA_INITIALIZATION_TYPE
    max_concurrency: int | None  # Managed Instances only
    changes: str  # one line: what this mode changes, printed by run-local
    functions: tuple[str, ...]  # the --function values that can run it here
    refusal: str = ""  # why the others cannot

    def check(self, function: str) -> str | None:
        """None if `function` can run in this mode, else the message to refuse it with."""
        if function in self.functions:
            return None
        return (f"--mode {self.name} runs with --function {' or '.join(self.functions)} only: {self.refusal}")


MODES = {
    "on-demand": Mode(
        "on-demand", "on-demand", None,
        "on-demand (AWS_LAMBDA_INITIALIZATION_TYPE=on-demand): INIT before the first invoke, then one invoke at a "
        "time; on Lambda the environment is frozen between invokes (not here), and the extension refreshes ahead "
        "on INVOKE events; AWS_SESSION_TOKEN is the HTTP API's token",
        ("python", "nodejs", "java")),
    "snap-start": Mode(
        "snap-start", "snap-start", None,
        "snap-start (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start): no AWS_SESSION_TOKEN and no access keys; "
        "credentials come from the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI) and "
        "AWS_CONTAINER_AUTHORIZATION_TOKEN is the HTTP API's token; on Lambda INIT runs once at publish time and "
        "a snapshot is restored later (no restore here: tests/test_snapstart.py simulates one)",
        ("python", "java"),
        "Lambda has no SnapStart for Node.js (Java 11+, Python 3.12+ and .NET 8+ only)"),
    "managed-instances": Mode(
        "managed-instances", "lambda-managed-instances", MI_CONCURRENCY,
        f"managed-instances (AWS_LAMBDA_INITIALIZATION_TYPE=lambda-managed-instances, "
        f"AWS_LAMBDA_MAX_CONCURRENCY={MI_CONCURRENCY}): up to {MI_CONCURRENCY} invokes at once (awslambdaric runs "
        f"one process per slot), never frozen; the extension registers for SHUTDOWN only and refreshes on a timer "
        f"(on Lambda: Python 3.13+)",
        ("python",),
        "the local Node.js and Java bootstraps serve one invoke at a time (on Lambda, Managed Instances run "
        "Node.js 22+ and Java 21+ invokes concurrently in one process)"),
}


def apply(mode: Mode, env: dict[str, str], endpoint: CredentialsEndpoint | None) -> dict[str, str]:
    """`env` (from lambda_environment) as Lambda sets it in `mode`, for the extension and the function alike.

    Managed Instances' AWS_LAMBDA_INITIALIZATION_TYPE and AWS_LAMBDA_MAX_CONCURRENCY come from the emulator
    (LambdaEmulator(max_concurrency=...)), which sets them for the runtime and the extensions as RIE does.
    """
    env = {**env, "AWS_LAMBDA_INITIALIZATION_TYPE": mode.initialization_type}
    if mode.name == "snap-start":
        if endpoint is None:
            raise ValueError("snap-start needs the container credentials endpoint")
        for name in ("AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.pop(name, None)  # SnapStart has none of them
        env.update(endpoint.environment())
    return env


def http_token(mode: Mode, session_token: str) -> str:
    """The token a function sends to the extension in `mode` (what the client reads from the environment)."""
    return CONTAINER_TOKEN if mode.name == "snap-start" else session_token
