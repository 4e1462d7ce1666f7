"""An edge upgraded to ovr_common.sqlite keeps its database: one made by the code before it is
read at its version and migrated on, to the same schema a fresh database gets."""

from __future__ import annotations

import sqlite3

from ovr_events.store import MIGRATIONS, Store


def old_migrate(path, scripts: list[str]) -> None:
    """ovr_events' Store.migrate before ovr_common (its own ';' splitter)."""
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode = WAL")
    c.execute("BEGIN IMMEDIATE")
    version = c.execute("PRAGMA user_version").fetchone()[0]
    for i in range(version, len(scripts)):
        for part in scripts[i].split(";"):
            lines = [ln for ln in part.splitlines() if ln.strip() and not ln.strip().startswith("--")]
            text = "\n".join(ln.split("--", 1)[0] if "--" in ln else ln for ln in lines).strip()
            if text:
                c.execute(text)
        c.execute(f"PRAGMA user_version = {i + 1}")
    c.execute("COMMIT")
    c.close()


def schema(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    return {(r[0], r[1]) for r in conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}


def test_a_version_1_database_of_the_old_code_migrates_to_the_current_schema(tmp_path):
    old_migrate(tmp_path / "old.db", MIGRATIONS[:1])
    c = sqlite3.connect(tmp_path / "old.db")
    c.execute("INSERT INTO events (id, name, created_at) VALUES ('e1', 'kept', 1)")
    c.commit()
    c.close()
    store = Store(tmp_path / "old.db")
    assert store.conn().execute("PRAGMA user_version").fetchone()[0] == 1
    assert store.migrate() == len(MIGRATIONS)
    assert store.one("SELECT name FROM events WHERE id = 'e1'")["name"] == "kept"
    fresh = Store(tmp_path / "fresh.db")
    fresh.migrate()
    assert schema(store.conn()) == schema(fresh.conn())


def test_the_old_and_the_new_splitter_build_the_same_schema(tmp_path):
    old_migrate(tmp_path / "old.db", MIGRATIONS)
    new = Store(tmp_path / "new.db")
    new.migrate()
    old = sqlite3.connect(tmp_path / "old.db")
    assert old.execute("PRAGMA user_version").fetchone()[0] == new.conn().execute("PRAGMA user_version").fetchone()[0]
    assert schema(old) == schema(new.conn())
    assert new.migrate() == len(MIGRATIONS)  # a current database: nothing to do
