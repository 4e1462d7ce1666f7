"""Per-node event reports (ovr/<node>/reports), acknowledged once stored, and the per-event aggregate."""

from __future__ import annotations

import hashlib
import html
import json
import sqlite3
from typing import Any

from ovr_common.sqlite import where

from . import outbox, protocol, registry
from .htmlclean import clean_html
from .store import now_ms

__all__ = ["clean_html"]


def ingest(conn: sqlite3.Connection, node_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Store a report (idempotent by report_id + hash) and queue its ack on ovr/<node>/cmd/ack."""
    report_id = data.get("report_id", data.get("id"))
    if not isinstance(report_id, str) or not protocol.ID_RE.match(report_id):
        raise protocol.BadMessage("report_id missing or not an id")
    ref = protocol.event_ref(data)
    body = data.get("report")
    if not isinstance(body, dict):
        body = {k: v for k, v in data.items() if k not in ("html", "schema")}
    body_text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    digest = data.get("hash") if isinstance(data.get("hash"), str) else "sha256:" + hashlib.sha256(body_text.encode()).hexdigest()
    page = data.get("html") if isinstance(data.get("html"), str) else None
    refused: list[str] = []
    if page is not None:
        page, refused = clean_html(page)
    canonical = registry.resolve_local(conn, node_id, ref["id"]) or ref["id"]
    row = conn.execute("SELECT node_id, hash FROM reports WHERE report_id = ?", (report_id,)).fetchone()
    if row is not None and row["node_id"] != node_id:
        raise protocol.BadMessage(f"report {report_id} belongs to node {row['node_id']}")
    if row is not None and row["hash"] == digest:
        status = "duplicate"
    else:
        status = "stored" if row is None else "replaced"
        conn.execute(
            "INSERT INTO reports (report_id, node_id, event_id, event_id_original, system_id, hash, generated_at, received_at, body, html) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (report_id) DO UPDATE SET hash = excluded.hash, "
            "body = excluded.body, html = excluded.html, generated_at = excluded.generated_at, received_at = excluded.received_at",
            (report_id, node_id, canonical, ref["id"], protocol.text(data.get("system_id"), 128), digest,
             protocol.ts_ms(data.get("generated_at", data.get("ts"))), now_ms(), body_text, page))
    outbox.enqueue(conn, protocol.ack_topic(node_id), protocol.payload(report_id=report_id, hash=digest, status=status))
    result = {"report_id": report_id, "event_id": canonical, "status": status}
    if refused:
        result["refused"] = refused
    return result


def _meta(row: sqlite3.Row) -> dict[str, Any]:
    return {"report_id": row["report_id"], "node_id": row["node_id"], "event_id": row["event_id"],
            "event_id_original": row["event_id_original"], "system_id": row["system_id"], "hash": row["hash"],
            "generated_at": row["generated_at"], "received_at": row["received_at"], "has_html": row["html"] is not None}


def list_reports(conn: sqlite3.Connection, event_id: str | None = None, node_id: str | None = None) -> list[dict[str, Any]]:
    clause, args = where({"event_id": event_id, "node_id": node_id})
    rows = conn.execute("SELECT report_id, node_id, event_id, event_id_original, system_id, hash, generated_at, received_at, "
                        f"html IS NOT NULL AS html FROM reports{clause} ORDER BY received_at DESC, report_id", args)
    return [_meta(r) | {"has_html": bool(r["html"])} for r in rows]


def events_with_reports(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT r.event_id, count(*) AS reports, count(DISTINCT r.node_id) AS nodes, max(r.received_at) AS latest, "
                        "e.name, e.state FROM reports r LEFT JOIN events e ON e.id = r.event_id GROUP BY r.event_id "
                        "ORDER BY latest DESC")
    return [{"event_id": r["event_id"], "name": r["name"], "state": r["state"], "reports": r["reports"],
             "nodes": r["nodes"], "latest_received_at": r["latest"]} for r in rows]


def get(conn: sqlite3.Connection, report_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM reports WHERE report_id = ?", (report_id,)).fetchone()
    if row is None:
        raise registry.NotFound(f"no report {report_id!r} (GET /api/reports lists them)")
    return row


def report_html(row: sqlite3.Row) -> str | None:
    """A report's HTML as served: cleaned again, for rows stored before cleaning on arrival existed."""
    return clean_html(row["html"])[0] if row["html"] else None


def report_json(row: sqlite3.Row) -> dict[str, Any]:
    return _meta(row) | {"report": json.loads(row["body"])}


def combine(summaries: list[dict[str, Any]]) -> dict[str, float]:
    """Fleet totals from the node summaries: peak_*/max_* take the largest value, min_* the
    smallest, every other number (energies, fuel, durations of work) is summed; averages and
    ratios (avg_*, *_pct, *_factor) cannot be combined without weights and are left out."""
    out: dict[str, float] = {}
    for summary in summaries:
        for key, value in summary.items():
            v = protocol.number(value)
            if v is None or key.startswith("avg") or key.endswith(("_pct", "_factor", "_avg")):
                continue
            if key.startswith(("peak", "max")):
                out[key] = max(out.get(key, v), v)
            elif key.startswith("min"):
                out[key] = min(out.get(key, v), v)
            else:
                out[key] = out.get(key, 0.0) + v
    return {k: round(v, 6) for k, v in sorted(out.items())}


def aggregate(conn: sqlite3.Connection, event_id: str) -> dict[str, Any]:
    event = registry.get(conn, event_id)
    nodes = []
    for row in conn.execute("SELECT * FROM reports WHERE event_id = ? ORDER BY node_id, generated_at, report_id", (event_id,)):
        body = json.loads(row["body"])
        summary = body.get("summary") if isinstance(body.get("summary"), dict) else {}
        nodes.append(_meta(row) | {"summary": summary})
    return {"event": event, "generated_at": now_ms(), "reports": len(nodes),
            "nodes": sorted({n["node_id"] for n in nodes}), "totals": combine([n["summary"] for n in nodes]),
            "node_reports": nodes}


def aggregate_html(conn: sqlite3.Connection, event_id: str) -> str:
    agg = aggregate(conn, event_id)
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(agg['event']['name'])} — fleet report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
             "padding:4px 8px}iframe{width:100%;height:600px;border:1px solid #ccc}</style></head><body>",
             f"<h1>{esc(agg['event']['name'])}</h1><p>Event {esc(event_id)} · {esc(agg['event']['state'])} · "
             f"{agg['reports']} report(s) from {len(agg['nodes'])} node(s)</p>",
             "<h2>Totals</h2><table><tr><th>figure</th><th>value</th></tr>"]
    parts += [f"<tr><td>{esc(k)}</td><td>{v:g}</td></tr>" for k, v in agg["totals"].items()]
    parts.append("</table>")
    for node in agg["node_reports"]:
        row = get(conn, node["report_id"])
        parts.append(f"<h2>{esc(node['node_id'])}{' · ' + esc(node['system_id']) if node['system_id'] else ''}</h2>")
        page = report_html(row)
        if page:
            # The node's own page (cleaned), embedded without scripts or same-origin rights.
            parts.append(f"<iframe sandbox srcdoc=\"{esc(page, quote=True)}\"></iframe>")
        else:
            parts.append(f"<pre>{esc(json.dumps(json.loads(row['body']), indent=2))}</pre>")
    parts.append("</body></html>")
    return "".join(parts)
