"""SQLite: one file shared by the API processes and the worker (WAL), numbered migrations
(connect, tx and the migration runner are ovr_common.sqlite).

Every timestamp is integer milliseconds since the epoch (UTC), as on the MQTT protocol.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ovr_common import sqlite
from ovr_common.sqlite import connect, now_ms, tx

__all__ = ["MIGRATIONS", "connect", "migrate", "now_ms", "open_db", "tx"]

# Append only: a database at version N runs MIGRATIONS[N:] (each in one transaction).
MIGRATIONS: list[str] = [
    # 1: fleet state, event registry, reports, tiles, outbox
    """
    CREATE TABLE nodes (
        node_id TEXT PRIMARY KEY,
        deployment_id TEXT,
        state TEXT NOT NULL DEFAULT 'unknown',      -- online|offline|unknown, from ovr/<node>/status
        version TEXT,
        status_at INTEGER,                          -- when the status arrived
        realtime_at INTEGER,                        -- when the last realtime summary arrived
        realtime_ts INTEGER,                        -- its own ts
        systems TEXT NOT NULL DEFAULT '[]',         -- JSON list, normalised
        active_events TEXT NOT NULL DEFAULT '[]',   -- JSON list of canonical ids
        gps_lat REAL, gps_lon REAL, gps_at INTEGER,
        soc REAL, power_in REAL, power_out REAL,
        alarms INTEGER NOT NULL DEFAULT 0,
        ui_url TEXT
    );
    CREATE TABLE vm_nodes (
        node_id TEXT PRIMARY KEY,
        deployment_id TEXT,
        systems TEXT NOT NULL DEFAULT '[]',
        synced_at INTEGER NOT NULL
    );
    CREATE TABLE manual_locations (
        node_id TEXT PRIMARY KEY,
        latitude REAL NOT NULL, longitude REAL NOT NULL,
        label TEXT, updated_at INTEGER NOT NULL, updated_by TEXT
    );
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        name_norm TEXT NOT NULL,
        deployment_id TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('active', 'ended', 'merged')),
        temp INTEGER NOT NULL DEFAULT 0,
        merged_into TEXT,
        source TEXT NOT NULL,                       -- operator name or node id that created it
        created_at INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER
    );
    CREATE UNIQUE INDEX events_name ON events (deployment_id, name_norm) WHERE state != 'merged';
    CREATE TABLE event_nodes (
        event_id TEXT NOT NULL REFERENCES events (id),
        node_id TEXT NOT NULL,
        system_id TEXT NOT NULL DEFAULT '',
        location TEXT,
        joined_at INTEGER NOT NULL,
        left_at INTEGER,
        PRIMARY KEY (event_id, node_id, system_id)
    );
    CREATE TABLE event_aliases (
        node_id TEXT NOT NULL,
        local_id TEXT NOT NULL,
        event_id TEXT NOT NULL REFERENCES events (id),
        reason TEXT NOT NULL,                       -- exact|auto|operator|merge
        similarity REAL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (node_id, local_id)
    );
    CREATE TABLE alignments (
        id INTEGER PRIMARY KEY,
        node_id TEXT NOT NULL,
        local_id TEXT NOT NULL,
        local_name TEXT NOT NULL,
        candidate_id TEXT NOT NULL REFERENCES events (id),
        similarity REAL NOT NULL,
        created_at INTEGER NOT NULL,
        resolved_at INTEGER,
        resolution TEXT,
        resolved_by TEXT
    );
    CREATE UNIQUE INDEX alignments_open ON alignments (node_id, local_id) WHERE resolved_at IS NULL;
    CREATE TABLE reports (
        report_id TEXT PRIMARY KEY,
        node_id TEXT NOT NULL,
        event_id TEXT NOT NULL,                     -- canonical (re-filed on merge)
        event_id_original TEXT NOT NULL,            -- as the edge sent it
        system_id TEXT,
        hash TEXT NOT NULL,
        generated_at INTEGER,
        received_at INTEGER NOT NULL,
        body TEXT NOT NULL,                         -- the report JSON
        html TEXT
    );
    CREATE INDEX reports_event ON reports (event_id);
    CREATE TABLE tile_usage (
        month TEXT NOT NULL, provider TEXT NOT NULL, node_id TEXT NOT NULL, deployment_id TEXT NOT NULL,
        total INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (month, provider, node_id, deployment_id)
    );
    CREATE TABLE tile_preferences (
        deployment_id TEXT PRIMARY KEY, provider TEXT NOT NULL, updated_at INTEGER NOT NULL, updated_by TEXT
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        payload TEXT,                               -- NULL: the worker builds it when it sends (registry)
        qos INTEGER NOT NULL DEFAULT 1,
        retain INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        sent_at INTEGER
    );
    CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
    CREATE TABLE worker_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: tiles counted per operator (who sent POST /api/tiles/usage), for the per-operator cap
    """
    CREATE TABLE tile_sources (
        month TEXT NOT NULL, provider TEXT NOT NULL, source TEXT NOT NULL,
        total INTEGER NOT NULL, updated_at INTEGER NOT NULL,
        PRIMARY KEY (month, provider, source)
    );
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to the newest version; returns it. Safe to run from several processes."""
    return sqlite.migrate(conn, MIGRATIONS, "this ovr-fleet")


def open_db(path: Path | str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = connect(path)
    migrate(conn)
    return conn
