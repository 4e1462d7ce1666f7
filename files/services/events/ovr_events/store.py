"""SQLite store shared by the HTTP app and the worker (WAL, one connection per thread).

Schema changes are migrations: MIGRATIONS[i] takes the database from user_version i to i+1
(ovr_common.sqlite runs them in one transaction), so an edge upgraded across several releases
replays them in order and a failed migration leaves the old schema intact.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from ovr_common import sqlite
from ovr_common.sqlite import now_ms

__all__ = ["MIGRATIONS", "Store", "now_ms", "row_dict"]

MIGRATIONS: list[str] = [
    # 1: the whole first schema.
    """
    CREATE TABLE events (
        pk          INTEGER PRIMARY KEY,
        id          TEXT NOT NULL UNIQUE,          -- canonical identity: a UUID
        name        TEXT NOT NULL,                 -- display name
        temp        INTEGER NOT NULL DEFAULT 0,    -- started offline without a name
        state       TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'ended')),
        origin      TEXT NOT NULL DEFAULT 'local', -- local | cloud (known from the registry)
        created_at  INTEGER NOT NULL,              -- ms
        ended_at    INTEGER
    );
    CREATE INDEX events_name ON events (lower(name));
    CREATE TABLE participations (
        pk          INTEGER PRIMARY KEY,
        event_pk    INTEGER NOT NULL REFERENCES events (pk) ON DELETE CASCADE,
        system_id   TEXT NOT NULL,
        location    TEXT NOT NULL DEFAULT '',
        started_at  INTEGER NOT NULL,
        ended_at    INTEGER
    );
    CREATE UNIQUE INDEX participations_one_active ON participations (system_id) WHERE ended_at IS NULL;
    CREATE INDEX participations_event ON participations (event_pk);
    CREATE TABLE notes (
        id          INTEGER PRIMARY KEY,
        event_pk    INTEGER REFERENCES events (pk) ON DELETE SET NULL,
        system_id   TEXT,
        text        TEXT NOT NULL,
        author      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE photos (
        id          INTEGER PRIMARY KEY,
        event_pk    INTEGER REFERENCES events (pk) ON DELETE SET NULL,
        system_id   TEXT,
        filename    TEXT NOT NULL UNIQUE,
        original_filename TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size        INTEGER NOT NULL,
        sha256      TEXT NOT NULL,
        caption     TEXT NOT NULL DEFAULT '',
        author      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE audit (
        id          INTEGER PRIMARY KEY,
        ts          INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        action      TEXT NOT NULL,
        event_id    TEXT,
        system_id   TEXT,
        detail      TEXT NOT NULL DEFAULT '{}',
        before      TEXT,
        after       TEXT,
        result      TEXT NOT NULL,
        error       TEXT
    );
    CREATE INDEX audit_ts ON audit (ts);
    CREATE TABLE control_writes (
        id          TEXT PRIMARY KEY,
        system_id   TEXT NOT NULL,
        setting     TEXT NOT NULL,
        value       REAL NOT NULL,
        before      REAL,
        state       TEXT NOT NULL CHECK (state IN ('queued', 'pending', 'confirmed', 'timeout', 'failed')),
        actor       TEXT NOT NULL,
        requested_at INTEGER NOT NULL,
        sent_at     INTEGER,
        done_at     INTEGER,
        observed    REAL,
        error       TEXT
    );
    CREATE INDEX control_writes_state ON control_writes (state);
    CREATE TABLE reports (
        id          TEXT PRIMARY KEY,
        event_pk    INTEGER NOT NULL REFERENCES events (pk),
        state       TEXT NOT NULL CHECK (state IN ('queued', 'done', 'failed')),
        requested_at INTEGER NOT NULL,
        generated_at INTEGER,
        sha256      TEXT,
        error       TEXT,
        -- outbox toward the cloud: retried until ovr/<node>/cmd/ack names this report
        acked_at    INTEGER,
        attempts    INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT
    );
    CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY,
        topic       TEXT NOT NULL,
        payload     TEXT NOT NULL,
        qos         INTEGER NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE registry (
        id          TEXT PRIMARY KEY,
        name        TEXT NOT NULL,
        state       TEXT NOT NULL,
        ended_at    INTEGER,
        updated_at  INTEGER NOT NULL
    );
    CREATE TABLE alignments (
        local_id    TEXT PRIMARY KEY,
        canonical_id TEXT NOT NULL,
        name        TEXT NOT NULL,
        applied_at  INTEGER NOT NULL
    );
    """,
    # 2: failed password checks per client address / user name (throttle.py), shared by the workers.
    """
    CREATE TABLE login_failures (
        key         TEXT PRIMARY KEY,              -- addr:<client address> | user:<name>
        failures    INTEGER NOT NULL,
        last_at     INTEGER NOT NULL,              -- ms
        blocked_until INTEGER NOT NULL             -- ms, no attempt before this
    );
    """,
]


class Store:
    """Thin adapter over SQLite; callers hold no connection state."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    # ---- connections -----------------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = sqlite.connect(self.path)
        return c

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    def tx(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE); nested, it joins the outer one."""
        return sqlite.tx(self.conn())

    def migrate(self) -> int:
        """Bring the schema up to date; returns the version. Safe to call from both processes."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite.migrate(self.conn(), MIGRATIONS, "this ovr-events")

    # ---- helpers ---------------------------------------------------------------------
    def one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        return self.conn().execute(sql, args).fetchone()

    def all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return self.conn().execute(sql, args).fetchall()

    def audit(
        self,
        actor: str,
        action: str,
        *,
        event_id: str | None = None,
        system_id: str | None = None,
        detail: dict[str, Any] | None = None,
        before: Any = None,
        after: Any = None,
        result: str = "ok",
        error: str | None = None,
    ) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT INTO audit (ts, actor, action, event_id, system_id, detail, before, after, result, error)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    now_ms(), actor, action, event_id, system_id, json.dumps(detail or {}, sort_keys=True),
                    None if before is None else json.dumps(before, sort_keys=True),
                    None if after is None else json.dumps(after, sort_keys=True),
                    result, error,
                ),
            )

    def enqueue(self, topic: str, payload: dict[str, Any], qos: int = 1) -> None:
        """A message for the worker to publish on the local broker (in order, survives restarts)."""
        with self.tx() as c:
            c.execute(
                "INSERT INTO outbox (topic, payload, qos, created_at) VALUES (?,?,?,?)",
                (topic, json.dumps(payload, sort_keys=True, separators=(",", ":")), qos, now_ms()),
            )


def row_dict(row: sqlite3.Row | None) -> dict[str, Any] | None:
    return None if row is None else {k: row[k] for k in row.keys()}  # noqa: SIM118
