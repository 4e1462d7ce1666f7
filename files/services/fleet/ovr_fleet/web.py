"""HTTP API (Flask, under gunicorn): thin handlers over the store and the logic modules.

Every error is JSON {"error": "..."} with a 4xx status; a 500 would be a bug and says so
without details. Operator actions that must reach the edges are written to the outbox in the
same transaction; the worker publishes them.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request
from ovr_common.errors import ApiError, register_error_handlers

from . import __version__, fleet, openapi, registry, reports, tiles, vm
from .auth import Operator, Operators, OperatorsError
from .config import Settings, settings_from
from .store import connect, migrate, tx

log = logging.getLogger("ovr_fleet.web")
DEPLOYMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_BODY = 1_000_000
# The only change a viewer may make: its map counting the tiles it loaded (bounded in tiles.py).
# Everything else that is not a read, the tile budget's preferred provider included, needs admin.
VIEWER_MAY = frozenset({("POST", "/api/tiles/usage")})


def page_headers(extra: str) -> dict[str, str]:
    """Headers of an HTML page built from node data (docs/adr/0009-report-html-sandbox.md): a
    sandbox without scripts, forms, popups or top navigation (an opaque origin, so it can not use
    the operator's credentials), nothing loaded but `extra`, no base, no form target, no framing."""
    csp = (f"sandbox; default-src 'none'; style-src 'unsafe-inline'; {extra}; form-action 'none'; base-uri 'none'; "
           "frame-ancestors 'none'")
    return {"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}


def _check(value: Any, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ApiError(400, f"{what} {value!r} is not valid ({pattern.pattern})")
    return value


def create_app(settings: Settings | None = None) -> Flask:
    if settings is None:
        env_file = os.environ.get("OVR_FLEET_ENV_FILE", "/etc/ovr/cloud.env")
        settings = settings_from(Path(env_file) if Path(env_file).exists() else None, os.environ)
    app = Flask("ovr_fleet")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    operators = Operators(settings.operators_file)
    client = vm.VM(settings.vm_url, settings.vm_timeout, settings.metric_suffix)
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    migrate(connect(settings.db_path))
    local = threading.local()
    document = openapi.document()

    def db() -> sqlite3.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = connect(settings.db_path)
        return conn

    app.extensions["ovr_fleet"] = {"settings": settings, "db": db, "vm": client}

    register_error_handlers(
        app, log,
        http_messages=lambda: {404: "no such endpoint (GET /api/openapi.json lists them)",
                               405: f"method {request.method} is not allowed here",
                               413: f"request body too large (at most {MAX_BODY} bytes)"},
        internal_message="internal error: the service log (journalctl -u ovr-fleet) has the details",
    )

    @app.before_request
    def authenticate() -> None:
        if request.path == "/api/health":
            return
        try:
            who = operators.verify(request.headers.get("Authorization"))
        except OperatorsError as exc:
            log.error("%s", exc)
            raise ApiError(503, "operator list unreadable; see the service log") from None
        if who is None:
            resp = jsonify({"error": "authentication required: HTTP Basic with an operator's credentials"})
            resp.status_code = 401
            resp.headers["WWW-Authenticate"] = 'Basic realm="ovr-tele operators"'
            raise _Abort(resp)
        g.operator = who
        if request.method not in ("GET", "HEAD", "OPTIONS") and not who.is_admin and (request.method, request.path) not in VIEWER_MAY:
            raise ApiError(403, f"operator {who.name} is a viewer: changing things needs the admin role")

    @app.errorhandler(_Abort)
    def aborted(exc: _Abort) -> Response:
        return exc.response

    def body(required: bool = True) -> dict[str, Any]:
        if not request.data and not required:
            return {}
        if request.mimetype != "application/json":
            raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
        try:
            data = json.loads(request.get_data(as_text=True))
        except ValueError as exc:
            raise ApiError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
        return data

    def arg(name: str, pattern: re.Pattern[str] | None = None) -> str | None:
        value = request.args.get(name)
        if value is None or value == "":
            return None
        if pattern is not None:
            _check(value, pattern, name)
        return value

    def number_arg(name: str, default: float) -> float:
        value = request.args.get(name)
        if value is None or value == "":
            return default
        try:
            v = float(value)
        except ValueError:
            raise ApiError(400, f"{name} must be a number (seconds since the epoch, or a step in seconds)") from None
        if not math.isfinite(v):
            raise ApiError(400, f"{name} must be finite")
        return v

    def actor() -> Operator:
        return g.operator

    def logic(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except registry.NotFound as exc:
            raise ApiError(404, str(exc)) from None
        except registry.Invalid as exc:
            raise ApiError(400, str(exc)) from None
        except registry.Conflict as exc:
            raise ApiError(409, f"an event named {exc.existing['name']!r} exists in {exc.existing['deployment_id']}; "
                                f"use it or pick another name, e.g. {exc.suggestion!r}",
                           existing=exc.existing, suggestion=exc.suggestion) from None

    # ---- service --------------------------------------------------------------------
    @app.get("/api/health")
    def health() -> Response:
        try:
            db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            raise ApiError(503, "database unavailable") from None
        return jsonify({"status": "ok", "version": __version__})

    @app.get("/api/openapi.json")
    def spec() -> Response:
        return jsonify(document)

    @app.get("/api/whoami")
    def whoami() -> Response:
        return jsonify({"name": actor().name, "role": actor().role})

    # ---- nodes ------------------------------------------------------------------------
    @app.get("/api/nodes")
    def nodes() -> Response:
        dep = arg("deployment_id", DEPLOYMENT_RE)
        ev = arg("event_id", registry.protocol.ID_RE)
        return Response(fleet.list_nodes_json(db(), settings, dep, ev), mimetype="application/json")

    @app.get("/api/nodes/<node_id>")
    def node(node_id: str) -> Response:
        _check(node_id, registry.protocol.NODE_RE, "node_id")
        found = fleet.list_nodes(db(), settings, node_id=node_id)
        if not found:
            raise ApiError(404, f"no node {node_id!r} has reported (GET /api/nodes lists them)")
        evs = [dict(r) for r in db().execute(
            "SELECT e.id, e.name, e.state, n.system_id, n.joined_at, n.left_at FROM event_nodes n JOIN events e ON e.id = n.event_id "
            "WHERE n.node_id = ? ORDER BY n.joined_at DESC LIMIT 200", (node_id,))]
        return jsonify({"node": found[0], "events": evs, "reports": reports.list_reports(db(), node_id=node_id)[:200]})

    @app.get("/api/nodes/<node_id>/history")
    def history(node_id: str) -> Response:
        _check(node_id, registry.protocol.NODE_RE, "node_id")
        metric = request.args.get("metric") or ""
        system_id = arg("system_id", registry.protocol.ID_RE)
        now = time.time()
        end = number_arg("end", now)
        start = number_arg("start", end - 3600)
        if not 0 < start < end:
            raise ApiError(400, "start must be before end (seconds since the epoch)")
        if end - start > settings.history_max_days * 86400:
            raise ApiError(400, f"range too long: at most {settings.history_max_days:g} days")
        step = number_arg("step", max(10.0, (end - start) / 500))
        if step < 1:
            raise ApiError(400, "step must be at least 1 second")
        if (end - start) / step > settings.history_max_points:
            raise ApiError(400, f"too many points: (end-start)/step must be at most {settings.history_max_points}; raise step")
        try:
            series = client.history(metric, node_id, system_id, start, end, step)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        except vm.VMError as exc:
            raise ApiError(502, str(exc)) from None
        return jsonify({"metric": metric, "start": start, "end": end, "step": step, "series": series})

    @app.put("/api/nodes/<node_id>/location")
    def set_location(node_id: str) -> Response:
        _check(node_id, registry.protocol.NODE_RE, "node_id")
        data = body()
        lat, lon = data.get("latitude"), data.get("longitude")
        for name, v, lim in (("latitude", lat, 90), ("longitude", lon, 180)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or abs(v) > lim:
                raise ApiError(400, f"{name} must be a number between -{lim} and {lim}")
        label = data.get("label")
        if label is not None and (not isinstance(label, str) or len(label) > 120):
            raise ApiError(400, "label must be a string of at most 120 characters")
        with tx(db()) as conn:
            return jsonify(fleet.set_manual(conn, node_id, float(lat), float(lon), label, actor().name))  # type: ignore[arg-type]

    @app.delete("/api/nodes/<node_id>/location")
    def clear_location(node_id: str) -> Response:
        _check(node_id, registry.protocol.NODE_RE, "node_id")
        with tx(db()) as conn:
            if not fleet.clear_manual(conn, node_id):
                raise ApiError(404, f"node {node_id!r} has no manual location")
        return jsonify({"node_id": node_id, "cleared": True})

    @app.get("/api/deployments")
    def deployments() -> Response:
        return jsonify({"deployments": fleet.deployments(db(), settings)})

    # ---- events -----------------------------------------------------------------------
    @app.get("/api/events")
    def events() -> Response:
        state = arg("state")
        if state not in (None, "active", "ended", "merged"):
            raise ApiError(400, "state must be active, ended or merged")
        return jsonify({"events": registry.list_events(db(), state, arg("deployment_id", DEPLOYMENT_RE))})

    @app.post("/api/events")
    def create_event() -> tuple[Response, int]:
        data = body()
        dep = data.get("deployment_id", settings.default_deployment)
        _check(dep, DEPLOYMENT_RE, "deployment_id")
        started = data.get("started_at")
        if started is not None and registry.protocol.ts_ms(started) is None:
            raise ApiError(400, "started_at must be a positive time (ms since the epoch)")
        with tx(db()) as conn:
            ev = logic(lambda: registry.create(conn, data.get("name"), dep, actor().name,
                                               started_at=registry.protocol.ts_ms(started) if started else None))
        return jsonify(ev), 201

    def event_id_ok(event_id: str) -> str:
        return _check(event_id, registry.protocol.ID_RE, "event id")

    @app.get("/api/events/<event_id>")
    def event(event_id: str) -> Response:
        event_id_ok(event_id)
        return jsonify(logic(lambda: registry.detail(db(), event_id)))

    @app.post("/api/events/<event_id>/end")
    def end_event(event_id: str) -> Response:
        event_id_ok(event_id)
        body(required=False)
        with tx(db()) as conn:
            ev = logic(lambda: registry.end(conn, event_id, actor().name))
            people = registry.participants(conn, event_id)
            dep = ev["deployment_id"]
        markers = [{"event_id": event_id, "node_id": p["node_id"], "system_id": p["system_id"], "deployment_id": dep}
                   for p in people]
        try:
            ev["end_markers"] = {"written": client.write_end_markers(markers, ev["ended_at"])}
        except vm.VMError as exc:
            log.warning("end markers of %s not written: %s", event_id, exc)
            ev["end_markers"] = {"written": 0, "error": str(exc)}
        return jsonify(ev)

    @app.post("/api/events/<event_id>/nodes")
    def add_nodes(event_id: str) -> Response:
        event_id_ok(event_id)
        data = body()
        ids = data.get("node_ids")
        if not isinstance(ids, list) or not ids or len(ids) > 1000:
            raise ApiError(400, "node_ids must be a list of 1 to 1000 node ids")
        for n in ids:
            _check(n, registry.protocol.NODE_RE, "node id")
        with tx(db()) as conn:
            return jsonify(logic(lambda: registry.add_nodes(conn, event_id, list(dict.fromkeys(ids)), fleet.known_nodes(conn))))

    @app.post("/api/events/<event_id>/merge")
    def merge(event_id: str) -> Response:
        event_id_ok(event_id)
        data = body()
        local = _check(data.get("local_event_id"), registry.protocol.ID_RE, "local_event_id")
        node_id = data.get("node_id")
        if node_id is not None:
            _check(node_id, registry.protocol.NODE_RE, "node_id")
        with tx(db()) as conn:
            return jsonify(logic(lambda: registry.merge(conn, event_id, local, node_id, actor().name)))

    @app.get("/api/events/<event_id>/aggregate")
    def aggregate(event_id: str) -> Response:
        event_id_ok(event_id)
        resp = jsonify(logic(lambda: reports.aggregate(db(), event_id)))
        if request.args.get("download") == "1":
            resp.headers["Content-Disposition"] = f'attachment; filename="event_{event_id}_aggregate.json"'
        return resp

    @app.get("/api/events/<event_id>/aggregate.html")
    def aggregate_html(event_id: str) -> Response:
        event_id_ok(event_id)
        page = logic(lambda: reports.aggregate_html(db(), event_id))
        return Response(page, mimetype="text/html", headers=page_headers("frame-src 'self'"))

    @app.get("/api/alignments")
    def alignments() -> Response:
        return jsonify({"alignments": registry.alignments(db(), open_only=request.args.get("all") != "1")})

    @app.post("/api/alignments/<int:alignment_id>")
    def resolve(alignment_id: int) -> Response:
        if alignment_id > 2**62:
            raise ApiError(404, f"no alignment {alignment_id}")
        data = body()
        resolution = data.get("resolution")
        if resolution not in ("merge", "keep_separate"):
            raise ApiError(400, "resolution must be merge or keep_separate")
        with tx(db()) as conn:
            return jsonify(logic(lambda: registry.resolve_alignment(conn, alignment_id, resolution, actor().name)))

    # ---- reports ----------------------------------------------------------------------
    @app.get("/api/reports")
    def list_reports() -> Response:
        ev = arg("event_id", registry.protocol.ID_RE)
        nd = arg("node_id", registry.protocol.NODE_RE)
        return jsonify({"reports": reports.list_reports(db(), ev, nd), "events": reports.events_with_reports(db())})

    @app.get("/api/reports/<report_id>")
    def report(report_id: str) -> Response:
        _check(report_id, registry.protocol.ID_RE, "report id")
        resp = jsonify(reports.report_json(logic(lambda: reports.get(db(), report_id))))
        if request.args.get("download") == "1":
            resp.headers["Content-Disposition"] = f'attachment; filename="report_{report_id}.json"'
        return resp

    @app.get("/api/reports/<report_id>/html")
    def report_html(report_id: str) -> Response:
        _check(report_id, registry.protocol.ID_RE, "report id")
        row = logic(lambda: reports.get(db(), report_id))
        page = reports.report_html(row)
        if not page:
            raise ApiError(404, f"report {report_id} has no HTML; GET /api/reports/{report_id} has its JSON")
        return Response(page, mimetype="text/html", headers=page_headers("img-src data:"))

    # ---- map tiles --------------------------------------------------------------------
    def provider_ok(value: Any) -> str:
        if not isinstance(value, str) or value not in settings.tiles_limits:
            raise ApiError(400, f"provider must be one of {', '.join(settings.tiles_limits)}")
        return value

    @app.get("/api/tiles/status")
    def tiles_status() -> Response:
        dep = arg("deployment_id", DEPLOYMENT_RE) or settings.default_deployment
        month = arg("month", tiles.MONTH_RE)
        return jsonify(tiles.status(db(), settings, dep, month, source=actor().name))

    @app.post("/api/tiles/usage")
    def tiles_usage() -> Response:
        data = body()
        provider = provider_ok(data.get("provider"))
        count = data.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= tiles.MAX_PER_CALL:
            raise ApiError(400, f"count must be an integer from 1 to {tiles.MAX_PER_CALL} "
                                f"(a call counts at most {tiles.MAX_PER_CALL} tiles; report every minute or so)")
        node_id = data.get("node_id", "fleet-map")
        _check(node_id, registry.protocol.NODE_RE, "node_id")
        dep = data.get("deployment_id", settings.default_deployment)
        _check(dep, DEPLOYMENT_RE, "deployment_id")
        with tx(db()) as conn:
            try:
                return jsonify(tiles.add_usage(conn, provider, node_id, dep, count, source=actor().name, settings=settings))
            except tiles.OverLimit as exc:
                raise ApiError(400, str(exc), **exc.extra) from None

    @app.put("/api/tiles/preferred")
    def tiles_preferred() -> Response:
        data = body()
        provider = provider_ok(data.get("provider"))
        dep = data.get("deployment_id", settings.default_deployment)
        _check(dep, DEPLOYMENT_RE, "deployment_id")
        with tx(db()) as conn:
            tiles.set_preferred(conn, dep, provider, actor().name)
            return jsonify(tiles.status(conn, settings, dep))

    return app


class _Abort(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("abort")
        self.response = response
