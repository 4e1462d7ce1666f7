"""Reports: idempotent storage, acks, aggregate math and the HTML that embeds node reports."""

from __future__ import annotations

import json

import pytest
from ovr_fleet import outbox, protocol, registry, reports
from ovr_fleet.store import tx


def report(report_id: str, event_id: str = "ev-1", **summary) -> dict:
    return {"report_id": report_id, "hash": f"sha256:{report_id}-{sorted(summary.items())}", "event": {"id": event_id, "name": "R"},
            "system_id": "gx-1", "generated_at": 1_760_000_000_000, "report": {"summary": summary, "loggers": []},
            "html": f"<h1>{report_id}</h1><script>alert(1)</script>", "ts": 1_760_000_000_000, "schema": 1}


def acks(conn) -> list[dict]:
    return [json.loads(r["payload"]) for r in outbox.pending(conn) if r["topic"].endswith("/cmd/ack")]


def test_report_is_stored_once_and_acknowledged_every_time(conn):
    with tx(conn):
        registry.create(conn, "Regatta", "dep", "ada", event_id="ev-1")
        first = reports.ingest(conn, "edge-a", report("r1", energy_wh=1000))
        again = reports.ingest(conn, "edge-a", report("r1", energy_wh=1000))
        changed = reports.ingest(conn, "edge-a", report("r1", energy_wh=1100))
    assert (first["status"], again["status"], changed["status"]) == ("stored", "duplicate", "replaced")
    assert [a["report_id"] for a in acks(conn)] == ["r1", "r1", "r1"]
    assert all(a["schema"] == 1 and isinstance(a["ts"], int) for a in acks(conn))
    assert [r["topic"] for r in outbox.pending(conn) if r["topic"].endswith("/cmd/ack")] == ["ovr/edge-a/cmd/ack"] * 3
    [meta] = reports.list_reports(conn, event_id="ev-1")
    assert meta["node_id"] == "edge-a" and meta["has_html"] is True
    assert reports.report_json(reports.get(conn, "r1"))["report"]["summary"] == {"energy_wh": 1100}


def test_report_of_another_node_with_the_same_id_is_refused(conn):
    with tx(conn):
        reports.ingest(conn, "edge-a", report("r1"))
        with pytest.raises(protocol.BadMessage):
            reports.ingest(conn, "edge-b", report("r1"))


def test_report_without_hash_gets_one_and_without_id_is_refused(conn):
    msg = report("r2")
    del msg["hash"]
    with tx(conn):
        assert reports.ingest(conn, "edge-a", msg)["status"] == "stored"
        with pytest.raises(protocol.BadMessage):
            reports.ingest(conn, "edge-a", {"event": {"id": "ev"}})
    assert reports.get(conn, "r2")["hash"].startswith("sha256:")


def test_reports_under_an_aligned_local_id_land_on_the_canonical_event(conn):
    with tx(conn):
        registry.handle_lifecycle(conn, "edge-a", "dep", {"op": "start", "event": {"id": "ev-1", "name": "Regatta"}}, 0.9, 0.8)
        registry.handle_lifecycle(conn, "edge-b", "dep", {"op": "start", "event": {"id": "ev-b", "name": "Regatta"}}, 0.9, 0.8)
        out = reports.ingest(conn, "edge-b", report("rb", "ev-b"))
    assert out["event_id"] == "ev-1"
    assert reports.get(conn, "rb")["event_id_original"] == "ev-b"


def test_combine_math():
    total = reports.combine([{"energy_wh": 1000.5, "peak_w": 3000, "min_soc": 40, "avg_power_w": 900, "load_pct": 50,
                              "diesel_saved_l": 2, "note": "x"},
                             {"energy_wh": 499.5, "peak_w": 4500, "min_soc": 35, "power_factor": 0.9, "diesel_saved_l": 1.5},
                             {}])
    assert total == {"diesel_saved_l": 3.5, "energy_wh": 1500.0, "min_soc": 35.0, "peak_w": 4500.0}


def test_aggregate_json_and_html(conn):
    with tx(conn):
        registry.create(conn, "Regatta <2026>", "dep", "ada", event_id="ev-1")
        reports.ingest(conn, "edge-a", report("ra", energy_wh=1000, peak_w=3000))
        reports.ingest(conn, "edge-b", report("rb", energy_wh=500, peak_w=4000))
        msg = report("rc", energy_wh=1)
        del msg["html"]
        reports.ingest(conn, "edge-c", msg)
    agg = reports.aggregate(conn, "ev-1")
    assert agg["reports"] == 3 and agg["nodes"] == ["edge-a", "edge-b", "edge-c"]
    assert agg["totals"] == {"energy_wh": 1501.0, "peak_w": 4000.0}
    assert agg["event"]["name"] == "Regatta <2026>"
    page = reports.aggregate_html(conn, "ev-1")
    assert "Regatta &lt;2026&gt;" in page and "<script>" not in page
    assert page.count("<iframe sandbox srcdoc=") == 2 and "&lt;h1&gt;ra&lt;/h1&gt;" in page
    assert "&quot;energy_wh&quot;: 1" in page  # the report without HTML is shown as JSON
    with pytest.raises(registry.NotFound):
        reports.aggregate(conn, "nope")
    assert reports.events_with_reports(conn)[0]["reports"] == 3
