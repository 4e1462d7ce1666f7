"""Operators: HTTP Basic credentials checked against the same bcrypt hashes Caddy uses
(roles/cloud renders them into OVR_FLEET_OPERATORS_FILE), with a role: viewer reads, admin
also changes things. See docs/adr/0007-fleet-api-auth.md.

The file is re-read when it changes and verified credentials are cached for a while (bcrypt
costs tens of ms, a map polls every few seconds): ovr_common.credentials, HMAC-keyed.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import bcrypt
from ovr_common.credentials import CredentialsError, CredentialsFile, Entry

ROLES = ("viewer", "admin")
CACHE_SECONDS = 300
# A hash to compare against for unknown names, so they cost as much time as known ones.
_DUMMY = bcrypt.hashpw(b"ovr-fleet-unknown-operator", bcrypt.gensalt(4)).decode()


@dataclass(frozen=True)
class Operator:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


# The credentials file's error is the operators' error (the message names the file).
OperatorsError = CredentialsError


def parse_operators(text: str) -> dict[str, Entry]:
    """{"operators": [{name, hash, role}]} -> entries; OperatorsError says what is wrong."""
    try:
        data = json.loads(text)
        ops = {}
        for entry in data["operators"]:
            if entry.get("role", "admin") not in ROLES:
                raise OperatorsError(f"operator {entry.get('name')!r} has role {entry.get('role')!r}")
            ops[str(entry["name"])] = Entry(str(entry["name"]), entry.get("role", "admin"), str(entry["hash"]))
    except OperatorsError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise OperatorsError(f"not an operators file ({exc})") from None
    return ops


def _check(stored: str, password: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), stored.encode())
    except ValueError:  # not a bcrypt hash
        return False


class Operators:
    """The operators file (OperatorsError when it is missing or broken)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = CredentialsFile(path, parse_operators, _check, lambda _entries: _DUMMY,
                                    strict=True, cache_seconds=CACHE_SECONDS)

    def verify(self, authorization: str | None) -> Operator | None:
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            name, sep, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not sep or len(password) > 200:
            return None
        entry = self.file.verify(name, password)
        return None if entry is None else Operator(entry.name, entry.role)
