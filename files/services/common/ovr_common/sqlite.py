"""SQLite for a database shared by several processes (API workers and a background worker).

connect(): autocommit (transactions only through tx()), WAL, synchronous=NORMAL, foreign keys,
a 10 s busy timeout, rows as sqlite3.Row.

Migrations: the schema version is SQLite's `PRAGMA user_version`, as both services have always
kept it. MIGRATIONS[i] is a script that takes the database from version i to i+1; the list is
append-only. migrate() runs the missing scripts and sets the version in ONE write transaction
(BEGIN IMMEDIATE, so two processes starting at once do not both migrate), so a failed
migration leaves the old schema and version intact. A database newer than the code is refused
rather than used with a schema the code does not know.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


class SchemaError(RuntimeError):
    """The database's schema version is newer than this code knows."""


def now_ms() -> int:
    """Integer milliseconds since the epoch, the unit of every timestamp in the databases."""
    return int(time.time() * 1000)


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions through `tx`), WAL, rows as sqlite3.Row."""
    conn = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


@contextmanager
def tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE: writers queue instead of failing later).
    Inside a transaction already, it joins the outer one."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def where(equal: dict[str, object], *always: str) -> tuple[str, list[object]]:
    """A WHERE clause for the optional filters of a list query: `column = ?` for each column of
    `equal` given a value (None or "" leave it out), and the fixed conditions `always`.
    Column names come from the code, never from a request; only the values are parameters.

    >>> where({"e.id": "x", "p.system_id": None}, "1=1")
    (' WHERE 1=1 AND e.id = ?', ['x'])
    """
    clauses = list(always) + [f"{column} = ?" for column, value in equal.items() if value not in (None, "")]
    args = [value for value in equal.values() if value not in (None, "")]
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, migrations: Sequence[str], name: str = "this service") -> int:
    """Bring the schema to len(migrations); returns it. Safe to run from several processes."""
    with tx(conn):
        version = schema_version(conn)
        if version > len(migrations):
            raise SchemaError(f"database schema {version} is newer than {name} ({len(migrations)}): upgrade the code")
        for number, script in enumerate(migrations[version:], start=version + 1):
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
    return len(migrations)


def statements(script: str) -> list[str]:
    """A script split into complete SQL statements; SQLite's own tokenizer decides where one
    ends, so a ';' in a string or a comment does not split, and two on one line do."""
    out, buf = [], ""
    pieces = script.split(";")
    for i, piece in enumerate(pieces):
        buf += piece if i == len(pieces) - 1 else piece + ";"
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
