"""Store migrations and the event rules: identity, participation, alignment, cloud reconcile."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import pytest
from ovr_events.events import EventError, Events
from ovr_events.store import MIGRATIONS, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "events.db")
    s.migrate()
    return s


@pytest.fixture
def ev(store: Store) -> Events:
    return Events(store, "edge-t", "dep-t")


def outbox(store: Store) -> list[dict]:
    return [json.loads(r["payload"]) for r in store.all("SELECT payload FROM outbox ORDER BY id")]


def test_migrations_are_idempotent_and_concurrent(tmp_path: Path):
    path = tmp_path / "x.db"
    errors: list[BaseException] = []

    def run() -> None:
        try:
            Store(path).migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    s = Store(path)
    assert s.migrate() == len(MIGRATIONS)
    assert s.one("PRAGMA user_version")[0] == len(MIGRATIONS)
    assert s.one("PRAGMA journal_mode")[0] == "wal"


def test_start_with_name_makes_uuid_and_lifecycle_message(ev: Events, store: Store):
    r = ev.start("tech", ["pro-1", "pro-2"], name="Harbour fest", location="Pier 3", note="first note")
    e = r["event"]
    assert uuid.UUID(e["id"]) and e["name"] == "Harbour fest" and e["temp"] is False
    assert {s["system_id"] for s in e["systems"]} == {"pro-1", "pro-2"}
    msgs = outbox(store)
    assert [m["op"] for m in msgs] == ["start", "start"]
    m = msgs[0]
    assert m["event"] == {"id": e["id"], "name": "Harbour fest", "temp": False}
    assert m["schema"] == 1 and isinstance(m["ts"], int) and m["location"] == "Pier 3"
    assert store.one("SELECT text FROM notes")[0] == "first note"
    assert store.one("SELECT action FROM audit WHERE action = 'event_start'")


def test_same_name_joins_the_active_event(ev: Events):
    a = ev.start("tech", ["pro-1"], name="Fest")["event"]
    b = ev.start("tech", ["pro-2"], name="fest")["event"]
    assert a["id"] == b["id"]


def test_offline_start_without_name_is_temp(ev: Events):
    e = ev.start("tech", ["pro-1"])["event"]
    assert e["temp"] is True and e["name"].startswith("temp-edge-t-")
    uuid.UUID(e["id"])


def test_registry_event_is_joined_by_id_or_name(ev: Events):
    cid = str(uuid.uuid4())
    ev.apply_registry([{"id": cid, "name": "Cloud fest", "state": "active"}])
    assert ev.start("tech", ["pro-1"], name="Cloud Fest")["event"]["id"] == cid
    assert ev.start("tech", ["pro-2"], event_id=cid)["event"]["id"] == cid


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"event_id": "not-a-uuid"}, 400),
    ({"event_id": str(uuid.uuid4())}, 404),
    ({"name": "x" * 121}, 400),
    ({"name": 5}, 400),
    ({"location": "a\x00b"}, 400),
])
def test_bad_start_input(ev: Events, kwargs, status):
    with pytest.raises(EventError) as exc:
        ev.start("tech", ["pro-1"], **kwargs)
    assert exc.value.status == status


def test_a_system_is_in_one_event_at_a_time(ev: Events):
    ev.start("tech", ["pro-1"], name="A")
    with pytest.raises(EventError) as exc:
        ev.start("tech", ["pro-1"], name="B")
    assert exc.value.status == 409 and "already in event" in exc.value.message


def test_location_change_splits_the_stay(ev: Events, store: Store):
    e = ev.start("tech", ["pro-1"], name="A", location="Dock")["event"]
    assert ev.set_location("tech", e["id"], "pro-1", "Field")["changed"] is True
    rows = store.all("SELECT location, ended_at FROM participations ORDER BY pk")
    assert [r["location"] for r in rows] == ["Dock", "Field"]
    assert rows[0]["ended_at"] is not None and rows[1]["ended_at"] is None
    series = ev.series_lines(0)
    assert ({"event_id": e["id"], "system_id": "pro-1", "location": "Dock"}, 0) in series
    assert ({"event_id": e["id"], "system_id": "pro-1", "location": "Field"}, 1) in series


def test_last_system_out_ends_event_and_queues_report(ev: Events, store: Store):
    e = ev.start("tech", ["pro-1", "pro-2"], name="A")["event"]
    assert ev.remove("tech", e["id"], "pro-1")["report_id"] is None
    r = ev.remove("tech", e["id"], "pro-2", op="end")
    assert r["event"]["state"] == "ended" and r["report_id"]
    assert store.one("SELECT state FROM reports WHERE id = ?", r["report_id"])[0] == "queued"
    with pytest.raises(EventError) as exc:
        ev.add("tech", e["id"], ["pro-1"])
    assert exc.value.status == 409


def test_end_all_and_end_broadcast_once(ev: Events, store: Store):
    e = ev.start("tech", ["pro-1", "pro-2"], name="A")["event"]
    assert ev.end_from_cloud(e["id"], "event_end_broadcast") is True
    assert ev.end_from_cloud(e["id"], "event_end_broadcast") is False  # duplicate delivery: no effect
    assert store.one("SELECT count(*) FROM reports")[0] == 1
    assert ev.get(e["id"])["state"] == "ended"


def test_registry_reconciles_events_ended_while_offline(ev: Events):
    e = ev.start("tech", ["pro-1"], name="A")["event"]
    other = ev.start("tech", ["pro-2"], name="B")["event"]
    ended = ev.apply_registry([{"id": e["id"], "name": "A", "state": "ended", "ended_at": 1},
                               {"id": other["id"], "name": "B", "state": "active"}])
    assert ended == [e["id"]]
    assert ev.get(e["id"])["state"] == "ended" and ev.get(other["id"])["state"] == "active"
    assert ev.apply_registry([{"id": e["id"], "name": "A", "state": "ended"}]) == []


def test_alignment_renames_temp_event_exactly_once(ev: Events, store: Store):
    e = ev.start("tech", ["pro-1"])["event"]
    ev.remove("tech", e["id"], "pro-1")  # ended: its report is queued under the local id
    cid = str(uuid.uuid4())
    changed = ev.align(e["id"], cid, "Canonical name")
    assert changed and changed["canonical_id"] == cid
    row = ev.get(cid)
    assert row["name"] == "Canonical name" and row["temp"] == 0
    assert ev.get(e["id"]) is None
    assert store.one("SELECT count(*) FROM reports r JOIN events e ON e.pk = r.event_pk WHERE e.id = ?", cid)[0] == 1
    assert ev.align(e["id"], str(uuid.uuid4()), "Other") is None  # applied once
    assert ev.get(cid)["name"] == "Canonical name"


def test_alignment_merges_into_existing_canonical_event(ev: Events, store: Store):
    cid = str(uuid.uuid4())
    ev.apply_registry([{"id": cid, "name": "Fest", "state": "active"}])
    canonical = ev.start("tech", ["pro-2"], event_id=cid)["event"]
    temp = ev.start("tech", ["pro-1"])["event"]
    changed = ev.align(temp["id"], canonical["id"], "Fest")
    assert changed["systems"] == ["pro-1"]
    systems = {s["system_id"] for s in ev.describe(ev.get(cid))["systems"]}
    assert systems == {"pro-1", "pro-2"}
