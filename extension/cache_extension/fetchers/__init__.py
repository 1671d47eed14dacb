"""Fetchers: one per AWS source, all behind the small interface in `base`."""

from __future__ import annotations

from .base import ClientFactory, Fetcher, FetchError, Value


def create_fetchers(sources: set[str], clients: ClientFactory) -> dict[str, Fetcher]:
    """Fetchers for the sources in use only: each import pulls in botocore's service model."""
    fetchers: dict[str, Fetcher] = {}
    if "parameters" in sources:
        from .ssm import ParameterFetcher

        fetchers["parameters"] = ParameterFetcher(clients)
    if "secrets" in sources:
        from .secrets import SecretFetcher

        fetchers["secrets"] = SecretFetcher(clients)
    if "dynamodb" in sources:
        from .dynamodb import ItemFetcher

        fetchers["dynamodb"] = ItemFetcher(clients)
    return fetchers


__all__ = ["ClientFactory", "Fetcher", "FetchError", "Value", "create_fetchers"]
