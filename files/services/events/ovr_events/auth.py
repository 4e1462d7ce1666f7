"""API users: a root:ovr 0640 JSON file of werkzeug password hashes, rendered by roles/edge
through `python3 -m ovr_events users-sync FILE` (JSON list on stdin). Existing hashes are kept
when the password still matches, so a second converge changes nothing.

File: {"users": [{"name": "tech", "role": "operator", "hash": "scrypt:..."}]}
Roles: operator (may change things) > viewer (may read when reads are not public).
"""

from __future__ import annotations

import grp
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovr_common.atomic import write_atomic
from ovr_common.credentials import CredentialsError, CredentialsFile, Entry
from werkzeug.security import check_password_hash, generate_password_hash

ROLES = ("viewer", "operator")  # ascending rights
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
CACHE_SECONDS = 300.0


class UsersError(ValueError):
    """The users list is unusable; the message says what to fix in edge_events_users."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def may(self, need: str) -> bool:
        return need in ROLES and self.role in ROLES and ROLES.index(self.role) >= ROLES.index(need)


def parse_users(text: str) -> dict[str, Entry]:
    """{"users": [{name, role, hash}]} -> entries; entries without a name or a known role are skipped."""
    try:
        doc = json.loads(text)
        return {u["name"]: Entry(u["name"], u["role"], str(u.get("hash", ""))) for u in doc.get("users", [])
                if isinstance(u, dict) and isinstance(u.get("name"), str) and u.get("role") in ROLES}
    except (ValueError, AttributeError, TypeError) as exc:
        raise CredentialsError(f"not a users file ({exc})") from None


def _dummy_hash(entries: dict[str, Entry]) -> str:
    """A hash of a random password, same method and parameters as the first user's."""
    method = next((e.hash.split("$", 1)[0] for e in entries.values()), "")
    try:
        return generate_password_hash(secrets.token_hex(16), method=method or "scrypt")
    except (ValueError, TypeError):
        return generate_password_hash(secrets.token_hex(16))


def _check(stored: str, password: str) -> bool:
    return check_password_hash(stored, password)


class Users:
    """The users file, read again when it changes (a missing or broken file: nobody can log in).
    Successful verifications are cached for a few minutes under an HMAC key made per process
    (ovr_common.credentials), because a password hash costs ~50-100 ms by design. An unknown
    name is checked against a dummy hash made with the same method and cost as the users' own,
    so its answer takes as long and does not tell which names exist."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.file = CredentialsFile(self.path, parse_users, _check, _dummy_hash,
                                    cache_seconds=CACHE_SECONDS)

    def verify(self, name: str, password: str) -> User | None:
        entry = self.file.verify(name, password)
        return None if entry is None else User(entry.name, entry.role)

    def role_of(self, name: str) -> User | None:
        """The user behind a session (still in the file, with its current role)."""
        entry = self.file.lookup(name)
        return None if entry is None else User(name, entry.role)


def check_users(wanted: Any) -> list[dict[str, str]]:
    if not isinstance(wanted, list):
        raise UsersError("expected a JSON list of {name, password, role}")
    seen: set[str] = set()
    out = []
    for i, u in enumerate(wanted, 1):
        if not isinstance(u, dict) or not isinstance(u.get("name"), str) or not NAME_RE.match(u["name"]):
            raise UsersError(f"user {i}: name must be letters, digits, '.', '_', '@' or '-' (at most 64)")
        if u["name"] in seen:
            raise UsersError(f"user {u['name']}: listed twice")
        seen.add(u["name"])
        if not isinstance(u.get("password"), str) or len(u["password"]) < 8:
            raise UsersError(f"user {u['name']}: password of at least 8 characters required (keep it in the vault)")
        role = u.get("role", "operator")
        if role not in ROLES:
            raise UsersError(f"user {u['name']}: role must be operator or viewer")
        out.append({"name": u["name"], "password": u["password"], "role": role})
    return out


def sync_users(path: Path, wanted: Any, group: str | None = None) -> bool:
    """Make the file hold exactly `wanted` (hashed); True when it changed. Mode 0640, owner root,
    group `group` (when run as root)."""
    users = check_users(wanted)
    path = Path(path)
    try:
        old = {u["name"]: u for u in json.loads(path.read_text(encoding="utf-8")).get("users", [])}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        old = {}
    out = []
    for u in users:
        prev = old.get(u["name"])
        if prev and prev.get("role") == u["role"] and check_password_hash(str(prev.get("hash", "")), u["password"]):
            out.append(prev)
        else:
            out.append({"name": u["name"], "role": u["role"], "hash": generate_password_hash(u["password"])})
    text = json.dumps({"users": out}, indent=1, sort_keys=True) + "\n"
    gid = grp.getgrnam(group).gr_gid if group and os.geteuid() == 0 else None
    try:
        st = path.stat()
        same = path.read_text(encoding="utf-8") == text and (st.st_mode & 0o777) == 0o640 and \
            (gid is None or st.st_gid == gid)
    except OSError:
        same = False
    if same:
        return False
    write_atomic(path, text.encode("utf-8"), 0o640, uid=None if gid is None else 0, gid=gid)
    return True
