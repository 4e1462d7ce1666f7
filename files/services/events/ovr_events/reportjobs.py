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


def row(conn: sqlite3.Connection, report_id: str) -> sqlite3.Row | None:
    """The whole row."""
    return conn.execute("SELECT * FROM reports WHERE id = ?", (report_id,)).fetchone()


# ---- generation (the worker) ---------------------------------------------------------------
def due(conn: sqlite3.Connection, requested_before_ms: int) -> list[sqlite3.Row]:
    """Queued reports requested at or before the given time, oldest first."""
    return conn.execute("SELECT * FROM reports WHERE state = 'queued' AND requested_at <= ? ORDER BY requested_at",
                        (requested_before_ms,)).fetchall()


def postpone(conn: sqlite3.Connection, report_id: str, error: str) -> None:
    """Stays queued; the error says why it is late."""
    conn.execute("UPDATE reports SET error = ? WHERE id = ?", (error, report_id))


def mark_failed(conn: sqlite3.Connection, report_id: str, error: str) -> None:
    conn.execute("UPDATE reports SET state = 'failed', error = ? WHERE id = ?", (error, report_id))


def mark_done(conn: sqlite3.Connection, report_id: str, generated_at: int, sha256: str) -> None:
    conn.execute("UPDATE reports SET state = 'done', generated_at = ?, sha256 = ?, error = NULL WHERE id = ?",
                 (generated_at, sha256, report_id))


def event_of(conn: sqlite3.Connection, event_pk: int) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM events WHERE pk = ?", (event_pk,)).fetchone()


def participations_of(conn: sqlite3.Connection, event_pk: int) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM participations WHERE event_pk = ? ORDER BY started_at, pk", (event_pk,)).fetchall()


# ---- delivery to the cloud (the worker) -----------------------------------------------------
def unacked(conn: sqlite3.Connection, now: int, limit: int = 10) -> list[sqlite3.Row]:
    """Done, not acknowledged by the cloud and due for an attempt, with the event's id, name, temp."""
    return conn.execute(
        "SELECT r.*, e.id AS event_id, e.name, e.temp FROM reports r JOIN events e ON e.pk = r.event_pk"
        " WHERE r.state = 'done' AND r.acked_at IS NULL AND r.next_attempt_at <= ? ORDER BY r.generated_at LIMIT ?",
        (now, limit)).fetchall()


def record_attempt(conn: sqlite3.Connection, report_id: str, attempts: int, next_attempt_at: int,
                   last_error: str | None) -> None:
    conn.execute("UPDATE reports SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                 (attempts, next_attempt_at, last_error, report_id))


def ack(conn: sqlite3.Connection, report_id: str, acked_at: int) -> bool:
    """The cloud has it; False when it was acked already (or is unknown)."""
    return conn.execute("UPDATE reports SET acked_at = ? WHERE id = ? AND acked_at IS NULL",
                        (acked_at, report_id)).rowcount > 0
