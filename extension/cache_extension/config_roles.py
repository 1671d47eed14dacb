"""`role_arn:` (with optional `external_id:`) on a group, a name written as a mapping, or a DynamoDB item: the item
is read with the credentials of that role, assumed with STS AssumeRole (fetchers/roles.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ROLE_KEYS = ("role_arn", "external_id")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}\Z", re.ASCII)
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}\Z", re.ASCII)  # AssumeRole's ExternalId


@dataclass(frozen=True)
class Role:
    arn: str
    external_id: str | None = field(default=None, repr=False)  # not a secret, but no log line needs it


def parse_role(parser, entries: dict, kp: str, inherited: Role | None = None) -> Role | None:
    """The role of these entries (parser is config._Parser), else the one they inherit from their group."""
    if "external_id" in entries and "role_arn" not in entries:
        raise parser.error(entries["external_id"][0], f"{kp}.external_id", "goes with 'role_arn:' (given here too)")
    if "role_arn" not in entries:
        return inherited
    arn = parser.text(entries, "role_arn", kp)
    if not _ROLE_ARN.match(arn):
        raise parser.error(entries["role_arn"][1], f"{kp}.role_arn",
                           f"{arn[:80]!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
    external_id = None
    if "external_id" in entries:
        external_id = parser.text(entries, "external_id", kp)
        if not _EXTERNAL_ID.match(external_id):
            # the value is not repeated: it is a shared string between two accounts
            raise parser.error(entries["external_id"][1], f"{kp}.external_id",
                               "must be 2 to 1224 letters, digits or +=,.@:/-_ (AssumeRole's ExternalId)")
    return Role(arn, external_id)
