"""Events (job log), notes, status and the audit log."""

from __future__ import annotations

import re

from flask import Blueprint, request

from .. import audit as audit_log
from .. import notes, reportjobs
from ..events import MAX_NOTE, clean_text, valid_uuid
from ..store import now_ms, row_dict
from .common import ApiError, actor, body, ctx, int_arg, ok, require, system_id_arg

bp = Blueprint("events", __name__)


def _systems(doc: dict, required: bool = True) -> list[str]:
    raw = doc.get("systems")
    if raw is None and "system_id" in doc:
        raw = [doc["system_id"]]
    if not isinstance(raw, list) or (required and not raw) or len(raw) > 50:
        raise ApiError(400, "systems must be a non-empty list of system ids (or give system_id)")
    out = []
    for s in raw:
        sid = system_id_arg(s)
        if sid not in out:
            out.append(sid)
    return out


def _call(fn, *args, **kwargs):
    result = fn(*args, **kwargs)
    ctx().wake_worker()
    return result


@bp.get("/api/events")
@require("read")
def list_events():
    state = request.args.get("state")
    if state not in (None, "active", "ended"):
        raise ApiError(400, "state must be active or ended")
    return ok({"events": ctx().events.list(state, int_arg("limit", 100))})


@bp.post("/api/events")
@require("operator")
def start():
    doc = body()
    systems = _systems(doc)
    result = _call(ctx().events.start, actor(), systems, event_id=doc.get("event_id"), name=doc.get("name"),
                   location=doc.get("location"), note=doc.get("note"))
    return ok(result, 201)


@bp.get("/api/events/registry")
@require("read")
def registry():
    return ok({"events": ctx().events.registry(), "source": "cloud_mqtt"})


@bp.get("/api/events/<event_id>")
@require("read")
def get_event(event_id: str):
    row = ctx().events.get(valid_uuid(event_id))
    if row is None:
        raise ApiError(404, f"no event {event_id} on this node")
    doc = ctx().events.describe(row)
    doc["reports"] = [row_dict(r) for r in reportjobs.for_event(ctx().store.conn(), row["pk"])]
    return ok(doc)


@bp.post("/api/events/<event_id>/systems")
@require("operator")
def add_systems(event_id: str):
    eid = valid_uuid(event_id)
    doc = body()
    return ok(_call(ctx().events.add, actor(), eid, _systems(doc), location=doc.get("location")))


@bp.delete("/api/events/<event_id>/systems/<system_id>")
@require("operator")
def remove_system(event_id: str, system_id: str):
    eid = valid_uuid(event_id)
    sid = system_id_arg(system_id, must_exist=False)
    return ok(_call(ctx().events.remove, actor(), eid, sid, op="remove"))


@bp.post("/api/events/<event_id>/systems/<system_id>/end")
@require("operator")
def end_system(event_id: str, system_id: str):
    eid = valid_uuid(event_id)
    sid = system_id_arg(system_id, must_exist=False)
    return ok(_call(ctx().events.remove, actor(), eid, sid, op="end"))


@bp.put("/api/events/<event_id>/systems/<system_id>/location")
@require("operator")
def set_location(event_id: str, system_id: str):
    eid = valid_uuid(event_id)
    sid = system_id_arg(system_id, must_exist=False)
    return ok(_call(ctx().events.set_location, actor(), eid, sid, body().get("location")))


@bp.post("/api/events/<event_id>/end")
@require("operator")
def end_all(event_id: str):
    eid = valid_uuid(event_id)
    return ok(_call(ctx().events.end_all, actor(), eid))


@bp.post("/api/events/end-all")
@require("operator")
def end_every_event():
    ended = []
    for ev in ctx().events.list("active", 1000):
        ended.append(_call(ctx().events.end_all, actor(), ev["id"]))
    return ok({"ended": [{"event": r["event"], "report_id": r["report_id"]} for r in ended]})


# ---- notes ---------------------------------------------------------------------------------
@bp.get("/api/notes")
@require("read")
def list_notes():
    event_pk = None
    if request.args.get("event_id"):
        row = ctx().events.get(valid_uuid(request.args["event_id"]))
        if row is None:
            raise ApiError(404, "no such event")
        event_pk = row["pk"]
    sid = request.args.get("system_id")
    if sid is not None:
        system_id_arg(sid, must_exist=False)
    return ok({"notes": notes.find(ctx().store.conn(), event_pk=event_pk, system_id=sid, limit=int_arg("limit", 50))})


@bp.post("/api/notes")
@require("operator")
def add_note():
    doc = body()
    text = clean_text(doc.get("text"), "text", MAX_NOTE, required=True)
    sid = doc.get("system_id")
    if sid is not None:
        sid = system_id_arg(sid)
    event_pk, event_id = ctx().events.attach_to(doc.get("event_id"), sid)
    ts = now_ms()
    with ctx().store.tx() as c:
        nid = notes.add(c, event_pk, sid, text, actor(), ts)
    ctx().store.audit(actor(), "note_add", event_id=event_id, system_id=sid, detail={"note_id": nid})
    return ok({"note": {"id": nid, "text": text, "system_id": sid, "event_id": event_id, "author": actor(),
                        "created_at": ts}}, 201)


@bp.delete("/api/notes/<int:note_id>")
@require("operator")
def delete_note(note_id: int):
    row = notes.get(ctx().store.conn(), note_id)
    if row is None:
        raise ApiError(404, f"no note {note_id}")
    with ctx().store.tx() as c:
        notes.delete(c, note_id)
    ctx().store.audit(actor(), "note_delete", event_id=row["event_id"], system_id=row["system_id"],
                      before={"text": row["text"]})
    return ok({"deleted": note_id})


# ---- status and audit ------------------------------------------------------------------------
@bp.get("/api/status")
@require("read")
def status():
    sid = request.args.get("system_id")
    if sid is not None:
        system_id_arg(sid, must_exist=False)
        p = ctx().events.active_participation(sid)
        return ok({"system_id": sid,
                   "active_event": None if p is None else {"id": p["event_id"], "name": p["event_name"],
                                                           "temp": bool(p["event_temp"]), "location": p["location"],
                                                           "started_at": p["started_at"]},
                   "recent": _audit(10, system_id=sid, exclude_logins=True)})
    return ok({"active_events": ctx().events.active_summary(), "recent": _audit(50, exclude_logins=True)})


def _audit(limit: int, system_id: str | None = None, action: str | None = None, exclude_logins: bool = False) -> list[dict]:
    return audit_log.entries(ctx().store.conn(), limit, system_id=system_id, action=action, exclude_logins=exclude_logins)


# The same rule as the OpenAPI document's pattern for `action` (openapi.py).
AUDIT_ACTION_RE = re.compile(r"[a-z_]{1,60}")


@bp.get("/api/audit")
@require("operator")  # failed logins are in it: names tried, from where
def audit():
    action = request.args.get("action")
    if action is not None and not AUDIT_ACTION_RE.fullmatch(action):
        raise ApiError(400, "action must be an audit action name like event_start")
    sid = request.args.get("system_id")
    if sid is not None:
        system_id_arg(sid, must_exist=False)
    return ok({"entries": _audit(int_arg("limit", 100), system_id=sid, action=action)})
