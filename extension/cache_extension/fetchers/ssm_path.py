"""A `parameters:` group by path: GetParametersByPath, decrypted, 10 a page, every page up to the group's max."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .base import Value

if TYPE_CHECKING:
    from ..config import Item

PAGE_SIZE = 10  # GetParametersByPath's MaxResults at most
CONTENT_TYPE = "application/x-parameter-path"  # never served: a group's own entry has no route


@dataclass(frozen=True, repr=False)
class PathValues(Value):
    """A group's listing (a path's, or a secrets filter's): each member's Value, or the FetchError AWS gave for it,
    by its name. The group's own cache entry holds it; the store puts each member in an entry of its own
    (store_paths.py)."""

    members: dict = field(default_factory=dict, compare=False)
    truncated: bool = False  # the group's max was reached with more pages to read


def list_path(client: Any, item: Item) -> PathValues:
    from .ssm import _value  # the same Value (and metadata) as GetParameters gives

    members: dict[str, Value] = {}
    request = {"Path": item.name, "Recursive": item.listing.recursive, "WithDecryption": True}
    limit = item.listing.max
    while True:
        # One more than the max still needs, so that reaching it says whether more remain, with no extra page.
        request["MaxResults"] = min(PAGE_SIZE, limit - len(members) + 1)
        response = client.get_parameters_by_path(**request)
        for parameter in response.get("Parameters", []):
            if len(members) == limit:
                return PathValues(b"", CONTENT_TYPE, None, members, truncated=True)
            members[parameter["Name"]] = _value(parameter, None)
        token = response.get("NextToken")
        if not token:
            return PathValues(b"", CONTENT_TYPE, None, members)
        request["NextToken"] = token
