"""The other names AWS accepts for a parameter or a secret: ARNs, full and partial.

AWS's GetParameter takes a parameter's name or its ARN; GetSecretValue a secret's name, its full ARN
(name plus a random 6-character suffix) or its partial ARN (without the suffix). A request may use any
of them for an item config.yaml lists under another, so a request's name is reduced to the bare names it
could stand for, and each is looked up as config.yaml would be: nothing here widens what can be read.

An ARN also names a region and an account. The region is checked here; the account (and which of two
readings of an ambiguous secret ARN is meant) can only be checked against the ARN AWS returned with the
value, so the answer must pass `arn_matches` before it is served.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE
_ARN = re.compile(r"arn:(aws[a-z-]*):(ssm|secretsmanager):([a-z0-9-]+):(\d{12}):(.+)\Z")
# The suffix Secrets Manager appends to a secret's name in its ARN.
_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}\Z")


@dataclass(frozen=True)
class Alias:
    """A request's name read as an ARN: the bare names it may stand for, and what to check afterwards."""

    names: tuple[str, ...]
    region: str
    arn: str  # as requested: the value's own ARN must match it (see arn_matches)


def parse(source: str, requested: str) -> Alias | None:
    """The ARN in `requested` for this source, or None when it is not one (then it is a plain name)."""
    match = _ARN.match(requested)
    service = {"parameters": "ssm", "secrets": "secretsmanager"}.get(source)
    if match is None or match.group(2) != service:
        return None
    resource = match.group(5)
    if source == "parameters":
        if not resource.startswith("parameter/"):
            return None
        rest = resource[len("parameter/"):]
        # A hierarchical name ("/a/b") appears in its ARN without its leading slash; a flat one as is.
        names = ("/" + rest,) if "/" in rest else (rest, "/" + rest)
    else:
        if not resource.startswith("secret:"):
            return None
        rest = resource[len("secret:"):]
        # A full ARN ends in -XXXXXX; a partial one does not, but a name may itself end like that.
        names = (rest[:-7], rest) if _SUFFIX.search(rest) else (rest,)
    return Alias(tuple(name for name in names if name), match.group(3), requested)


def arn_matches(source: str, requested: str, meta_arn: str | None) -> bool:
    """Whether a value whose AWS ARN is `meta_arn` is the one `requested` (an ARN) names."""
    if not meta_arn:
        return False
    if requested == meta_arn:
        return True
    # A partial secret ARN: the full one without its suffix. (SSM ARNs have one form only.)
    return source == "secrets" and _SUFFIX.search(meta_arn) is not None and requested == meta_arn[:-7]
