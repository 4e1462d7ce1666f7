"""Live values, answered from the worker's in-memory snapshot (no VictoriaMetrics, no MQTT here)."""

from __future__ import annotations

from flask import Blueprint, request

from .common import ApiError, ctx, ok, require, system_id_arg

bp = Blueprint("realtime", __name__)


def _no_store(resp):
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.get("/api/realtime")
@require("read")
def realtime():
    return _no_store(ok(ctx().realtime()))


@bp.get("/api/summary")
@require("read")
def summary():
    rt = ctx().realtime()
    want = request.args.get("system_id")
    if want is not None:
        system_id_arg(want, must_exist=False)
    systems = [
        {"system_id": s["system_id"], "soc": s.get("soc"), "voltage": s.get("voltage"), "pin": s.get("pin"),
         "pout": s.get("pout"), "mode": s.get("mode"), "alerts": s.get("alarms", []),
         "alerts_count": len(s.get("alarms", [])), "stale": s["stale"]}
        for s in rt["systems"] if want is None or s["system_id"] == want
    ]
    if want is not None and not systems:
        raise ApiError(404, f"no live data for system {want!r}")
    return _no_store(ok({"ts": rt["ts"], "systems": systems}))


@bp.get("/api/systems")
@require("read")
def systems():
    live = {s["system_id"]: s for s in ctx().realtime()["systems"]}
    out = []
    for s in ctx().gx_systems():
        sid = s.get("system_id")
        out.append({"system_id": sid, "name": s.get("name"), "portal_id": s.get("portal_id"), "host": s.get("host"),
                    "port": s.get("port"), "status": s.get("status"), "live": sid in live and not live[sid]["stale"]})
    return ok({"systems": out, "count": len(out)})


@bp.get("/api/dashboard")
@require("read")
def dashboard():
    rt = ctx().realtime()
    return _no_store(ok({"ts": rt["ts"], "worker_ok": rt["worker_ok"], "systems": rt["systems"],
                         "gx_systems": ctx().gx_systems(), "active_events": ctx().events.active_summary()}))


@bp.get("/api/gps")
@require("read")
def gps_all():
    out = [{"system_id": s["system_id"], **(s.get("gps") or {}), "stale": s["stale"]}
           for s in ctx().realtime()["systems"] if s.get("gps")]
    return _no_store(ok({"systems": out, "count": len(out)}))


@bp.get("/api/gps/<system_id>")
@require("read")
def gps_one(system_id: str):
    system_id_arg(system_id, must_exist=False)
    for s in ctx().realtime()["systems"]:
        if s["system_id"] == system_id and s.get("gps"):
            return _no_store(ok({"system_id": system_id, **s["gps"], "stale": s["stale"]}))
    raise ApiError(404, f"no GPS fix for system {system_id!r}")
