"""GX writes (the control_writes table): queued by the API, sent and confirmed by the worker.

States: queued -> pending (published on W/) -> confirmed | timeout | failed. Plain functions over
a connection: the caller holds the transaction for writes.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .store import row_dict


def doc(row: sqlite3.Row) -> dict[str, Any]:
    d = row_dict(row)
    return {k: d[k] for k in ("id", "system_id", "setting", "value", "before", "state", "actor", "requested_at",
                              "sent_at", "done_at", "observed", "error")}


def queue(conn: sqlite3.Connection, write_id: str, system_id: str, setting: str, value: float, before: Any, actor: str,
          requested_at: int) -> None:
    conn.execute("INSERT INTO control_writes (id, system_id, setting, value, before, state, actor, requested_at)"
                 " VALUES (?,?,?,?,?,'queued',?,?)", (write_id, system_id, setting, value, before, actor, requested_at))


def get(conn: sqlite3.Connection, write_id: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM control_writes WHERE id = ?", (write_id,)).fetchone()


def recent(conn: sqlite3.Connection, system_id: str | None, limit: int) -> list[sqlite3.Row]:
    """Newest first, of one system or of all."""
    if system_id is not None:
        return conn.execute("SELECT * FROM control_writes WHERE system_id = ? ORDER BY requested_at DESC LIMIT ?",
                            (system_id, limit)).fetchall()
    return conn.execute("SELECT * FROM control_writes ORDER BY requested_at DESC LIMIT ?", (limit,)).fetchall()


# ---- the worker's side: send, confirm, expire ------------------------------------------------
def queued(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """The writes waiting to be sent, oldest first."""
    return conn.execute("SELECT * FROM control_writes WHERE state = 'queued' ORDER BY requested_at").fetchall()


def mark_failed(conn: sqlite3.Connection, write_id: str, error: str, done_at: int) -> None:
    """A write that could not be sent at all."""
    conn.execute("UPDATE control_writes SET state = 'failed', done_at = ?, error = ? WHERE id = ?",
                 (done_at, error, write_id))


def mark_pending(conn: sqlite3.Connection, write_id: str, before: Any, sent_at: int) -> None:
    """Sent (or about to be): waiting for the GX's echo. `before` is kept when it is a number."""
    conn.execute("UPDATE control_writes SET state = 'pending', sent_at = ?, before = ? WHERE id = ?",
                 (sent_at, before if isinstance(before, (int, float)) else None, write_id))


def finish(conn: sqlite3.Connection, write_id: str, state: str, observed: Any, error: str | None, done_at: int) -> None:
    """A pending write's end (confirmed, timeout, failed); `observed` is kept when it is a number."""
    conn.execute("UPDATE control_writes SET state = ?, done_at = ?, observed = ?, error = ? WHERE id = ? AND state = 'pending'",
                 (state, done_at, observed if isinstance(observed, (int, float)) else None, error, write_id))


def unfinished_before(conn: sqlite3.Connection, cutoff_ms: int) -> list[sqlite3.Row]:
    """Ids of writes still queued or pending that were requested before cutoff_ms."""
    return conn.execute("SELECT id FROM control_writes WHERE state IN ('pending', 'queued') AND requested_at < ?",
                        (cutoff_ms,)).fetchall()


def mark_timeout(conn: sqlite3.Connection, write_id: str, error: str, done_at: int) -> None:
    conn.execute("UPDATE control_writes SET state = 'timeout', done_at = ?, error = ? WHERE id = ?",
                 (done_at, error, write_id))
