"""What the cloud must publish, written in the same transaction as the change that causes it.

The worker drains the outbox (QoS 1, marked sent only on the broker's PUBACK), so a message is
never lost to a restart of either process; an edge may see one twice and applies it once.
The retained registry is a row without payload: the worker builds it from the database when it
sends, so it is always the newest state, and queued requests collapse into one.
"""

from __future__ import annotations

import sqlite3

from . import protocol
from .store import now_ms


def enqueue(conn: sqlite3.Connection, topic: str, payload: str | None, qos: int = 1, retain: bool = False) -> None:
    conn.execute("INSERT INTO outbox (topic, payload, qos, retain, created_at) VALUES (?, ?, ?, ?, ?)",
                 (topic, payload, qos, int(retain), now_ms()))


def enqueue_registry(conn: sqlite3.Connection) -> None:
    """Ask for the registry to be published (again). Never skipped because an older request is
    pending: that one may already be on the wire with the state from before this change. The
    worker sends only the newest request and drops the ones it supersedes."""
    enqueue(conn, protocol.REGISTRY_TOPIC, None, qos=1, retain=True)


def pending(conn: sqlite3.Connection, limit: int = 500) -> list[sqlite3.Row]:
    return conn.execute("SELECT id, topic, payload, qos, retain FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?",
                        (limit,)).fetchall()


def mark_sent(conn: sqlite3.Connection, ids: list[int]) -> None:
    if ids:
        at = now_ms()
        conn.executemany("UPDATE outbox SET sent_at = ? WHERE id = ?", [(at, i) for i in ids])


def prune(conn: sqlite3.Connection, older_than_ms: int) -> None:
    conn.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?", (older_than_ms,))
