"""The reports table: queued for generation, listed by the API, delivered to the cloud until acked.

(reports.py builds a report's content; this module is its row.) Plain functions over a
connection: the caller holds the transaction for writes.
"""

from __future__ import annotations

import sqlite3

_SELECT = ("SELECT r.id, r.state, r.requested_at, r.generated_at, r.sha256, r.error, r.acked_at, r.attempts,"
           " e.id AS event_id, e.name AS event_name FROM reports r JOIN events e ON e.pk = r.event_pk")


def get(conn: sqlite3.Connection, report_id: str) -> sqlite3.Row | None:
    """The report as the API shows it (with its event's id and name)."""
    return conn.execute(_SELECT + " WHERE r.id = ?", (report_id,)).fetchone()


def recent(conn: sqlite3.Connection, limit: int) -> list[sqlite3.Row]:
    return conn.execute(_SELECT + " ORDER BY r.requested_at DESC LIMIT ?", (limit,)).fetchall()


def for_event(conn: sqlite3.Connection, event_pk: int) -> list[sqlite3.Row]:
    return conn.execute("SELECT id, state, requested_at, generated_at, acked_at FROM reports WHERE event_pk = ?"
                        " ORDER BY requested_at", (event_pk,)).fetchall()
