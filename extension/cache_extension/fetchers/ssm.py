"""SSM Parameter Store, including secrets read through /aws/reference/secretsmanager/."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .base import Fetcher, FetchError, Value, metadata, not_found, text_value

if TYPE_CHECKING:
    from ..config import Item

SECRETS_REFERENCE = "/aws/reference/secretsmanager/"
# GetParameter's fields besides Value, for the AWS-compatible route.
META_FIELDS = ("ARN", "DataType", "LastModifiedDate", "Name", "Selector", "SourceResult", "Type", "Version")


class ParameterFetcher(Fetcher):
    source = "parameters"
    operation = "ssm:GetParameters"
    batch_size = 10  # GetParameters takes at most 10 names

    def fetch_batch(self, items: Sequence[Item]) -> dict[str, Value | FetchError]:
        if items[0].listing is not None:  # a path group: in a batch of its own (store.py)
            from .ssm_path import list_path

            return {items[0].name: list_path(self.clients.get("ssm", items[0].region, items[0].role), items[0])}
        # Every returned name must map to one item. References answer with the secret's own name,
        # which could collide with a parameter's; a version or label ("name:3") answers with the bare
        # name, which collides with the name itself. So those go in calls of their own.
        plain = [item for item in items if not item.name.startswith(SECRETS_REFERENCE) and not _selector(item.name)]
        references = [item for item in items if item.name.startswith(SECRETS_REFERENCE)]
        selected = [[item] for item in items if _selector(item.name) and item not in references]
        outcomes: dict[str, Value | FetchError] = {}
        for group in [plain, references, *selected]:
            if group:  # (a missing reference fails the whole call with ParameterNotFound: isolated finds it)
                outcomes.update(self.isolated(group, self._get_parameters, self.operation))
        return outcomes

    def _get_parameters(self, items: Sequence[Item]) -> dict[str, Value | FetchError]:
        client = self.clients.get("ssm", items[0].region, items[0].role)
        # WithDecryption: SecureString values and every secrets-manager reference need it.
        response = client.get_parameters(Names=[item.name for item in items], WithDecryption=True)
        parameters = response.get("Parameters", [])
        invalid = set(response.get("InvalidParameters", []))
        if len(items) == 1 and len(parameters) == 1:  # one asked, one answered: whatever name it carries
            return {items[0].name: _value(parameters[0], _selector(items[0].name))}
        returned: dict[str, Value] = {}
        for parameter in parameters:
            value = _value(parameter, None)
            for alias in _names_of(parameter):
                returned[alias] = value
        outcomes: dict[str, Value | FetchError] = {}
        for item in items:
            # Key on the name as configured, never on the name the response carries.
            for candidate in (item.name, item.name.removeprefix(SECRETS_REFERENCE)):
                if candidate in returned:
                    outcomes[item.name] = returned[candidate]
                    break
            else:
                if item.name in invalid:
                    outcomes[item.name] = not_found("parameter")
        return outcomes


def _value(parameter: dict, selector: str | None) -> Value:
    meta = metadata(parameter, META_FIELDS)
    if selector and not meta.get("Selector"):
        meta["Selector"] = ":" + selector  # as AWS reports a version or label selector
    return text_value(parameter.get("Value", ""), meta)


def _selector(name: str) -> str | None:
    """The version or label in "name:3" / "name:prod" (parameter names cannot contain ':', ARNs can)."""
    path = name.split(":parameter/", 1)[1] if name.startswith("arn:") else name
    return path.partition(":")[2] or None


def _names_of(parameter: dict) -> list[str]:
    """Every name a requested parameter can come back under: name, name with version selector, ARN."""
    name = parameter.get("Name", "")
    names = [name, parameter.get("ARN", "")]
    if parameter.get("Selector"):
        names.append(name + parameter["Selector"])
    return [n for n in names if n]
