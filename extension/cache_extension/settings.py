"""Settings from environment variables.

`load_settings` takes the environment as an argument (it never reads os.environ), so the
rules below are unit-testable. Every invalid value raises one SettingsError naming the
variable and its value; the token is a secret, so only its variable name is ever shown.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from collections.abc import Mapping

from .goparse import DURATION_HINT, parse_bool, parse_duration, quote

DEFAULT_TASK_ROOT = "/var/task"
DEFAULT_TTL = 300.0  # 5m, the original sample's default
# How long past its TTL a value may still be served (while it is refreshed, or while AWS fails): 5m.
DEFAULT_MAX_STALE = 300.0
DEFAULT_PORT = 4000

# EMF dimensions that can be chosen, and the variable Lambda sets with each one's value.
_DIMENSIONS = {"FunctionName": "AWS_LAMBDA_FUNCTION_NAME", "FunctionVersion": "AWS_LAMBDA_FUNCTION_VERSION",
               "Region": "AWS_REGION"}
_LOG_LEVELS = {"debug": "DEBUG", "info": "INFO", "warn": "WARNING", "warning": "WARNING", "error": "ERROR"}


class SettingsError(Exception):
    """An environment variable has an invalid value (the message names the variable)."""


@dataclass(frozen=True)
class Settings:
    config_path: str
    init_startup: bool
    ttl: float
    port: int
    log_level: str
    token: str = field(repr=False)  # keep the secret out of reprs that end up in logs
    region: str | None
    metrics: str = "off"                       # CACHE_EXTENSION_METRICS: off | emf
    metrics_namespace: str = "LambdaCacheExtension"
    metrics_dimensions: dict = field(default_factory=dict)  # EMF dimension name -> value
    log_json: bool = False                     # AWS_LAMBDA_LOG_FORMAT=JSON
    max_stale: float = DEFAULT_MAX_STALE       # CACHE_EXTENSION_MAX_STALE: the default `stale` of every item
    # CACHE_EXTENSION_SNAPSHOT_SECRETS: under SnapStart, whether INIT (and so the snapshot) may hold values from
    # Secrets Manager and SSM (any parameter may be a SecureString); false fetches them on the first INVOKE.
    snapshot_secrets: bool = True
    # The default TTL per source ("parameters", "secrets") when AWS's extension's SSM_PARAMETER_STORE_TTL /
    # SECRETS_MANAGER_TTL set one and CACHE_EXTENSION_TTL does not: config.yaml's own ttl still wins.
    source_ttls: dict = field(default_factory=dict)


# Settings of AWS's Parameters and Secrets Lambda Extension that map cleanly onto ours, so that a function
# switching over keeps its environment. Ours (CACHE_EXTENSION_*) win when both are set.
AWS_PORT = "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"
AWS_LOG_LEVEL = "PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL"
AWS_SOURCE_TTLS = {"parameters": "SSM_PARAMETER_STORE_TTL", "secrets": "SECRETS_MANAGER_TTL"}


def load_settings(env: Mapping[str, str]) -> Settings:
    def get(name: str) -> str | None:
        value = env.get(name)
        return value if value else None  # an empty string counts as unset

    def invalid(name: str, value: str, problem: str) -> SettingsError:
        return SettingsError(f"{name}={quote(value)}: {problem}")

    config_path = get("CACHE_EXTENSION_CONFIG") or posixpath.join(
        get("LAMBDA_TASK_ROOT") or DEFAULT_TASK_ROOT, "config.yaml"
    )

    def parsed(name: str, default, parse):
        raw = get(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as e:
            raise invalid(name, raw, str(e)) from None

    init_startup = parsed("CACHE_EXTENSION_INIT_STARTUP", True, parse_bool)
    ttl = parsed("CACHE_EXTENSION_TTL", DEFAULT_TTL, _positive_duration)
    max_stale = parsed("CACHE_EXTENSION_MAX_STALE", DEFAULT_MAX_STALE, _duration)
    def ours_or_aws(ours: str, aws: str, default, parse):
        return parsed(ours if get(ours) is not None else aws, default, parse)

    port = ours_or_aws("CACHE_EXTENSION_PORT", AWS_PORT, DEFAULT_PORT, _port)
    log_level = ours_or_aws("CACHE_EXTENSION_LOG_LEVEL", AWS_LOG_LEVEL, "INFO", _log_level)
    source_ttls = {} if get("CACHE_EXTENSION_TTL") is not None else {
        source: parsed(name, None, _aws_ttl) for source, name in AWS_SOURCE_TTLS.items() if get(name) is not None}

    # SnapStart has no session token: its credentials come from the container endpoint, whose token is set.
    # AWS_TOKEN: the Secrets Manager Agent's first token variable (its default ssrf_env_variables order).
    token = (get("CACHE_EXTENSION_TOKEN") or get("AWS_TOKEN") or get("AWS_SESSION_TOKEN")
             or get("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
    if token is None:
        raise SettingsError(
            "none of CACHE_EXTENSION_TOKEN, AWS_TOKEN, AWS_SESSION_TOKEN and AWS_CONTAINER_AUTHORIZATION_TOKEN is "
            "set: the HTTP API needs a token to check requests against and refuses to run unauthenticated"
        )
    if token.startswith("file://") and not get("CACHE_EXTENSION_TOKEN") and get("AWS_TOKEN"):
        # The agent reads the token from that file; we take tokens from the environment only. Only the
        # variable's name is shown: its value is a secret.
        raise SettingsError("AWS_TOKEN names a file (file://...): set CACHE_EXTENSION_TOKEN to the token instead")
    snapshot_secrets = parsed("CACHE_EXTENSION_SNAPSHOT_SECRETS", True, parse_bool)

    metrics = parsed("CACHE_EXTENSION_METRICS", "off", _metrics_mode)
    namespace = parsed("CACHE_EXTENSION_METRICS_NAMESPACE", "LambdaCacheExtension", _namespace)
    dimension_names = parsed("CACHE_EXTENSION_METRICS_DIMENSIONS", ("FunctionName",), _dimension_names)
    dimensions = {name: env.get(_DIMENSIONS[name]) or "unknown" for name in dimension_names}

    return Settings(
        config_path=config_path,
        init_startup=init_startup,
        ttl=ttl,
        port=port,
        log_level=log_level,
        token=token,
        region=get("AWS_REGION") or get("AWS_DEFAULT_REGION"),
        metrics=metrics,
        metrics_namespace=namespace,
        metrics_dimensions=dimensions,
        log_json=(get("AWS_LAMBDA_LOG_FORMAT") or "").upper() == "JSON",
        max_stale=max_stale,
        snapshot_secrets=snapshot_secrets,
        source_ttls=source_ttls,
    )


def _go_duration(raw: str) -> float:
    try:
        return parse_duration(raw)
    except ValueError as e:
        raise ValueError(f"{e}; {DURATION_HINT}") from None


def _positive_duration(raw: str) -> float:
    seconds = _go_duration(raw)
    if seconds <= 0:
        raise ValueError("must be greater than zero (e.g. 30s, 5m, 1h30m)")
    return seconds


def _duration(raw: str) -> float:
    seconds = _go_duration(raw)
    if seconds < 0:
        raise ValueError("must be zero or more (e.g. 0s, 30s, 5m)")
    return seconds


def _port(raw: str) -> int:
    # Digits only: int() would also take " 80", "+80", "8_0" and non-ASCII digits.
    significant = raw.lstrip("0")
    if not (raw.isascii() and raw.isdigit()) or len(significant) > 5 or not 1 <= int(significant or "0") <= 65535:
        raise ValueError("must be a port number from 1 to 65535")
    return int(significant)


def _log_level(raw: str) -> str:
    # "none" is AWS's extension's quietest level; errors are still worth a line.
    level = _LOG_LEVELS.get(raw.lower()) or ("ERROR" if raw.lower() == "none" else None)
    if level is None:
        raise ValueError("must be one of debug, info, warn, error, none")
    return level


def _aws_ttl(raw: str) -> float:
    """AWS's extension's TTLs: whole seconds. Its 0 (no caching) has no equivalent: this is a cache."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise ValueError("must be a whole number of seconds")
    if int(raw) == 0:
        raise ValueError("0 (caching off) is not supported: set a ttl, or read that item from AWS directly")
    return float(int(raw))


def _metrics_mode(raw: str) -> str:
    if raw.lower() not in ("off", "emf"):
        raise ValueError("must be off or emf")
    return raw.lower()


def _namespace(raw: str) -> str:
    if len(raw) > 255 or not raw.isprintable() or raw.startswith(":"):
        raise ValueError("must be a CloudWatch namespace (printable, at most 255 characters)")
    return raw


def _dimension_names(raw: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    unknown = [name for name in names if name not in _DIMENSIONS]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"must be a comma-separated list of distinct names from {', '.join(_DIMENSIONS)}")
    return names
