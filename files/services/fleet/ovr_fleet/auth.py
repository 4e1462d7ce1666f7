"""Operators: HTTP Basic credentials checked against the same bcrypt hashes Caddy uses
(roles/cloud renders them into OVR_FLEET_OPERATORS_FILE), with a role: viewer reads, admin
also changes things. See docs/adr/0007-fleet-api-auth.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bcrypt

ROLES = ("viewer", "admin")
CACHE_SECONDS = 300
# A hash to compare against for unknown names, so they cost as much time as known ones.
_DUMMY = bcrypt.hashpw(b"ovr-fleet-unknown-operator", bcrypt.gensalt(4))


@dataclass(frozen=True)
class Operator:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class OperatorsError(ValueError):
    pass


class Operators:
    """The operators file, re-read when it changes; verified credentials cached for a while
    (bcrypt costs tens of ms, a map polls every few seconds), keyed by a salted digest."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._ops: dict[str, tuple[bytes, str]] = {}
        self._cache: dict[bytes, tuple[float, Operator]] = {}
        self._salt = os.urandom(16)

    def _load(self) -> dict[str, tuple[bytes, str]]:
        try:
            st = self.path.stat()
        except OSError as exc:
            raise OperatorsError(f"{self.path}: {exc.strerror}") from None
        stamp = (st.st_mtime, st.st_size)
        if stamp != self._stamp:
            try:
                data = json.loads(self.path.read_text())
                ops = {}
                for entry in data["operators"]:
                    if entry.get("role", "admin") not in ROLES:
                        raise OperatorsError(f"{self.path}: operator {entry.get('name')!r} has role {entry.get('role')!r}")
                    ops[str(entry["name"])] = (str(entry["hash"]).encode(), entry.get("role", "admin"))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise OperatorsError(f"{self.path}: not an operators file ({exc})") from None
            self._ops, self._stamp, self._cache = ops, stamp, {}
        return self._ops

    def verify(self, authorization: str | None) -> Operator | None:
        if not authorization or not authorization.startswith("Basic "):
            return None
        try:
            name, sep, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not sep or len(password) > 200:
            return None
        key = hmac.new(self._salt, f"{name}\0{password}".encode(), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            ops = self._load()
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        entry = ops.get(name)
        ok = bcrypt.checkpw(password.encode(), entry[0] if entry else _DUMMY)
        if not (ok and entry):
            return None
        op = Operator(name, entry[1])
        with self._lock:
            if len(self._cache) > 1000:
                self._cache.clear()
            self._cache[key] = (now + CACHE_SECONDS, op)
        return op
