"""A credentials file (name -> password hash, role) re-read when it changes, and verification
with a cache.

The file is stat()ed on every use and parsed again when its (mtime_ns, size) changed; the cache
of successful verifications is emptied then, so a removed user or a changed password or role
takes effect at once. A password hash costs tens of milliseconds by design, and a dashboard
polls every few seconds, so a success is cached for `cache_seconds`. The cache key is an HMAC
of name and password under a random key made per process: the keys in memory are worthless
for guessing a password offline (a plain SHA-256 of a password is not). An unknown name is
checked against a dummy hash of the same kind, so its answer takes as long and does not tell
which names exist.

The format and the hash scheme are the service's: `parse` turns the file's text into entries
(raising CredentialsError), `check` verifies a password against a stored hash, `dummy` makes a
hash for unknown names from the entries.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class CredentialsError(ValueError):
    """The credentials file is missing or unusable; the message names the file."""


@dataclass(frozen=True)
class Entry:
    name: str
    role: str
    hash: str


Parse = Callable[[str], dict[str, Entry]]
Check = Callable[[str, str], bool]


class CredentialsFile:
    """strict: a missing or broken file raises CredentialsError (naming it); otherwise it is
    an empty list of users (nobody can log in)."""

    def __init__(self, path: Path | str, parse: Parse, check: Check, dummy: Callable[[dict[str, Entry]], str], *,
                 strict: bool = False, cache_seconds: float = 300.0, cache_max: int = 1000) -> None:
        self.path = Path(path)
        self._parse, self._check, self._make_dummy = parse, check, dummy
        self.strict, self.cache_seconds, self.cache_max = strict, cache_seconds, cache_max
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._entries: dict[str, Entry] = {}
        self._dummy: str | None = None
        self._cache: dict[bytes, tuple[float, Entry]] = {}
        self._key = os.urandom(32)
        self.loads = 0  # how often the file was parsed (for tests and logs)

    def cache_key(self, name: str, password: str) -> bytes:
        """HMAC-SHA256 of name and password under this process's random key."""
        msg = name.encode("utf-8", "surrogatepass") + b"\0" + password.encode("utf-8", "surrogatepass")
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def _load(self) -> dict[str, Entry]:
        """The entries, parsed again when the file changed. Call with the lock held."""
        try:
            st = self.path.stat()
        except OSError as exc:
            self._entries, self._stamp, self._cache, self._dummy = {}, None, {}, None
            if self.strict:
                raise CredentialsError(f"{self.path}: {exc.strerror}") from None
            return self._entries
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                entries = self._parse(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                if self.strict:
                    raise CredentialsError(f"{self.path}: {exc}") from None
                entries = {}
            self._entries, self._stamp, self._cache, self._dummy = entries, stamp, {}, None
            self.loads += 1
        return self._entries

    def entries(self) -> dict[str, Entry]:
        with self._lock:
            return self._load()

    def lookup(self, name: str) -> Entry | None:
        """The entry of `name` as the file says now (e.g. for a session's current role)."""
        return self.entries().get(name)

    def verify(self, name: str, password: str) -> Entry | None:
        """The entry when the password matches, else None (unknown names take as long)."""
        key = self.cache_key(name, password)
        with self._lock:
            entries = self._load()
            stamp = self._stamp
            hit = self._cache.get(key)
            if hit and time.monotonic() < hit[0]:
                return hit[1]
            entry = entries.get(name)
            if entry is None and self._dummy is None:
                self._dummy = self._make_dummy(entries)
            stored = entry.hash if entry is not None else self._dummy
        if not self._check(str(stored), password) or entry is None:
            return None
        with self._lock:
            if self._stamp != stamp:  # the file changed meanwhile: do not cache the old entry
                return entry
            if len(self._cache) >= self.cache_max:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self.cache_seconds, entry)
        return entry
