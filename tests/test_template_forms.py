"""template.yaml's parameters for the forms of config.yaml beyond names (a path, a secrets filter by name prefix or
by tag, a role in another account): each grants exactly what that form needs (README "IAM for each form")."""

from __future__ import annotations

import json

import test_template
from cache_extension.config import parse_config
from test_template import FUNCTIONS, as_list, function_role, parameter_arn, render, secret_arn, statements_of_role

# The forms beyond names, as config.yaml would write them with the template's parameters set to match.
NEW_FORMS = {"CachePath": "/myapp/prod", "CacheSecretsPrefix": "myapp/", "CacheSecretsTagValue": "payments",
             "CacheRoleArn": "arn:aws:iam::210987654321:role/cache-reader"}
NEW_FORMS_CONFIG = """\
parameters:
  - path: /myapp/prod
    recursive: true
  - names: [remote]
    role_arn: arn:aws:iam::210987654321:role/cache-reader
secrets:
  - filter: {name: myapp/}
  - filter: {tag-key: cache-extension, tag-value: payments}
"""


def expected_new_forms(config) -> set[tuple]:
    """What each group by path or filter and each role_arn of `config` needs: (action, resource, condition)."""
    needed: set[tuple] = set()
    for item in config.items:
        if item.role is not None:
            needed.add(("sts:AssumeRole", item.role.arn, None))
        if item.listing is None:
            continue
        if item.source == "parameters":
            needed.add(("ssm:GetParametersByPath", parameter_arn(item.name.rstrip("/"), item.region), None))
            continue
        needed |= {(action, "*", None) for action in ("secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets")}
        filters = dict(item.listing.filters)
        for prefix in filters.get("name", ()):
            needed.add(("secretsmanager:GetSecretValue", secret_arn(prefix, item.region) + "*", None))
        if "tag-key" in filters:
            (key,), (value,) = filters["tag-key"], filters["tag-value"]
            condition_text = json.dumps({"StringEquals": {f"secretsmanager:ResourceTag/{key}": value}})
            needed.add(("secretsmanager:GetSecretValue", secret_arn("*", item.region), condition_text))
    return needed


def rendered(condition: dict) -> dict:
    """A policy Condition block with its values rendered."""
    return {operator: {key: render(value) for key, value in entries.items()} for operator, entries in condition.items()}


def test_each_new_form_gets_least_privilege(monkeypatch):
    """With the template's parameters set for a path, a name prefix, a tag and a role, the example functions may do
    exactly what those forms need, and the example's own grants are unchanged; with the defaults, none of it."""
    granted_before = {function: statements_of_role(function_role(function)) for function in FUNCTIONS}
    monkeypatch.setattr(test_template, "PARAMETERS", dict(NEW_FORMS))
    config = parse_config(NEW_FORMS_CONFIG, path="config.yaml", default_region="REGION", default_ttl=300)
    for function in FUNCTIONS:
        statements = statements_of_role(function_role(function))
        added = [s for s in statements if s not in granted_before[function]]
        granted = {(action, render(resource), json.dumps(rendered(s["Condition"])) if "Condition" in s else None)
                   for s in added for action in as_list(s["Action"]) for resource in as_list(s["Resource"])}
        assert granted == expected_new_forms(config), function
        for statement in added:  # "*" only where AWS allows nothing narrower, or under a tag condition
            for resource in as_list(statement["Resource"]):
                if "*" in render(resource) and not render(resource).endswith(":secret:myapp/*"):
                    assert set(as_list(statement["Action"])) <= {
                        "secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets"} or "Condition" in statement
