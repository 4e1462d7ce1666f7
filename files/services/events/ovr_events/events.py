"""Events: the job log. One canonical identity per event (UUID + display name).

Rules (fixing the original's identity mismatch):
- an event is always keyed by its UUID; the name is only a display name;
- start by id (a local or cloud-registry event), by name (an active local event or a registry
  event of that name is reused, else a new UUID is made), or with neither: a new UUID with a
  temporary name (`temp`), which the cloud may later align to a canonical event;
- a system takes part in at most one event at a time; a location change closes its participation
  row and opens a new one, so every (event, system, location) series has a clear start and end;
- when the last system leaves, the event ends and its report is queued;
- an alignment (cloud `cmd/align`) is applied exactly once.
All functions take the store; the worker and the HTTP app share them.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from typing import Any

from ovr_common.errors import ApiError
from ovr_common.protocol import node_topic

from . import SCHEMA, notes
from .store import Store, now_ms, row_dict


class EventError(ApiError):
    """A request this module refuses: status and message for the client (answered by the
    API's one ApiError handler)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


MAX_NAME = 120
MAX_LOCATION = 200
MAX_NOTE = 4000


def clean_text(value: Any, field: str, limit: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise EventError(400, f"{field} must be a string")
    value = " ".join(value.split()) if field != "text" else value.strip()
    if required and not value:
        raise EventError(400, f"{field} is required")
    if len(value) > limit:
        raise EventError(400, f"{field} is longer than {limit} characters")
    if any(ord(c) < 0x20 and c not in "\n\t" for c in value):
        raise EventError(400, f"{field} contains control characters")
    return value


def valid_uuid(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise EventError(400, f"event_id must be a UUID, got {str(value)[:60]!r}") from None


def event_ref(row: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "temp": bool(row["temp"])}


class Events:
    def __init__(self, store: Store, node_id: str, deployment_id: str = "") -> None:
        self.store = store
        self.node_id = node_id
        self.deployment_id = deployment_id

    # ---- reads -----------------------------------------------------------------------
    def get(self, event_id: str) -> sqlite3.Row | None:
        return self.store.one("SELECT * FROM events WHERE id = ?", event_id)

    def active_participation(self, system_id: str) -> sqlite3.Row | None:
        return self.store.one(
            "SELECT p.*, e.id AS event_id, e.name AS event_name, e.temp AS event_temp FROM participations p"
            " JOIN events e ON e.pk = p.event_pk WHERE p.system_id = ? AND p.ended_at IS NULL",
            system_id,
        )

    def attach_to(self, event_id: str | None, system_id: str | None) -> tuple[int | None, str | None]:
        """(event pk, event id) a note or photo belongs to: the event named (404 when it is not on
        this node), else the system's active event, else (None, None)."""
        if event_id is not None:
            row = self.get(valid_uuid(event_id))
            if row is None:
                raise EventError(404, "no such event on this node")
            return row["pk"], row["id"]
        if system_id is not None:
            p = self.active_participation(system_id)
            if p is not None:
                return p["event_pk"], p["event_id"]
        return None, None

    def describe(self, row: sqlite3.Row) -> dict[str, Any]:
        parts = self.store.all(
            "SELECT system_id, location, started_at, ended_at FROM participations WHERE event_pk = ? ORDER BY pk", row["pk"]
        )
        systems: dict[str, dict[str, Any]] = {}
        for p in parts:
            s = systems.setdefault(p["system_id"], {"system_id": p["system_id"], "started_at": p["started_at"],
                                                     "ended_at": p["ended_at"], "location": p["location"],
                                                     "active": False})
            s["ended_at"] = p["ended_at"]
            s["location"] = p["location"]
            s["active"] = p["ended_at"] is None
        return {
            **event_ref(row),
            "state": row["state"],
            "origin": row["origin"],
            "created_at": row["created_at"],
            "ended_at": row["ended_at"],
            "systems": list(systems.values()),
        }

    def list(self, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        if state:
            rows = self.store.all("SELECT * FROM events WHERE state = ? ORDER BY created_at DESC LIMIT ?", state, limit)
        else:
            rows = self.store.all("SELECT * FROM events ORDER BY created_at DESC LIMIT ?", limit)
        return [self.describe(r) for r in rows]

    def active_summary(self) -> list[dict[str, Any]]:
        rows = self.store.all(
            "SELECT e.id, e.name, e.temp, p.system_id, p.location FROM participations p JOIN events e ON e.pk = p.event_pk"
            " WHERE p.ended_at IS NULL ORDER BY e.created_at, p.system_id"
        )
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            ev = out.setdefault(r["id"], {**event_ref(r), "systems": []})
            ev["systems"].append({"system_id": r["system_id"], "location": r["location"]})
        return list(out.values())

    # ---- identity --------------------------------------------------------------------
    def _resolve(self, c: sqlite3.Connection, event_id: Any, name: str, now: int) -> sqlite3.Row:
        if event_id not in (None, ""):
            eid = valid_uuid(event_id)
            row = c.execute("SELECT * FROM events WHERE id = ?", (eid,)).fetchone()
            if row is None:
                reg = c.execute("SELECT * FROM registry WHERE id = ?", (eid,)).fetchone()
                if reg is None:
                    raise EventError(404, f"no event {eid} on this node or in the cloud registry")
                if reg["state"] == "ended":
                    raise EventError(409, f"event {reg['name']!r} ({eid}) has ended in the cloud")
                c.execute(
                    "INSERT INTO events (id, name, temp, origin, created_at) VALUES (?,?,0,'cloud',?)", (eid, reg["name"], now)
                )
                row = c.execute("SELECT * FROM events WHERE id = ?", (eid,)).fetchone()
            elif row["state"] == "ended":
                raise EventError(409, f"event {row['name']!r} ({eid}) has ended; start a new one")
            if name and name != row["name"]:
                raise EventError(400, f"event {eid} is named {row['name']!r}, not {name!r}; send only one of them")
            return row
        if name:
            row = c.execute(
                "SELECT * FROM events WHERE lower(name) = lower(?) AND state = 'active' ORDER BY created_at LIMIT 1", (name,)
            ).fetchone()
            if row is not None:
                return row
            reg = c.execute(
                "SELECT * FROM registry WHERE lower(name) = lower(?) AND state = 'active' ORDER BY updated_at DESC LIMIT 1",
                (name,),
            ).fetchone()
            if reg is not None:
                existing = c.execute("SELECT * FROM events WHERE id = ?", (reg["id"],)).fetchone()
                if existing is None:
                    c.execute("INSERT INTO events (id, name, temp, origin, created_at) VALUES (?,?,0,'cloud',?)",
                              (reg["id"], reg["name"], now))
                    return c.execute("SELECT * FROM events WHERE id = ?", (reg["id"],)).fetchone()
                if existing["state"] == "active":
                    return existing
            eid, temp = str(uuid.uuid4()), 0
        else:
            eid, temp = str(uuid.uuid4()), 1
            name = f"temp-{self.node_id}-{datetime.fromtimestamp(now / 1000, UTC):%Y%m%d-%H%M%S}"
        c.execute("INSERT INTO events (id, name, temp, origin, created_at) VALUES (?,?,?,'local',?)", (eid, name, temp, now))
        return c.execute("SELECT * FROM events WHERE id = ?", (eid,)).fetchone()

    def _lifecycle(self, op: str, ev: sqlite3.Row | dict[str, Any], system_id: str | None, location: str | None,
                   ts: int) -> None:
        self.store.enqueue(
            node_topic(self.node_id, "events"),
            {"schema": SCHEMA, "ts": ts, "op": op, "event": event_ref(ev), "system_id": system_id,
             "location": location, "node_id": self.node_id},
        )

    # ---- lifecycle -------------------------------------------------------------------
    def start(self, actor: str, systems: list[str], event_id: Any = None, name: Any = None, location: Any = None,
              note: Any = None) -> dict[str, Any]:
        name = clean_text(name, "name", MAX_NAME)
        location = clean_text(location, "location", MAX_LOCATION)
        note = clean_text(note, "note", MAX_NOTE)
        now = now_ms()
        with self.store.tx() as c:
            ev = self._resolve(c, event_id, name, now)
            added = []
            for sid in systems:
                cur = c.execute(
                    "SELECT e.id, e.name FROM participations p JOIN events e ON e.pk = p.event_pk"
                    " WHERE p.system_id = ? AND p.ended_at IS NULL", (sid,)).fetchone()
                if cur is not None:
                    if cur["id"] == ev["id"]:
                        continue
                    raise EventError(409, f"{sid} is already in event {cur['name']!r} ({cur['id']}); remove it first")
                c.execute("INSERT INTO participations (event_pk, system_id, location, started_at) VALUES (?,?,?,?)",
                          (ev["pk"], sid, location, now))
                added.append(sid)
            if note:
                notes.add(c, ev["pk"], systems[0] if len(systems) == 1 else None, note, actor, now)
            for sid in added:
                self._lifecycle("start", ev, sid, location, now)
            self.store.audit(actor, "event_start", event_id=ev["id"], detail={"systems": added, "location": location,
                                                                               "name": ev["name"], "note": bool(note)})
            return {"event": self.describe(ev), "added": added}

    def add(self, actor: str, event_id: str, systems: list[str], location: Any = None) -> dict[str, Any]:
        ev = self._require_active(event_id)
        location = clean_text(location, "location", MAX_LOCATION)
        now = now_ms()
        with self.store.tx() as c:
            added = []
            for sid in systems:
                cur = c.execute("SELECT e.id, e.name FROM participations p JOIN events e ON e.pk = p.event_pk"
                                " WHERE p.system_id = ? AND p.ended_at IS NULL", (sid,)).fetchone()
                if cur is not None:
                    if cur["id"] == ev["id"]:
                        continue
                    raise EventError(409, f"{sid} is already in event {cur['name']!r} ({cur['id']}); remove it first")
                c.execute("INSERT INTO participations (event_pk, system_id, location, started_at) VALUES (?,?,?,?)",
                          (ev["pk"], sid, location, now))
                self._lifecycle("add", ev, sid, location, now)
                added.append(sid)
            self.store.audit(actor, "event_add_systems", event_id=ev["id"], detail={"systems": added, "location": location})
        return {"event": self.describe(self.get(ev["id"])), "added": added}

    def set_location(self, actor: str, event_id: str, system_id: str, location: Any) -> dict[str, Any]:
        ev = self._require_active(event_id)
        location = clean_text(location, "location", MAX_LOCATION, required=True)
        now = now_ms()
        with self.store.tx() as c:
            p = c.execute("SELECT * FROM participations WHERE event_pk = ? AND system_id = ? AND ended_at IS NULL",
                          (ev["pk"], system_id)).fetchone()
            if p is None:
                raise EventError(404, f"{system_id} is not in event {ev['name']!r}")
            if p["location"] == location:
                return {"event": self.describe(ev), "changed": False}
            c.execute("UPDATE participations SET ended_at = ? WHERE pk = ?", (now, p["pk"]))
            c.execute("INSERT INTO participations (event_pk, system_id, location, started_at) VALUES (?,?,?,?)",
                      (ev["pk"], system_id, location, now))
            self._lifecycle("location", ev, system_id, location, now)
            self.store.audit(actor, "location_set", event_id=ev["id"], system_id=system_id,
                             before={"location": p["location"]}, after={"location": location})
        return {"event": self.describe(self.get(ev["id"])), "changed": True}

    def remove(self, actor: str, event_id: str, system_id: str, op: str = "remove") -> dict[str, Any]:
        """Take one system out of the event (op 'remove' or 'end'); the last one out ends the event."""
        ev = self._require_active(event_id)
        now = now_ms()
        with self.store.tx() as c:
            n = c.execute("UPDATE participations SET ended_at = ? WHERE event_pk = ? AND system_id = ? AND ended_at IS NULL",
                          (now, ev["pk"], system_id)).rowcount
            if n == 0:
                raise EventError(404, f"{system_id} is not in event {ev['name']!r}")
            self._lifecycle(op, ev, system_id, None, now)
            self.store.audit(actor, f"event_{op}_system", event_id=ev["id"], system_id=system_id)
            report = self._end_if_empty(c, ev, actor, now)
        return {"event": self.describe(self.get(ev["id"])), "report_id": report}

    def end_all(self, actor: str, event_id: str, action: str = "event_end") -> dict[str, Any]:
        ev = self._require_active(event_id)
        now = now_ms()
        with self.store.tx() as c:
            systems = [r["system_id"] for r in c.execute(
                "SELECT system_id FROM participations WHERE event_pk = ? AND ended_at IS NULL", (ev["pk"],))]
            c.execute("UPDATE participations SET ended_at = ? WHERE event_pk = ? AND ended_at IS NULL", (now, ev["pk"]))
            for sid in systems:
                self._lifecycle("end", ev, sid, None, now)
            if not systems:
                self._lifecycle("end", ev, None, None, now)
            self.store.audit(actor, action, event_id=ev["id"], detail={"systems": systems})
            report = self._end_if_empty(c, ev, actor, now)
        return {"event": self.describe(self.get(ev["id"])), "systems_ended": systems, "report_id": report}

    def _end_if_empty(self, c: sqlite3.Connection, ev: sqlite3.Row, actor: str, now: int) -> str | None:
        left = c.execute("SELECT count(*) FROM participations WHERE event_pk = ? AND ended_at IS NULL", (ev["pk"],)).fetchone()[0]
        if left:
            return None
        c.execute("UPDATE events SET state = 'ended', ended_at = ? WHERE pk = ?", (now, ev["pk"]))
        return self.queue_report(c, ev["pk"], now)

    def queue_report(self, c: sqlite3.Connection, event_pk: int, now: int | None = None) -> str:
        rid = str(uuid.uuid4())
        c.execute("INSERT INTO reports (id, event_pk, state, requested_at) VALUES (?,?,'queued',?)", (rid, event_pk, now or now_ms()))
        return rid

    def _require_active(self, event_id: Any) -> sqlite3.Row:
        eid = valid_uuid(event_id)
        ev = self.get(eid)
        if ev is None:
            raise EventError(404, f"no event {eid} on this node")
        if ev["state"] != "active":
            raise EventError(409, f"event {ev['name']!r} has already ended")
        return ev

    # ---- cloud -----------------------------------------------------------------------
    def end_from_cloud(self, event_id: str, action: str) -> bool:
        """End an event the cloud says has ended (broadcast or registry). Idempotent."""
        ev = self.get(event_id)
        if ev is None or ev["state"] != "active":
            return False
        self.end_all("cloud", event_id, action=action)
        return True

    def apply_registry(self, entries: list[dict[str, Any]]) -> list[str]:
        """Cache the cloud registry; end local events the cloud has ended. Returns the ids ended."""
        now = now_ms()
        with self.store.tx() as c:
            for e in entries:
                c.execute("INSERT INTO registry (id, name, state, ended_at, updated_at) VALUES (?,?,?,?,?)"
                          " ON CONFLICT (id) DO UPDATE SET name = excluded.name, state = excluded.state,"
                          " ended_at = excluded.ended_at, updated_at = excluded.updated_at",
                          (e["id"], e["name"], e["state"], e.get("ended_at"), now))
        ended = []
        for e in entries:
            if e["state"] == "ended" and self.end_from_cloud(e["id"], "event_end_reconcile"):
                ended.append(e["id"])
        return ended

    def registry(self) -> list[dict[str, Any]]:
        return [row_dict(r) for r in self.store.all("SELECT id, name, state, ended_at FROM registry ORDER BY name")]

    def align(self, local_id: str, canonical_id: str, name: str) -> dict[str, Any] | None:
        """Apply `cmd/align` once. Returns what changed (for the series rewrite) or None if nothing did."""
        now = now_ms()
        with self.store.tx() as c:
            if c.execute("SELECT 1 FROM alignments WHERE local_id = ?", (local_id,)).fetchone():
                return None
            c.execute("INSERT INTO alignments (local_id, canonical_id, name, applied_at) VALUES (?,?,?,?)",
                      (local_id, canonical_id, name, now))
            old = c.execute("SELECT * FROM events WHERE id = ?", (local_id,)).fetchone()
            if old is None or local_id == canonical_id:
                return None
            active = [r["system_id"] for r in c.execute(
                "SELECT system_id, location FROM participations WHERE event_pk = ? AND ended_at IS NULL", (old["pk"],))]
            target = c.execute("SELECT * FROM events WHERE id = ?", (canonical_id,)).fetchone()
            if target is None:
                c.execute("UPDATE events SET id = ?, name = ?, temp = 0 WHERE pk = ?", (canonical_id, name, old["pk"]))
            else:
                for table in ("participations", "notes", "photos", "reports"):
                    c.execute(f"UPDATE {table} SET event_pk = ? WHERE event_pk = ?", (target["pk"], old["pk"]))
                c.execute("UPDATE events SET name = ?, temp = 0 WHERE pk = ?", (name, target["pk"]))
                if old["state"] == "active" and target["state"] == "ended":
                    c.execute("UPDATE events SET state = 'active', ended_at = NULL WHERE pk = ?", (target["pk"],))
                c.execute("DELETE FROM events WHERE pk = ?", (old["pk"],))
            # Reports not yet acknowledged go out again under the canonical id.
            c.execute("UPDATE reports SET acked_at = NULL, next_attempt_at = 0 WHERE event_pk = ?",
                      ((target or old)["pk"],))
            self.store.audit("cloud", "event_align", event_id=canonical_id,
                             detail={"local_event_id": local_id, "name": name}, before={"id": local_id, "name": old["name"]},
                             after={"id": canonical_id, "name": name})
        return {"local_id": local_id, "canonical_id": canonical_id, "systems": active, "aligned_at": now}

    # ---- heartbeat -------------------------------------------------------------------
    def series_lines(self, since_ms: int, now: int | None = None) -> list[tuple[dict[str, str], int]]:
        """(labels, value) of ovr_event_active: 1 for active participations, 0 for ones that ended since `since_ms`."""
        now = now or now_ms()
        rows = self.store.all(
            "SELECT e.id, p.system_id, p.location, p.ended_at FROM participations p JOIN events e ON e.pk = p.event_pk"
            " WHERE p.ended_at IS NULL OR p.ended_at >= ?", since_ms)
        out = []
        for r in rows:
            labels = {"event_id": r["id"], "system_id": r["system_id"], "location": r["location"] or "-"}
            out.append((labels, 1 if r["ended_at"] is None else 0))
        return out



def open_participations(conn: sqlite3.Connection, systems: list[str]) -> list[sqlite3.Row]:
    """(system_id, location) of the given systems' participations that have not ended."""
    if not systems:
        return []
    marks = ",".join("?" * len(systems))
    return conn.execute(f"SELECT system_id, location FROM participations WHERE system_id IN ({marks}) AND ended_at IS NULL",
                        systems).fetchall()
