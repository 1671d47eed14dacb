"""Issue 12, item 8: a batch call that fails for one item (a DynamoDB table that does not exist, a reference to a
missing secret, a name AWS refuses) fails that item only, and the good ones in its batch are fetched.

Fake botocore clients that fail a whole call when it asks for a bad item, as AWS (and moto) do: calls are counted,
so the splitting is seen to stay bounded."""

from __future__ import annotations

import math

import pytest
from botocore.exceptions import ClientError

from cache_extension.config import Item
from cache_extension.fetchers import FetchError, Value
from cache_extension.fetchers.dynamodb import ItemFetcher
from cache_extension.fetchers.secrets import SecretFetcher
from cache_extension.fetchers.ssm import SECRETS_REFERENCE, ParameterFetcher

REGION = "us-west-2"


def client_error(code: str, operation: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "request data hunter2"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class Clients:
    def __init__(self, client):
        self.client = client

    def get(self, service, region, role=None):
        return self.client


class FakeDynamoDb:
    def __init__(self, tables: set[str], error: str = "ResourceNotFoundException", bad_keys=()):
        self.tables, self.error, self.bad_keys, self.calls = tables, error, set(bad_keys), []

    def batch_get_item(self, RequestItems):
        self.calls.append({table: len(spec["Keys"]) for table, spec in RequestItems.items()})
        if any(table not in self.tables for table in RequestItems):
            raise client_error(self.error, "BatchGetItem")
        if any(key["pKey"]["S"] in self.bad_keys for spec in RequestItems.values() for key in spec["Keys"]):
            raise client_error("ValidationException", "BatchGetItem")
        return {"Responses": {table: [dict(key, Data={"S": f"{table}/{key['pKey']['S']}"}) for key in spec["Keys"]]
                              for table, spec in RequestItems.items()}}


def dynamodb_item(table: str, key: str) -> Item:
    return Item(source="dynamodb", name=f"{table}-{key}", region=REGION, ttl=60.0, table=table,
                key={"pKey": {"S": key}})


def test_a_table_that_does_not_exist_fails_its_items_only():
    client = FakeDynamoDb({"Good", "Other"})
    items = ([dynamodb_item("Good", f"k{i}") for i in range(40)] + [dynamodb_item("Missing", "k1")]
             + [dynamodb_item("Other", f"k{i}") for i in range(10)])
    outcomes = ItemFetcher(Clients(client)).get_many(items)
    bad = outcomes.pop("Missing-k1")
    assert isinstance(bad, FetchError) and (bad.code, bad.status) == ("ResourceNotFoundException", 404)
    assert all(isinstance(value, Value) for value in outcomes.values()) and len(outcomes) == 50
    print(f"\n[one missing table among 3] {len(client.calls)} BatchGetItem calls: {client.calls}")
    assert len(client.calls) <= 1 + 2 * math.ceil(math.log2(3))  # split by table, not a call per item


def test_one_bad_key_in_a_table_is_found_by_halving():
    client = FakeDynamoDb({"Good"}, bad_keys={"k37"})
    items = [dynamodb_item("Good", f"k{i}") for i in range(100)]
    outcomes = ItemFetcher(Clients(client)).get_many(items)
    failed = {name for name, outcome in outcomes.items() if isinstance(outcome, FetchError)}
    print(f"\n[one bad key among 100] {len(client.calls)} BatchGetItem calls")
    assert failed == {"Good-k37"} and outcomes["Good-k37"].code == "ValidationException"
    assert len(client.calls) <= 1 + 2 * math.ceil(math.log2(100))


def test_an_error_that_fails_every_item_costs_a_bounded_number_of_calls():
    client = FakeDynamoDb(set(), error="AccessDeniedException")  # the role may read no table at all
    items = [dynamodb_item(f"T{i % 7}", f"k{i}") for i in range(100)]
    outcomes = ItemFetcher(Clients(client)).get_many(items)
    assert {outcome.code for outcome in outcomes.values()} == {"AccessDeniedException"}
    print(f"\n[every table denied, 100 items] {len(client.calls)} BatchGetItem calls")
    assert len(client.calls) <= 1 + 4 * math.ceil(math.log2(100))


@pytest.mark.parametrize("code, status", [("ThrottlingException", 400), ("InternalServerError", 500)])
def test_transient_failures_are_not_split(code, status):
    class Failing(FakeDynamoDb):
        def batch_get_item(self, RequestItems):
            self.calls.append(1)
            raise client_error(code, "BatchGetItem", status)

    client = Failing(set())
    outcomes = ItemFetcher(Clients(client)).get_many([dynamodb_item("T", f"k{i}") for i in range(10)])
    assert {outcome.code for outcome in outcomes.values()} == {code}
    assert len(client.calls) == 1  # the store retries these (its circuit counts them); no call per part


class FakeSsm:
    """GetParameters as AWS answers it: a missing name in InvalidParameters, but a reference to a missing secret
    (or a name it refuses) fails the whole call."""

    def __init__(self, values: dict[str, str], refused=()):
        self.values, self.refused, self.calls = values, set(refused), []

    def get_parameters(self, Names, WithDecryption):
        self.calls.append(list(Names))
        for name in Names:
            if name in self.refused:
                raise client_error("ValidationException", "GetParameters")
            if name.startswith(SECRETS_REFERENCE) and name not in self.values:
                raise client_error("ParameterNotFound", "GetParameters")
        return {"Parameters": [{"Name": name, "Value": self.values[name]} for name in Names if name in self.values],
                "InvalidParameters": [name for name in Names if name not in self.values]}


def parameter(name: str) -> Item:
    return Item(source="parameters", name=name, region=REGION, ttl=60.0)


def test_a_reference_to_a_missing_secret_fails_that_reference_only():
    good = [f"{SECRETS_REFERENCE}s{i}" for i in range(4)]
    client = FakeSsm({**{name: "v" for name in good}, "/p1": "v"})
    missing = f"{SECRETS_REFERENCE}gone"
    outcomes = ParameterFetcher(Clients(client)).get_many([parameter(n) for n in [*good, missing, "/p1", "/p2"]])
    assert all(isinstance(outcomes[name], Value) for name in [*good, "/p1"])
    assert outcomes[missing].code == "ParameterNotFound" and outcomes[missing].status == 404
    assert outcomes["/p2"].status == 404  # InvalidParameters, as before: one call answered it
    print(f"\n[one missing reference among 5] {len(client.calls)} GetParameters calls")
    assert len(client.calls) <= 2 + 2 * math.ceil(math.log2(5))


def test_a_name_getparameters_refuses_fails_that_name_only():
    names = [f"/p{i}" for i in range(10)]
    client = FakeSsm({name: "v" for name in names}, refused={"/p6"})
    outcomes = ParameterFetcher(Clients(client)).get_many([parameter(n) for n in names])
    assert {name for name, o in outcomes.items() if isinstance(o, FetchError)} == {"/p6"}
    assert outcomes["/p6"].code == "ValidationException"


class FakeSecretsManager:
    def __init__(self, values: dict[str, str], refused=(), batch_denied=False):
        self.values, self.refused, self.batch_denied, self.calls = values, set(refused), batch_denied, []

    def batch_get_secret_value(self, SecretIdList):
        self.calls.append(("batch", len(SecretIdList)))
        if self.batch_denied:
            raise client_error("AccessDeniedException", "BatchGetSecretValue")
        if self.refused & set(SecretIdList):
            raise client_error("ValidationException", "BatchGetSecretValue")
        return {"SecretValues": [{"Name": i, "ARN": f"arn:{i}-abcdef", "SecretString": self.values[i]}
                                 for i in SecretIdList if i in self.values],
                "Errors": [{"SecretId": i, "ErrorCode": "ResourceNotFoundException"}
                           for i in SecretIdList if i not in self.values]}

    def get_secret_value(self, SecretId, **_):
        self.calls.append(("one", 1))
        if SecretId not in self.values:
            raise client_error("ResourceNotFoundException", "GetSecretValue")
        return {"Name": SecretId, "ARN": f"arn:{SecretId}-abcdef", "SecretString": self.values[SecretId]}


def secret(name: str) -> Item:
    return Item(source="secrets", name=name, region=REGION, ttl=60.0)


def test_a_missing_secret_in_a_batch_fails_that_secret_only():
    names = [f"s{i}" for i in range(6)]
    client = FakeSecretsManager({name: "v" for name in names})
    outcomes = SecretFetcher(Clients(client)).get_many([secret(n) for n in [*names, "gone"]])
    assert all(isinstance(outcomes[name], Value) for name in names)
    assert (outcomes["gone"].code, outcomes["gone"].status) == ("ResourceNotFoundException", 404)
    assert client.calls == [("batch", 7)]  # BatchGetSecretValue's Errors name it: one call


def test_a_secret_that_fails_the_whole_batch_fails_alone():
    names = [f"s{i}" for i in range(20)]
    client = FakeSecretsManager({name: "v" for name in names}, refused={"s13"})
    outcomes = SecretFetcher(Clients(client)).get_many([secret(n) for n in names])
    assert {name for name, o in outcomes.items() if isinstance(o, FetchError)} == {"s13"}
    print(f"\n[one refused secret among 20] {len(client.calls)} calls")
    assert len(client.calls) <= 1 + 2 * math.ceil(math.log2(20))


def test_a_role_without_the_batch_permission_still_reads_one_by_one():
    client = FakeSecretsManager({"a": "1", "b": "2"}, batch_denied=True)
    outcomes = SecretFetcher(Clients(client)).get_many([secret("a"), secret("b"), secret("gone")])
    assert isinstance(outcomes["a"], Value) and isinstance(outcomes["b"], Value) and outcomes["gone"].status == 404
    assert client.calls == [("batch", 3), ("one", 1), ("one", 1), ("one", 1)]


def test_no_error_text_from_aws_reaches_an_outcome():
    client = FakeDynamoDb({"Good"})
    outcomes = ItemFetcher(Clients(client)).get_many([dynamodb_item("Good", "k"), dynamodb_item("Missing", "k")])
    assert "hunter2" not in str(outcomes["Missing-k"]) and "hunter2" not in outcomes["Missing-k"].message


def test_the_split_is_logged_without_names_values_or_aws_text(caplog):
    caplog.set_level("DEBUG", logger="cache_extension")
    client = FakeSecretsManager({f"s{i}": f"hunter2-value-{i}" for i in range(4)}, refused={"s2"})
    outcomes = SecretFetcher(Clients(client)).get_many([secret(f"s{i}") for i in range(4)])
    assert {name for name, o in outcomes.items() if isinstance(o, FetchError)} == {"s2"}
    assert "asking again in parts" in caplog.text
    assert "hunter2" not in caplog.text  # neither a value nor AWS's message (which can quote request data)
