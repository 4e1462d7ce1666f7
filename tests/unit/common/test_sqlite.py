"""Connect, transactions and migrations, including a database made by the code before ovr_common."""

from __future__ import annotations

import sqlite3

import pytest
from ovr_common import sqlite

MIGRATIONS = [
    """
    CREATE TABLE a (id INTEGER PRIMARY KEY, text TEXT NOT NULL DEFAULT 'x;y');  -- a ';' in a string
    CREATE INDEX a_text ON a (text);
    """,
    """
    -- 2: a second table
    CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a (id));
    """,
]


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_connect_pragmas(tmp_path):
    conn = sqlite.connect(tmp_path / "x.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10000
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.isolation_level is None and conn.row_factory is sqlite3.Row


def test_fresh_database_gets_every_migration(tmp_path):
    conn = sqlite.connect(tmp_path / "x.db")
    assert sqlite.migrate(conn, MIGRATIONS) == 2
    assert sqlite.schema_version(conn) == 2 and {"a", "b"} <= tables(conn)
    conn.execute("INSERT INTO a DEFAULT VALUES")
    assert conn.execute("SELECT text FROM a").fetchone()[0] == "x;y"
    assert sqlite.migrate(conn, MIGRATIONS) == 2  # again: nothing to do


def test_a_database_at_an_older_version_keeps_its_data_and_migrates_on(tmp_path):
    """As the services' code before ovr_common left it: the version in PRAGMA user_version.
    (tests/unit/events/test_store_upgrade.py does it with the real old events code.)"""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript("CREATE TABLE a (id INTEGER PRIMARY KEY, text TEXT NOT NULL DEFAULT 'x');"
                      "INSERT INTO a (text) VALUES ('kept'); PRAGMA user_version = 1;")
    old.close()
    conn = sqlite.connect(path)
    assert sqlite.schema_version(conn) == 1
    assert sqlite.migrate(conn, MIGRATIONS) == 2  # only migration 2 runs (1 would fail: table a exists)
    assert "b" in tables(conn) and conn.execute("SELECT text FROM a").fetchone()[0] == "kept"


def test_a_failed_migration_leaves_the_old_schema(tmp_path):
    conn = sqlite.connect(tmp_path / "x.db")
    sqlite.migrate(conn, MIGRATIONS[:1])
    broken = [*MIGRATIONS, "CREATE TABLE c (id INTEGER PRIMARY KEY); CREATE TABLE a (id INTEGER);"]
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        sqlite.migrate(conn, broken)
    assert sqlite.schema_version(conn) == 1 and not {"b", "c"} & tables(conn)


def test_a_newer_database_is_refused(tmp_path):
    conn = sqlite.connect(tmp_path / "x.db")
    sqlite.migrate(conn, MIGRATIONS)
    with pytest.raises(sqlite.SchemaError, match="schema 2 is newer than ovr-x"):
        sqlite.migrate(conn, MIGRATIONS[:1], "ovr-x")


def test_tx_commits_rolls_back_and_joins(tmp_path):
    conn = sqlite.connect(tmp_path / "x.db")
    sqlite.migrate(conn, MIGRATIONS)
    with sqlite.tx(conn):
        conn.execute("INSERT INTO a (text) VALUES ('one')")
        with sqlite.tx(conn):  # nested: part of the outer transaction
            conn.execute("INSERT INTO a (text) VALUES ('two')")
    with pytest.raises(RuntimeError), sqlite.tx(conn):
        conn.execute("INSERT INTO a (text) VALUES ('three')")
        raise RuntimeError("abort")
    assert [r[0] for r in conn.execute("SELECT text FROM a ORDER BY id")] == ["one", "two"]
    assert not conn.in_transaction


def test_statements_keep_semicolons_in_strings():
    assert sqlite.statements("SELECT ';';\n-- c\nSELECT 2;") == ["SELECT ';';", "-- c\nSELECT 2;"]


def test_statements_split_two_on_one_line():
    assert sqlite.statements("CREATE TABLE c (id INTEGER); CREATE TABLE d (id INTEGER);\n") == [
        "CREATE TABLE c (id INTEGER);", "CREATE TABLE d (id INTEGER);"]


def test_where_keeps_only_the_filters_given_and_binds_their_values() -> None:
    from ovr_common.sqlite import where

    assert where({"a": None, "b": ""}) == ("", [])
    assert where({"a": 1, "b": None, "c": "x"}, "d != 'login'") == (" WHERE d != 'login' AND a = ? AND c = ?", [1, "x"])
    assert where({"a": "'; DROP TABLE t; --"})[1] == ["'; DROP TABLE t; --"]  # a value is a parameter, never SQL
