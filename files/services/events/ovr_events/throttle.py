"""Failed password checks, counted per client address and per user name, with exponential
back-off. The counts live in the SQLite store (table login_failures), so every gunicorn worker
process sees the same state: an in-memory counter would give an attacker one budget per worker.

A key is `addr:<client address>` or `user:<name>`. The first FREE[kind] failures cost nothing;
each further one blocks the key for 1, 2, 4 … seconds, at most MAX_DELAY_SECONDS. While a key is
blocked every attempt through it is answered 429 without checking the password (a right one
too: otherwise guessing would go on at full speed). A success clears the user name's count, not
the address's (one valid account must not buy unlimited guesses at other names). A key quiet for
FORGET_SECONDS starts again from zero.
"""

from __future__ import annotations

import math

from .store import Store

FREE = {"addr": 5, "user": 10}  # a name is shared by a crew: typos from several tablets
FIRST_DELAY_SECONDS = 1
MAX_DELAY_SECONDS = 900
FORGET_SECONDS = 3600


def delay_after(failures: int, free: int) -> int:
    """Seconds a key is blocked after its `failures`-th failure in a row."""
    if failures <= free:
        return 0
    return min(FIRST_DELAY_SECONDS * 2 ** min(failures - free - 1, 30), MAX_DELAY_SECONDS)


def retry_after(store: Store, keys: list[str], now_ms: int) -> tuple[int, str | None]:
    """(seconds to wait, the blocked key) for the longest-blocked of `keys`; (0, None) if none is."""
    marks = ",".join("?" * len(keys))
    row = store.one(f"SELECT key, blocked_until FROM login_failures WHERE key IN ({marks}) AND blocked_until > ? "
                    "ORDER BY blocked_until DESC LIMIT 1", *keys, now_ms)
    if row is None:
        return 0, None
    return max(1, math.ceil((row["blocked_until"] - now_ms) / 1000)), row["key"]


def record_failure(store: Store, keys: list[str], now_ms: int) -> int:
    """Count one failure on every key; returns the longest block it started (seconds, 0: none)."""
    longest = 0
    with store.tx() as c:
        c.execute("DELETE FROM login_failures WHERE last_at < ? AND blocked_until < ?",
                  (now_ms - FORGET_SECONDS * 1000, now_ms))
        for key in keys:
            row = c.execute("SELECT failures, last_at FROM login_failures WHERE key = ?", (key,)).fetchone()
            failures = 1 if row is None or now_ms - row["last_at"] > FORGET_SECONDS * 1000 else row["failures"] + 1
            delay = delay_after(failures, FREE[key.split(":", 1)[0]])
            longest = max(longest, delay)
            c.execute("INSERT INTO login_failures (key, failures, last_at, blocked_until) VALUES (?,?,?,?) "
                      "ON CONFLICT (key) DO UPDATE SET failures = excluded.failures, last_at = excluded.last_at, "
                      "blocked_until = excluded.blocked_until", (key, failures, now_ms, now_ms + delay * 1000))
    return longest


def record_success(store: Store, key: str) -> None:
    if store.one("SELECT 1 FROM login_failures WHERE key = ?", key) is not None:  # a read per request, a write rarely
        with store.tx() as c:
            c.execute("DELETE FROM login_failures WHERE key = ?", (key,))
