"""Switching from AWS's products (issue 16): their settings where they map onto ours, with ours winning;
names by ARN in config.yaml; refreshNow's rate limit."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from cache_extension.config import parse_config
from cache_extension.settings import SettingsError, load_settings
from conftest import REGION, SECRET_VALUES, unique
from local_lambda.aws import free_port

BASE = {"AWS_SESSION_TOKEN": "session-token"}


def settings(**env):
    return load_settings({**BASE, **env})


def test_aws_extension_port_is_used_and_ours_wins():
    assert settings().port == 4000
    assert settings(PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="2773").port == 2773
    assert settings(PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="2773", CACHE_EXTENSION_PORT="4001").port == 4001
    with pytest.raises(SettingsError, match="PARAMETERS_SECRETS_EXTENSION_HTTP_PORT"):
        settings(PARAMETERS_SECRETS_EXTENSION_HTTP_PORT="http")


def test_aws_extension_log_level_is_used_and_ours_wins():
    assert settings(PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL="debug").log_level == "DEBUG"
    assert settings(PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL="none").log_level == "ERROR"  # errors still logged
    assert settings(PARAMETERS_SECRETS_EXTENSION_LOG_LEVEL="debug", CACHE_EXTENSION_LOG_LEVEL="warn").log_level == "WARNING"


def test_aws_extension_ttls_set_each_source_default():
    s = settings(SSM_PARAMETER_STORE_TTL="120", SECRETS_MANAGER_TTL="30")
    assert s.source_ttls == {"parameters": 120.0, "secrets": 30.0}
    config = parse_config("parameters:\n  - names: [a, {name: b, ttl: 5s}]\nsecrets:\n  - names: [s]\n"
                          "dynamodb:\n  - {table: T, hashkey: k, hashkeyvalue: v}\n",
                          path="config.yaml", default_region=REGION, default_ttl=s.ttl, source_ttls=s.source_ttls)
    ttls = {item.name: item.ttl for item in config.items}
    assert ttls == {"a": 120.0, "b": 5.0, "s": 30.0, "T-v": 300.0}  # config.yaml's own ttl still wins
    # CACHE_EXTENSION_TTL wins over both
    assert settings(SSM_PARAMETER_STORE_TTL="120", CACHE_EXTENSION_TTL="1m").source_ttls == {}


@pytest.mark.parametrize("value", ["0", "-1", "5m", "1.5"])
def test_aws_extension_ttls_that_do_not_map_are_errors_naming_the_variable(value):
    with pytest.raises(SettingsError, match="SECRETS_MANAGER_TTL"):
        settings(SECRETS_MANAGER_TTL=value)


def test_the_agents_token_variable():
    assert settings(AWS_TOKEN="agent-token").token == "agent-token"
    assert settings(AWS_TOKEN="agent-token", CACHE_EXTENSION_TOKEN="ours").token == "ours"
    with pytest.raises(SettingsError) as raised:
        settings(AWS_TOKEN="file:///run/token-file")
    assert "token-file" not in str(raised.value)  # only the variable is named


def test_extension_listens_on_the_aws_extensions_port(start_extension):
    port = free_port()
    ext = start_extension(env={"CACHE_EXTENSION_PORT": "", "PARAMETERS_SECRETS_EXTENSION_HTTP_PORT": str(port)},
                          port=port)
    reply = ext.request("/secretsmanager/get?secretId=secret_info")
    assert reply.status == 200 and json.loads(reply.body)["SecretString"] == "MySecret"


def test_a_secret_listed_by_arn_is_read_by_name(start_extension, moto):
    name = unique("migrate/by-arn")
    SECRET_VALUES.add("listed-by-arn")
    arn = moto.client("secretsmanager", REGION).create_secret(Name=name, SecretString="listed-by-arn")["ARN"]
    ext = start_extension(f"secrets:\n  - names: ['{arn}']\n")
    for secret_id in (name, arn, arn[:-7]):
        reply = ext.request(f"/secretsmanager/get?secretId={quote(secret_id, safe='')}")
        assert reply.status == 200 and json.loads(reply.body)["SecretString"] == "listed-by-arn", secret_id
    # A name that only looks like it (a longer one) is not the item.
    assert ext.request(f"/secretsmanager/get?secretId={quote(name + 'x', safe='')}").status == 404


def test_refresh_now_shares_the_refresh_rate_limit(start_extension):
    ext = start_extension()
    statuses = [ext.request("/secretsmanager/get?secretId=secret_info&refreshNow=true").status for _ in range(12)]
    assert statuses[:10] == [200] * 10 and statuses[-1] == 429
    limited = ext.request("/v1/secret_info?refreshNow=true")
    assert limited.status == 429 and int(limited.headers["retry-after"]) >= 1
    assert json.loads(limited.body)["__type"] == "RateLimited"
    assert ext.request("/refresh?name=secret_info", method="POST").status == 429  # one bucket for both
    assert ext.request("/secretsmanager/get?secretId=secret_info").status == 200  # plain reads are not limited
