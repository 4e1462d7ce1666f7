"""The outbox toward the cloud: messages the worker publishes on the local broker, in order,
deleted once the broker has them (rows are written by Store.enqueue, in the change's transaction)."""

from __future__ import annotations

import sqlite3


def pending(conn: sqlite3.Connection, limit: int = 100) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()


def delete(conn: sqlite3.Connection, message_id: int) -> None:
    conn.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
