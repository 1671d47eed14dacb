"""SSM Parameter Store, including secrets read through /aws/reference/secretsmanager/."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from .base import Fetcher, FetchError, Value, not_found, text_value

if TYPE_CHECKING:
    from ..config import Item

SECRETS_REFERENCE = "/aws/reference/secretsmanager/"


class ParameterFetcher(Fetcher):
    source = "parameters"
    operation = "ssm:GetParameters"
    batch_size = 10  # GetParameters takes at most 10 names

    def fetch_batch(self, items: Sequence[Item]) -> dict[str, Value | FetchError]:
        # References answer with the secret's own name, which could collide with a parameter of the same
        # name in one response: call for them separately so every returned name maps to one item.
        plain = [item for item in items if not item.name.startswith(SECRETS_REFERENCE)]
        references = [item for item in items if item.name.startswith(SECRETS_REFERENCE)]
        outcomes: dict[str, Value | FetchError] = {}
        for group in (plain, references):
            if group:
                outcomes.update(self._get_parameters(group))
        return outcomes

    def _get_parameters(self, items: Sequence[Item]) -> dict[str, Value | FetchError]:
        client = self.clients.get("ssm", items[0].region)
        # WithDecryption: SecureString values and every secrets-manager reference need it.
        response = client.get_parameters(Names=[item.name for item in items], WithDecryption=True)
        returned: dict[str, str] = {}
        for parameter in response.get("Parameters", []):
            for alias in _names_of(parameter):
                returned[alias] = parameter.get("Value", "")
        invalid = set(response.get("InvalidParameters", []))
        outcomes: dict[str, Value | FetchError] = {}
        for item in items:
            # Key on the name as configured, never on the name the response carries.
            for candidate in (item.name, item.name.removeprefix(SECRETS_REFERENCE)):
                if candidate in returned:
                    outcomes[item.name] = text_value(returned[candidate])
                    break
            else:
                if item.name in invalid:
                    outcomes[item.name] = not_found("parameter")
        return outcomes


def _names_of(parameter: dict) -> list[str]:
    """Every name a requested parameter can come back under: name, name with version selector, ARN."""
    name = parameter.get("Name", "")
    names = [name, parameter.get("ARN", "")]
    if parameter.get("Selector"):
        names.append(name + parameter["Selector"])
    return [n for n in names if n]
