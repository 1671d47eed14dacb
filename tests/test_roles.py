"""`role_arn:` / `external_id:`: reads in another account with STS AssumeRole credentials, one session per role,
renewed before they expire; config checks with file:line. moto keeps each account's resources apart by the
credentials' account, so a parameter put with the assumed role's credentials lives in the other account."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from cache_extension.config import ConfigError, parse_config
from cache_extension.config_roles import Role
from cache_extension.fetchers.base import ClientFactory
from cache_extension.fetchers.roles import RoleSessions
from cache_extension.fetchers.ssm import ParameterFetcher
from cache_extension.config import Item
from cache_extension.metrics import Metrics
from conftest import REGION, SECRET_VALUES, unique

OTHER = "210987654321"
ROLE = f"arn:aws:iam::{OTHER}:role/cache-reader"
PATH = "/var/task/config.yaml"


def other_account(moto, service):
    """A client in account OTHER, as moto tells accounts apart: by the credentials AssumeRole gave."""
    credentials = moto.client("sts", REGION).assume_role(RoleArn=ROLE, RoleSessionName="test")["Credentials"]
    return boto3.client(service, region_name=REGION, endpoint_url=moto.endpoint,
                        aws_access_key_id=credentials["AccessKeyId"],
                        aws_secret_access_key=credentials["SecretAccessKey"],
                        aws_session_token=credentials["SessionToken"])


def parse(text):
    return parse_config(text, path=PATH, default_region=REGION, default_ttl=300.0)


def test_roles_in_config():
    config = parse(f"parameters:\n  - role_arn: {ROLE}\n    external_id: shared-id\n    names:\n      - a\n"
                   f"      - {{name: b, role_arn: 'arn:aws:iam::{OTHER}:role/other'}}\n  - names: [c]\n"
                   f"  - path: /p/\n    role_arn: {ROLE}\n"
                   f"dynamodb:\n  - table: T\n    hashkey: k\n    hashkeyvalue: v\n    role_arn: {ROLE}\n")
    roles = {item.name: item.role for item in config.items}
    assert roles["a"] == Role(ROLE, "shared-id") and roles["b"] == Role(f"arn:aws:iam::{OTHER}:role/other")
    assert roles["c"] is None and roles["/p/"] == Role(ROLE) and roles["T-v"] == Role(ROLE)
    assert config.resolve("parameters", "/p/x").role == Role(ROLE)  # a path's members: the path's role
    assert "shared-id" not in repr(config.items[0])


@pytest.mark.parametrize("text, line, key, says", [
    ("parameters:\n  - names: [a]\n    external_id: abc\n", 3, "parameters[0].external_id", "goes with 'role_arn:'"),
    ("parameters:\n  - names: [a]\n    role_arn: arn:aws:iam::1:role/x\n", 3, "parameters[0].role_arn",
     "not an IAM role ARN"),
    ("secrets:\n  - names: [a]\n    role_arn: arn:aws:iam::123456789012:user/x\n", 3, "secrets[0].role_arn",
     "not an IAM role ARN"),
    (f"parameters:\n  - names: [a]\n    role_arn: {ROLE}\n    external_id: 'bad id!'\n", 4,
     "parameters[0].external_id", "2 to 1224"),
    ("parameters:\n  - names: [{name: a, external_id: xy}]\n", 2, "parameters[0].names[0].external_id",
     "goes with 'role_arn:'"),
])
def test_role_errors_name_file_line_and_key(text, line, key, says):
    with pytest.raises(ConfigError) as raised:
        parse(text)
    error = raised.value
    assert (error.line, error.key) == (line, key) and says in error.problem, str(error)
    assert "bad id!" not in str(error)


class Clock:
    """botocore's clock for the credentials' expiry."""

    def __init__(self):
        self.now = datetime.now(timezone.utc)

    def __call__(self):
        return self.now


def test_an_expired_session_is_renewed_without_a_failed_read(moto, monkeypatch):
    name = unique("/roles/unit")
    other_account(moto, "ssm").put_parameter(Name=name, Value="other-account-value", Type="String")
    for variable, value in {"AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}.items():
        monkeypatch.setenv(variable, value)
    metrics, clock = Metrics(), Clock()
    factory = ClientFactory(metrics)

    class Sts:
        """moto's STS, its credentials' expiry moved with the test's clock (moto's is the real one)."""

        def __init__(self, region):
            self.client = factory.get("sts", region)

        def assume_role(self, **request):
            answer = self.client.assume_role(**request)
            answer["Credentials"]["Expiration"] += clock.now - datetime.now(timezone.utc)
            return answer

    factory._roles = RoleSessions(Sts, time_fetcher=clock)
    fetcher = ParameterFetcher(factory)
    item = Item("parameters", name, REGION, 60.0, role=Role(ROLE))

    def assumed():
        return metrics.snapshot()["upstream"].get("sts:AssumeRole", {}).get("calls", 0)

    assert fetcher.get_many([item])[name].body == b"other-account-value"
    assert assumed() == 1
    # Without the role: the function's own account, where it does not exist.
    assert fetcher.get_many([Item("parameters", name, REGION, 60.0)])[name].code == "NotFound"
    # One session per role: a second client (another service) of the same role assumes nothing new.
    factory.get("secretsmanager", REGION, Role(ROLE)).list_secrets()
    assert assumed() == 1
    clock.now += timedelta(minutes=50)  # inside the last 15 minutes: renewed before it expires
    assert fetcher.get_many([item])[name].body == b"other-account-value"
    assert assumed() == 2
    clock.now += timedelta(hours=3)  # long expired (a frozen environment thawed): renewed, then the read
    assert fetcher.get_many([item])[name].body == b"other-account-value"
    assert assumed() == 3
    assert metrics.snapshot()["upstream"]["ssm:GetParameters"]["errors"] == {}


def test_roles_end_to_end(start_extension, moto):
    own, other, secret = unique("/roles/own"), unique("/roles/other"), unique("roles/e2e")
    SECRET_VALUES.add("other-account-secret")
    other_account(moto, "ssm").put_parameter(Name=other, Value="other-e2e-value", Type="String")
    other_account(moto, "secretsmanager").create_secret(Name=secret, SecretString="other-account-secret")
    moto.client("ssm", REGION).put_parameter(Name=own, Value="own-e2e-value", Type="String")
    ext = start_extension(f"parameters:\n  - names: [{own}]\n"
                          f"  - names: [{other}]\n    role_arn: {ROLE}\n"
                          f"secrets:\n  - names: [{secret}]\n    role_arn: {ROLE}\n"
                          f"  - names: [{unique('roles/missing')}]\n    role_arn: {ROLE}\n    external_id: other-id\n")
    assert ext.read("parameters", own).body == b"own-e2e-value"
    assert ext.read("parameters", other).body == b"other-e2e-value"
    assert ext.read("secrets", secret).body == b"other-account-secret"
    upstream = json.loads(ext.request("/stats").body)["upstream"]
    assert upstream["sts:AssumeRole"]["calls"] == 2  # one session per role and external id
    assert "other-id" not in ext.output


def test_the_full_arns_of_another_accounts_items_are_names(start_extension, moto):
    """Issue 18: 'Full ARNs of shared parameters and secrets are accepted as names': listed by ARN with the role
    of their account, each is read by that ARN, and the bare names stay the function's own account's."""
    name, secret = unique("/roles/arn"), unique("roles/arn-secret")
    SECRET_VALUES.add("other-account-arn-secret")
    parameter_arn = other_account(moto, "ssm").put_parameter(Name=name, Value="other-arn-value", Type="String") and \
        f"arn:aws:ssm:{REGION}:{OTHER}:parameter{name}"
    secret_arn = other_account(moto, "secretsmanager").create_secret(Name=secret,
                                                                     SecretString="other-account-arn-secret")["ARN"]
    ext = start_extension(f"parameters:\n  - names: ['{parameter_arn}']\n    role_arn: {ROLE}\n"
                          f"secrets:\n  - names: ['{secret_arn}']\n    role_arn: {ROLE}\n")
    assert ext.read("parameters", parameter_arn).body == b"other-arn-value", ext.output
    assert ext.read("secrets", secret_arn).body == b"other-account-arn-secret", ext.output
    # The bare name means the function's own account: not this secret, which stays another account's.
    assert ext.read("secrets", secret).status == 404 and ext.read("parameters", name).status == 404
