"""Notes: the crew's free text, tied to an event and/or a system (the notes table).

Plain functions over a connection, like ovr_fleet's logic modules: the caller holds the
transaction (`with store.tx() as c`) for writes; reads take `store.conn()`.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from .store import row_dict


def add(conn: sqlite3.Connection, event_pk: int | None, system_id: str | None, text: str, author: str, ts: int) -> int:
    return conn.execute("INSERT INTO notes (event_pk, system_id, text, author, created_at) VALUES (?,?,?,?,?)",
                        (event_pk, system_id, text, author, ts)).lastrowid


def get(conn: sqlite3.Connection, note_id: int) -> sqlite3.Row | None:
    """The note with its event's id (event_id, None when it has no event)."""
    return conn.execute("SELECT n.*, e.id AS event_id FROM notes n LEFT JOIN events e ON e.pk = n.event_pk WHERE n.id = ?",
                        (note_id,)).fetchone()


def delete(conn: sqlite3.Connection, note_id: int) -> None:
    conn.execute("DELETE FROM notes WHERE id = ?", (note_id,))


def find(conn: sqlite3.Connection, event_pk: int | None = None, system_id: str | None = None, start: int | None = None,
         end: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first, filtered by event, system and a created_at range (ms, inclusive)."""
    sql = ("SELECT n.id, n.text, n.system_id, n.author, n.created_at, e.id AS event_id FROM notes n"
           " LEFT JOIN events e ON e.pk = n.event_pk WHERE 1=1")
    args: list[Any] = []
    if event_pk is not None:
        sql += " AND n.event_pk = ?"
        args.append(event_pk)
    if system_id:
        sql += " AND n.system_id = ?"
        args.append(system_id)
    if start is not None:
        sql += " AND n.created_at >= ?"
        args.append(start)
    if end is not None:
        sql += " AND n.created_at <= ?"
        args.append(end)
    sql += " ORDER BY n.created_at DESC, n.id DESC LIMIT ?"
    args.append(limit)
    return [row_dict(r) for r in conn.execute(sql, args).fetchall()]
