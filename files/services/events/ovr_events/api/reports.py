"""Reports: listing, JSON, HTML, and asking for a new one."""

from __future__ import annotations

import json

from flask import Blueprint, Response

from .. import reportjobs
from ..events import EventError, valid_uuid
from ..store import now_ms, row_dict
from .common import ApiError, actor, body, ctx, int_arg, ok, require

bp = Blueprint("reports", __name__)
# The report page is served on the dashboard's origin (docs/adr/0009-report-html-sandbox.md): a
# sandbox without scripts, forms, popups or top navigation; allow-same-origin only so the
# browser sends the session cookie for the report's own photos (/api/photos/<id>/file) — with
# no script in the page, the origin gives it nothing else. Only those photos and inline styles load.
REPORT_CSP = ("sandbox allow-same-origin; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
              "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")

def _row(report_id: str):
    try:
        rid = valid_uuid(report_id)
    except EventError:
        raise ApiError(400, "report id must be a UUID") from None
    row = reportjobs.get(ctx().store.conn(), rid)
    if row is None:
        raise ApiError(404, f"no report {rid}")
    return row


@bp.get("/api/reports")
@require("read")
def list_reports():
    rows = reportjobs.recent(ctx().store.conn(), int_arg("limit", 50))
    return ok({"reports": [row_dict(r) for r in rows]})


@bp.post("/api/reports")
@require("operator")
def regenerate():
    doc = body()
    eid = valid_uuid(doc.get("event_id"))
    ev = ctx().events.get(eid)
    if ev is None:
        raise ApiError(404, f"no event {eid} on this node")
    with ctx().store.tx() as c:
        rid = ctx().events.queue_report(c, ev["pk"], now_ms())
    ctx().store.audit(actor(), "report_request", event_id=eid, detail={"report_id": rid})
    ctx().wake_worker()
    return ok({"report": row_dict(reportjobs.get(ctx().store.conn(), rid))}, 202)


@bp.get("/api/reports/<report_id>")
@require("read")
def get_report(report_id: str):
    row = _row(report_id)
    doc = row_dict(row)
    if row["state"] == "done":
        path = ctx().settings.reports_dir / f"{row['id']}.json"
        try:
            doc["report"] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ApiError(500, f"report file {path.name} is unreadable: POST /api/reports with its event_id "
                                "regenerates it") from None
    return ok(doc)


@bp.get("/api/reports/<report_id>/html")
@require("read")
def get_html(report_id: str):
    row = _row(report_id)
    if row["state"] != "done":
        raise ApiError(409, f"report {row['id']} is {row['state']}")
    path = ctx().settings.reports_dir / f"{row['id']}.html"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        raise ApiError(500, f"report file {path.name} is unreadable: POST /api/reports with its event_id "
                            "regenerates it") from None
    resp = Response(text, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = REPORT_CSP
    resp.headers["Referrer-Policy"] = "no-referrer"
    return resp
