"""Routes that imitate AWS's products, so that code written for them works unchanged:

- AWS Parameters and Secrets Lambda Extension: GET /systemsmanager/parameters/get (GetParameter's JSON) and
  GET /secretsmanager/get (GetSecretValue's JSON), each also with a trailing slash as in AWS's examples.
- AWS Secrets Manager Agent (aws/aws-secretsmanager-agent): the same /secretsmanager/get, its path form
  GET /v1/<secretId>, refreshNow, X-Vault-Token (see app.Guard) and GET /ping.

Errors here are AWS's shape, {"__type": code, "message": ...}; an item AWS says does not exist is 400, as
both products answer. A name neither configured nor allowed stays 404 NotConfigured with no AWS call: we
cannot say whether it exists without asking AWS, and not asking is the point (README: "Switching from").
"""

from __future__ import annotations

import base64
import json
import math
from concurrent.futures import Future
from datetime import datetime
from typing import Callable

from . import names
from .app import Answer, Fail, Handler, cache_headers, lookup, not_configured, waited
from .config import Config, Item
from .http_common import JSON, HTTPError, Request, Response, either, query_value
from .metrics import Metrics
from .refresh import TokenBucket
from .store import Result, Store

AGENT_PREFIX = "/v1/"
# /secretsmanager/get is both products' route; the agent's token rules (X-Vault-Token, 403) apply to it.
AGENT_PATHS = frozenset({"/secretsmanager/get", "/secretsmanager/get/", "/ping"})
SECRET_QUERY = frozenset({"secretId", "versionId", "versionStage", "refreshNow"})
PATH_QUERY = frozenset({"versionId", "versionStage", "refreshNow"})
# What AWS calls an item it does not have, per source; the store says NotFound.
NOT_FOUND = {"parameters": "ParameterNotFound", "secrets": "ResourceNotFoundException"}

Check = Callable[[dict], bool]


def aws_error(status: int, code: str, message: str) -> Response:
    body = json.dumps({"__type": code, "message": message}, ensure_ascii=False).encode("utf-8")
    return Response(status, body, JSON)


def failer(source: str, selected: bool = False) -> Fail:
    def fail(status: int, code: str, message: str) -> Response:
        if status == 404 and code != "NotConfigured":
            # AWS answers a missing parameter, version or secret with 400, and both products pass that on.
            if code == "NotFound":
                code = "ParameterVersionNotFound" if selected and source == "parameters" else NOT_FOUND[source]
            status = 400
        return aws_error(status, code, message)

    return fail


def guarded(handler: Handler) -> Handler:
    """A query the route refuses is answered in AWS's shape too."""
    def run(request: Request) -> Answer:
        try:
            return handler(request)
        except HTTPError as exc:
            return aws_error(exc.status, HTTPError.CODES.get(exc.status, "BadRequest"), exc.detail)

    return run


def resolve(config: Config, source: str, requested: str, suffix: str = "",
            **versions) -> tuple[Item | None, Check | None]:
    """The configured or allowed item `requested` names under any name AWS accepts for it, and a check the
    value must pass (an ARN also names an account, which only the value's own ARN can confirm)."""
    item = config.resolve_version(source, requested, requested + suffix, **versions)
    if item is not None:
        return item, None
    alias = names.parse(source, requested)
    if alias is not None:
        def check(meta: dict) -> bool:
            return names.arn_matches(source, requested, meta.get("ARN"))

        candidates = alias.names
        for name in candidates:
            item = config.resolve_version(source, name, name + suffix, **versions)
            if item is not None and item.region == alias.region:
                return item, check
    else:
        def check(meta: dict) -> bool:
            return meta.get("Name") == requested

        candidates = (requested,)
    # An item config.yaml lists by its ARN, asked for by name or by another form of its ARN (a miss path only:
    # names as listed were found above).
    for configured in config.by_source(source):
        listed = names.parse(source, configured.name)
        if listed is not None and set(candidates) & set(listed.names) and (alias is None or listed.region == alias.region):
            return config.resolve_version(source, configured.name, configured.name + suffix, **versions), check
    return None, None


def checked(answer: Callable[[Result], Response], check: Check | None, source: str,
            fail: Fail) -> Callable[[Result], Response]:
    if check is None:
        return answer

    def run(result: Result) -> Response:
        if not check(result.value.meta or {}):
            return not_configured(source, fail)  # another account's or region's item of the same name
        return answer(result)

    return run


def refresh_now(request: Request) -> bool:
    value = query_value(request, "refreshNow", required=False)
    if value is None:
        return False
    flag = value.lower()
    if flag not in ("true", "1", "false", "0"):
        raise HTTPError(400, "invalid refreshNow value")
    return flag in ("true", "1")


def only(request: Request, allowed: frozenset[str]) -> None:
    for key in request.params():
        if key not in allowed:
            raise HTTPError(400, f"unknown parameter: {key[:64]}")


def read(store: Store, item: Item | None, source: str, metrics: Metrics | None, answer, fail: Fail,
         bucket: TokenBucket | None = None) -> Answer:
    """A read, or with a bucket (refreshNow=true) a fetch that starts after this request arrived, rate
    limited with POST /refresh's bucket so that refreshNow on every invoke cannot throttle AWS."""
    if item is None or bucket is None:
        return lookup(store, item, source, metrics, answer, fail)
    wait = bucket.take(1.0)
    if wait > 0:
        response = fail(429, "RateLimited", f"too many refreshes: retry in {wait:.1f} s")
        return response.header(b"retry-after", str(max(1, math.ceil(wait))))
    future: Future = store.refresh([item])[0]
    return waited(future, source, metrics, answer, fail)


def ssm_compatible(config: Config, store: Store, metrics: Metrics | None = None) -> Handler:
    """AWS Parameters and Secrets extension's GET /systemsmanager/parameters/get: GetParameter's JSON."""

    def get(request: Request) -> Answer:
        name = query_value(request, "name")
        version, label = either(request, "version", "label")
        decrypt = (query_value(request, "withDecryption", required=False) or "false").lower()
        if decrypt not in ("true", "false"):
            raise HTTPError(400, "query parameter 'withDecryption' must be true or false")
        if version and not version.isdigit():
            raise HTTPError(400, "query parameter 'version' must be a number")
        selector = version or label
        fail = failer("parameters", bool(selector))
        item, check = resolve(config, "parameters", name, f":{selector}" if selector else "")

        def answer(result: Result) -> Response:
            meta = dict(result.value.meta or {})
            if meta.get("Type") == "SecureString" and decrypt != "true":
                # Values are cached decrypted only; the ciphertext is of no use inside the function.
                return fail(400, "DecryptionRequired", "this is a SecureString: add withDecryption=true")
            meta["Value"] = result.value.body.decode("utf-8")
            parameter = {key: meta.get(key) for key in sorted(meta)}
            return aws_json({"Parameter": parameter, "ResultMetadata": {}}, result)

        return lookup(store, item, "parameters", metrics, checked(answer, check, "parameters", fail), fail)

    return get


def lambda_extension_secret(result: Result) -> Response:
    """GetSecretValue's JSON as AWS's Lambda extension writes it: every field, dates in RFC 3339."""
    value = result.value
    binary = value.content_type == "application/octet-stream"
    body = dict(value.meta or {})
    body["SecretBinary"] = base64.b64encode(value.body).decode("ascii") if binary else None
    body["SecretString"] = None if binary else value.body.decode("utf-8")
    body = {key: body.get(key) for key in sorted(body)}
    body["ResultMetadata"] = {}
    return aws_json(body, result)


def agent_secret(result: Result) -> Response:
    """GetSecretValue's JSON as the Secrets Manager Agent writes it: absent fields left out, CreatedDate as
    epoch seconds with a fraction, in a string."""
    value, meta = result.value, result.value.meta or {}
    body = {"ARN": meta.get("ARN"), "Name": meta.get("Name"), "VersionId": meta.get("VersionId")}
    if value.content_type == "application/octet-stream":
        body["SecretBinary"] = base64.b64encode(value.body).decode("ascii")
    else:
        body["SecretString"] = value.body.decode("utf-8")
    if meta.get("VersionStages") is not None:
        body["VersionStages"] = meta["VersionStages"]
    if meta.get("CreatedDate"):
        seconds = datetime.fromisoformat(meta["CreatedDate"].replace("Z", "+00:00")).timestamp()
        body["CreatedDate"] = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return aws_json(body, result)


def secret_route(config: Config, store: Store, bucket: TokenBucket, metrics: Metrics | None,
                 secret_id: Callable[[Request], str], allowed: frozenset[str],
                 shape: Callable[[Result], Response]) -> Handler:
    fail = failer("secrets")

    def get(request: Request) -> Answer:
        only(request, allowed)
        requested = secret_id(request)
        version_id, stage = either(request, "versionId", "versionStage")
        force = refresh_now(request)
        item, check = resolve(config, "secrets", requested, version_stage=stage, version_id=version_id)
        return read(store, item, "secrets", metrics, checked(shape, check, "secrets", fail), fail,
                    bucket if force else None)

    return get


def query_secret_id(request: Request) -> str:
    if not request.params().get("secretId"):
        raise HTTPError(400, "missing parameter secretId")
    return query_value(request, "secretId")


def path_secret_id(request: Request) -> str:
    secret_id = request.path[len(AGENT_PREFIX):]
    if not secret_id:
        raise HTTPError(400, "missing secret ID")
    if len(secret_id) > 2048:
        raise HTTPError(400, "the secret ID is longer than 2048 characters")
    return secret_id


def agent_path_route(config: Config, store: Store, bucket: TokenBucket, metrics: Metrics | None = None) -> Handler:
    """The agent's GET /v1/<secretId>[?versionId=|versionStage=][&refreshNow=]."""
    return guarded(secret_route(config, store, bucket, metrics, path_secret_id, PATH_QUERY, agent_secret))


def ping(request: Request) -> Response:
    """The agent's health check: no token, says nothing about any value."""
    return Response(200, b"healthy", b"text/plain; charset=utf-8")


def routes(config: Config, store: Store, bucket: TokenBucket, metrics: Metrics | None = None) -> dict[str, Handler]:
    ssm = guarded(ssm_compatible(config, store, metrics))
    secrets = guarded(secret_route(config, store, bucket, metrics, query_secret_id, SECRET_QUERY,
                                   lambda_extension_secret))
    # Three of AWS's own examples end the path with a slash.
    return {"/systemsmanager/parameters/get": ssm, "/systemsmanager/parameters/get/": ssm,
            "/secretsmanager/get": secrets, "/secretsmanager/get/": secrets, "/ping": ping}


def aws_json(body: dict, result: Result) -> Response:
    return Response(200, json.dumps(body, ensure_ascii=False).encode("utf-8"), JSON, cache_headers(result))
