"""The event registry: one canonical identity per event (an id plus a display name that is unique
within its deployment), edge lifecycle messages, fuzzy name alignment, merges and ends.

Plain functions on a connection; callers hold the transaction (store.tx). Everything that must
reach the edges goes to the outbox in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from ovr_common.sqlite import where

from . import outbox, protocol
from .store import now_ms

DAY_MS = 86_400_000


class NotFound(LookupError):
    pass


class Invalid(ValueError):
    pass


@dataclass
class Conflict(Exception):
    existing: dict[str, Any]
    suggestion: str


def normalize(name: str) -> str:
    """Case, spacing and punctuation runs do not make two events different."""
    return re.sub(r"[\s_\-.,;:/]+", " ", name).strip().casefold()


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, normalize(a), normalize(b)).ratio()


def clean_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise Invalid("name is required: a display name of 1 to 120 characters")
    name = re.sub(r"\s+", " ", name).strip()
    if len(name) > 120:
        raise Invalid("name is too long: at most 120 characters")
    if not normalize(name):
        raise Invalid("name needs at least one letter or digit")
    return name


def event_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "deployment_id": row["deployment_id"], "state": row["state"],
            "temp": bool(row["temp"]), "merged_into": row["merged_into"], "source": row["source"],
            "created_at": row["created_at"], "started_at": row["started_at"], "ended_at": row["ended_at"]}


def _by_name(conn: sqlite3.Connection, deployment_id: str, name: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM events WHERE deployment_id = ? AND name_norm = ? AND state != 'merged'",
                        (deployment_id, normalize(name))).fetchone()


def suggest_name(conn: sqlite3.Connection, deployment_id: str, name: str, at_ms: int | None = None) -> str:
    year = dt.datetime.fromtimestamp((at_ms or now_ms()) / 1000, dt.UTC).year
    base = name if str(year) in name else f"{name} {year}"
    candidate, n = base, 2
    while _by_name(conn, deployment_id, candidate) is not None:
        candidate, n = f"{base} ({n})", n + 1
    return candidate


def get(conn: sqlite3.Connection, event_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    if row is None:
        raise NotFound(f"no event with id {event_id!r} (GET /api/events lists them)")
    return event_dict(row)


def create(conn: sqlite3.Connection, name: Any, deployment_id: str, source: str, *, event_id: str | None = None,
           started_at: int | None = None, temp: bool = False) -> dict[str, Any]:
    name = clean_name(name)
    if event_id is not None and not protocol.ID_RE.match(event_id):
        raise Invalid("id must be letters, digits, '_.:-' (up to 128)")
    existing = _by_name(conn, deployment_id, name)
    if existing is not None:
        raise Conflict(event_dict(existing), suggest_name(conn, deployment_id, name, started_at))
    event_id = event_id or str(uuid.uuid4())
    if conn.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone():
        raise Invalid(f"an event with id {event_id!r} exists already")
    at = now_ms()
    conn.execute("INSERT INTO events (id, name, name_norm, deployment_id, state, temp, source, created_at, started_at) "
                 "VALUES (?, ?, ?, ?, 'active', ?, ?, ?, ?)",
                 (event_id, name, normalize(name), deployment_id, int(temp), source, at, started_at or at))
    outbox.enqueue_registry(conn)
    return get(conn, event_id)


def list_events(conn: sqlite3.Connection, state: str | None = None, deployment_id: str | None = None) -> list[dict[str, Any]]:
    clause, args = where({"state": state, "deployment_id": deployment_id})
    rows = conn.execute(f"SELECT * FROM events{clause} ORDER BY started_at DESC, id", args).fetchall()
    return [event_dict(r) for r in rows]


def participants(conn: sqlite3.Connection, event_id: str) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT node_id, system_id, location, joined_at, left_at FROM event_nodes WHERE event_id = ? "
                        "ORDER BY node_id, system_id", (event_id,)).fetchall()
    return [dict(r) for r in rows]


def detail(conn: sqlite3.Connection, event_id: str) -> dict[str, Any]:
    ev = get(conn, event_id)
    ev["nodes"] = participants(conn, event_id)
    ev["aliases"] = [dict(r) for r in conn.execute(
        "SELECT node_id, local_id, reason, similarity, created_at FROM event_aliases WHERE event_id = ? ORDER BY node_id, local_id",
        (event_id,))]
    return ev


def resolve_local(conn: sqlite3.Connection, node_id: str, local_id: str) -> str | None:
    """The canonical id an edge's event id stands for, or None if the cloud has not seen it."""
    row = conn.execute("SELECT event_id FROM event_aliases WHERE node_id = ? AND local_id = ?", (node_id, local_id)).fetchone()
    if row:
        return row["event_id"]
    row = conn.execute("SELECT id, state, merged_into FROM events WHERE id = ?", (local_id,)).fetchone()
    if row is None:
        return None
    return row["merged_into"] if row["state"] == "merged" and row["merged_into"] else row["id"]


def _attach(conn: sqlite3.Connection, event_id: str, node_id: str, system_id: str, location: str | None, at: int) -> None:
    conn.execute("INSERT INTO event_nodes (event_id, node_id, system_id, location, joined_at) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT (event_id, node_id, system_id) DO UPDATE SET left_at = NULL, "
                 "location = COALESCE(excluded.location, event_nodes.location)",
                 (event_id, node_id, system_id, location, at))


def _alias(conn: sqlite3.Connection, node_id: str, local_id: str, event_id: str, reason: str,
           score: float | None, name: str) -> None:
    """Record that an edge's local id is this canonical event and tell the edge (once)."""
    if local_id == event_id:
        return
    cur = conn.execute("INSERT INTO event_aliases (node_id, local_id, event_id, reason, similarity, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node_id, local_id) DO NOTHING",
                       (node_id, local_id, event_id, reason, score, now_ms()))
    if cur.rowcount:
        outbox.enqueue(conn, protocol.align_topic(node_id),
                       protocol.payload(local_event_id=local_id, canonical_event_id=event_id, name=name))


def _best_match(conn: sqlite3.Connection, deployment_id: str, name: str) -> tuple[sqlite3.Row | None, float]:
    best, score = None, 0.0
    for row in conn.execute("SELECT * FROM events WHERE deployment_id = ? AND state = 'active' AND temp = 0", (deployment_id,)):
        s = similarity(name, row["name"])
        if s > score:
            best, score = row, s
    return best, score


def handle_lifecycle(conn: sqlite3.Connection, node_id: str, deployment_id: str, data: dict[str, Any],
                     auto: float, review: float) -> dict[str, Any]:
    """ovr/<node>/events: {op: start|add|remove|location|end, event: {id, name, temp}, system_id, location, ts}.

    Returns what happened (for the log and the tests): {op, event_id (canonical), action}.
    """
    op = data.get("op")
    if op not in ("start", "add", "remove", "location", "end"):
        raise protocol.BadMessage(f"op {op!r} is not one of start, add, remove, location, end")
    ref = protocol.event_ref(data)
    system_id = protocol.text(data.get("system_id"), 128) or ""
    location = protocol.text(data.get("location"), 200)
    at = protocol.ts_ms(data.get("ts")) or now_ms()
    canonical = resolve_local(conn, node_id, ref["id"])
    action = "known"
    if canonical is None:
        if ref["temp"]:
            action = "created-temp"
            canonical = _create_from_edge(conn, ref, deployment_id, node_id, at, temp=True)
        else:
            same = _by_name(conn, deployment_id, ref["name"])
            best, score = (same, 1.0) if same is not None and same["state"] == "active" else _best_match(conn, deployment_id, ref["name"])
            if best is not None and score >= auto:
                canonical = best["id"]
                action = "aligned" if score >= 1.0 else "auto-merged"
                _alias(conn, node_id, ref["id"], canonical, "exact" if score >= 1.0 else "auto", score, best["name"])
            else:
                canonical = _create_from_edge(conn, ref, deployment_id, node_id, at, temp=False)
                action = "created"
                if best is not None and score >= review:
                    conn.execute("INSERT INTO alignments (node_id, local_id, local_name, candidate_id, similarity, created_at) "
                                 "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                                 (node_id, ref["id"], ref["name"], best["id"], round(score, 4), now_ms()))
                    action = "created-review"
    if op in ("start", "add", "location"):
        _attach(conn, canonical, node_id, system_id, location, at)
    else:  # remove / end: this node (or one of its systems) left the event
        if system_id:
            conn.execute("UPDATE event_nodes SET left_at = ? WHERE event_id = ? AND node_id = ? AND system_id = ? AND left_at IS NULL",
                         (at, canonical, node_id, system_id))
        else:
            conn.execute("UPDATE event_nodes SET left_at = ? WHERE event_id = ? AND node_id = ? AND left_at IS NULL",
                         (at, canonical, node_id))
    outbox.enqueue_registry(conn)
    return {"op": op, "event_id": canonical, "local_id": ref["id"], "action": action}


def _create_from_edge(conn: sqlite3.Connection, ref: dict[str, Any], deployment_id: str, node_id: str, at: int,
                      temp: bool) -> str:
    """The edge's id becomes the canonical id (the edge keeps using it); the name is made unique."""
    name = ref["name"]
    if _by_name(conn, deployment_id, name) is not None:
        name = suggest_name(conn, deployment_id, name, at)
    create(conn, name, deployment_id, node_id, event_id=ref["id"], started_at=at, temp=temp)
    return ref["id"]


def end(conn: sqlite3.Connection, event_id: str, actor: str) -> dict[str, Any]:
    """End an event everywhere: the state (kept in the retained registry, so a node that is offline
    now reconciles when it returns) and a prompt broadcast on ovr/events/<id>/end."""
    ev = get(conn, event_id)
    if ev["state"] == "merged":
        raise Invalid(f"event {event_id} was merged into {ev['merged_into']}: end that one")
    already = ev["state"] == "ended"
    if not already:
        at = now_ms()
        conn.execute("UPDATE events SET state = 'ended', ended_at = ? WHERE id = ?", (at, event_id))
        conn.execute("UPDATE event_nodes SET left_at = ? WHERE event_id = ? AND left_at IS NULL", (at, event_id))
        ev = get(conn, event_id)
    outbox.enqueue(conn, protocol.end_topic(event_id),
                   protocol.payload(id=event_id, event_id=event_id, name=ev["name"], state="ended",
                                    ended_at=ev["ended_at"], by=actor))
    outbox.enqueue_registry(conn)
    ev["already_ended"] = already
    return ev


def add_nodes(conn: sqlite3.Connection, event_id: str, node_ids: list[str], known: set[str]) -> dict[str, Any]:
    ev = get(conn, event_id)
    if ev["state"] != "active":
        raise Invalid(f"event {event_id} is {ev['state']}: only active events take nodes")
    added = [n for n in node_ids if n in known]
    at = now_ms()
    for n in added:
        _attach(conn, event_id, n, "", None, at)
    if added:
        outbox.enqueue_registry(conn)
    return {"event_id": event_id, "added": added, "unknown": [n for n in node_ids if n not in known]}


def merge(conn: sqlite3.Connection, canonical_id: str, local_id: str, node_id: str | None, actor: str) -> dict[str, Any]:
    """File `local_id` (a temporary or duplicate event of one node, or of every node that used it)
    under `canonical_id`: aliases, participants and reports move, each node gets an align."""
    target = get(conn, canonical_id)
    if target["state"] == "merged":
        raise Invalid(f"event {canonical_id} was itself merged into {target['merged_into']}")
    if local_id == canonical_id:
        raise Invalid("an event cannot be merged into itself")
    local = conn.execute("SELECT * FROM events WHERE id = ?", (local_id,)).fetchone()
    nodes: set[str] = {node_id} if node_id else set()
    if local is not None:
        nodes |= {r["node_id"] for r in conn.execute("SELECT DISTINCT node_id FROM event_nodes WHERE event_id = ?", (local_id,))}
        nodes |= {r["node_id"] for r in conn.execute("SELECT DISTINCT node_id FROM reports WHERE event_id = ?", (local_id,))}
    else:
        nodes |= {r["node_id"] for r in conn.execute("SELECT DISTINCT node_id FROM reports WHERE event_id_original = ?", (local_id,))}
    if not nodes:
        raise NotFound(f"nothing is known of {local_id!r}: give node_id, or check the id in GET /api/events")
    for n in sorted(nodes):
        conn.execute("DELETE FROM event_aliases WHERE node_id = ? AND local_id = ?", (n, local_id))
        _alias(conn, n, local_id, canonical_id, "operator", None, target["name"])
    # Anything that pointed at the local event now points at the canonical one.
    conn.execute("UPDATE event_aliases SET event_id = ? WHERE event_id = ?", (canonical_id, local_id))
    for r in conn.execute("SELECT * FROM event_nodes WHERE event_id = ?", (local_id,)).fetchall():
        _attach(conn, canonical_id, r["node_id"], r["system_id"], r["location"], r["joined_at"])
    conn.execute("DELETE FROM event_nodes WHERE event_id = ?", (local_id,))
    marks = ",".join("?" * len(nodes))
    refiled = conn.execute(f"UPDATE reports SET event_id = ? WHERE event_id = ? OR (event_id_original = ? AND node_id IN ({marks}))",
                           (canonical_id, local_id, local_id, *sorted(nodes))).rowcount
    if local is not None:
        conn.execute("UPDATE events SET state = 'merged', merged_into = ?, ended_at = COALESCE(ended_at, ?) WHERE id = ?",
                     (canonical_id, now_ms(), local_id))
    conn.execute("UPDATE alignments SET resolved_at = ?, resolution = 'merge', resolved_by = ? "
                 "WHERE local_id = ? AND resolved_at IS NULL", (now_ms(), actor, local_id))
    outbox.enqueue_registry(conn)
    return {"event_id": canonical_id, "merged": local_id, "nodes": sorted(nodes), "reports_refiled": refiled}


def alignments(conn: sqlite3.Connection, open_only: bool = True) -> list[dict[str, Any]]:
    sql = ("SELECT a.*, e.name AS candidate_name FROM alignments a JOIN events e ON e.id = a.candidate_id"
           + (" WHERE a.resolved_at IS NULL" if open_only else "") + " ORDER BY a.id")
    return [dict(r) for r in conn.execute(sql)]


def resolve_alignment(conn: sqlite3.Connection, alignment_id: int, resolution: str, actor: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM alignments WHERE id = ?", (alignment_id,)).fetchone()
    if row is None:
        raise NotFound(f"no alignment {alignment_id} (GET /api/alignments lists the open ones)")
    if row["resolved_at"] is not None:
        raise Invalid(f"alignment {alignment_id} was resolved already ({row['resolution']})")
    if resolution == "merge":
        result = merge(conn, row["candidate_id"], row["local_id"], row["node_id"], actor)
    elif resolution == "keep_separate":
        conn.execute("UPDATE alignments SET resolved_at = ?, resolution = 'keep_separate', resolved_by = ? WHERE id = ?",
                     (now_ms(), actor, alignment_id))
        result = {"event_id": row["local_id"], "kept": True}
    else:
        raise Invalid("resolution must be merge or keep_separate")
    return {"id": alignment_id, "resolution": resolution, **result}


def registry_entries(conn: sqlite3.Connection, ended_days: float) -> list[dict[str, Any]]:
    """What ovr/registry/events carries: every active event and those ended in the last days."""
    since = now_ms() - int(ended_days * DAY_MS)
    rows = conn.execute("SELECT id, name, state, ended_at, deployment_id, started_at FROM events "
                        "WHERE state = 'active' OR (state = 'ended' AND ended_at >= ?) ORDER BY started_at, id", (since,))
    return [{"id": r["id"], "name": r["name"], "state": r["state"], "ended_at": r["ended_at"],
             "deployment_id": r["deployment_id"], "started_at": r["started_at"]} for r in rows]


def registry_payload(conn: sqlite3.Connection, ended_days: float) -> str:
    return protocol.payload(events=registry_entries(conn, ended_days))


def active_ids_json(ids: list[str]) -> str:
    return json.dumps(sorted(set(ids)))
