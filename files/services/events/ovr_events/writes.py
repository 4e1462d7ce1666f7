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
