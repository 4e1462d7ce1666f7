"""GX control: validated, audited writes; their state is polled by the dashboard."""

from __future__ import annotations

import uuid

from flask import Blueprint, request

from .. import writes as gx_writes
from ..control import MODE_NAMES, SETTINGS, ControlError, validate
from ..realtime import UNKNOWN_TEXT
from ..store import now_ms
from .common import ApiError, actor, body, ctx, int_arg, ok, require, system_id_arg

bp = Blueprint("control", __name__)


def _live(system_id: str) -> dict | None:
    return next((s for s in ctx().realtime()["systems"] if s["system_id"] == system_id), None)


@bp.get("/api/gx/settings")
@require("read")
def settings():
    want = request.args.get("system_id")
    if want is not None:
        system_id_arg(want, must_exist=False)
    policy = ctx().policy()
    out = []
    for s in ctx().realtime()["systems"]:
        if want is not None and s["system_id"] != want:
            continue
        limits = policy.limits(s["system_id"])
        controls = s.get("controls") or {}
        out.append({
            "system_id": s["system_id"],
            "stale": s["stale"],
            "settings": {
                name: {**(controls.get(name) or {"value": None, "updated_ms": None, "adjustable": None, "state": "unknown",
                                         "text": UNKNOWN_TEXT["unknown"]}),
                       "description": st.description, "unit": st.unit, "allowed": name in limits.allowed,
                       "min": limits.ranges[name][0], "max": limits.ranges[name][1],
                       **({"choices": {v: k for k, v in MODE_NAMES.items()}} if name == "inverter_mode" else {})}
                for name, st in SETTINGS.items()
            },
        })
    if want is not None and not out:
        raise ApiError(404, f"no live data for system {want!r}")
    return ok({"systems": out})


@bp.post("/api/gx/settings")
@require("operator")
def write():
    doc = body()
    system_id = system_id_arg(doc.get("system_id"))
    if "value" not in doc:
        raise ApiError(400, "value is required")
    live = _live(system_id)
    try:
        setting, value = validate(doc.get("setting"), doc.get("value"), ctx().policy().limits(system_id),
                                  None if live is None else live.get("controls"))
    except ControlError as exc:
        ctx().store.audit(actor(), "gx_write_request", system_id=system_id,
                          detail={"setting": str(doc.get("setting"))[:60], "value": str(doc.get("value"))[:60]},
                          result="refused", error=exc.message)
        raise
    if live is None or live["stale"]:
        ctx().store.audit(actor(), "gx_write_request", system_id=system_id, detail={"setting": setting.name, "value": value},
                          result="refused", error="no live data from the GX")
        raise ApiError(503, f"no live data from {system_id}: the GX is offline or not read by this node")
    before = (live.get("controls") or {}).get(setting.name, {}).get("value")
    wid = str(uuid.uuid4())
    with ctx().store.tx() as c:
        gx_writes.queue(c, wid, system_id, setting.name, value, before, actor(), now_ms())
    ctx().store.audit(actor(), "gx_write_request", system_id=system_id,
                      detail={"write_id": wid, "setting": setting.name, "value": value}, before={"value": before},
                      after={"value": value}, result="queued")
    ctx().wake_worker()
    row = gx_writes.get(ctx().store.conn(), wid)
    return ok({"write": gx_writes.doc(row)}, 202)


@bp.get("/api/gx/writes/<write_id>")
@require("read")
def write_state(write_id: str):
    row = gx_writes.get(ctx().store.conn(), write_id)
    if row is None:
        raise ApiError(404, f"no GX write {write_id[:60]!r}")
    return ok({"write": gx_writes.doc(row)})


@bp.get("/api/gx/writes")
@require("read")
def writes():
    limit = int_arg("limit", 50)
    want = request.args.get("system_id")
    if want is not None:
        system_id_arg(want, must_exist=False)
    rows = gx_writes.recent(ctx().store.conn(), want, limit)
    return ok({"writes": [gx_writes.doc(r) for r in rows]})
