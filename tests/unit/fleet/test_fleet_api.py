"""The HTTP API against its own OpenAPI document: auth and roles, flows, bad input answered
with a JSON 4xx (never a 500), and schemathesis over every operation."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import routes
import schemathesis
from fleet_testlib import basic, make_settings
from hypothesis import HealthCheck, settings
from ovr_fleet import fleet, web
from ovr_fleet.store import open_db, tx

ADMIN, VIEWER = basic("ada"), basic("vic")


@pytest.fixture
def app(tmp_path):
    return web.create_app(make_settings(tmp_path))


@pytest.fixture
def client(app):
    return app.test_client()


def seed(app) -> None:
    conn = open_db(app.extensions["ovr_fleet"]["settings"].db_path)
    with tx(conn):
        fleet.ingest_status(conn, "edge-a", {"state": "online", "deployment_id": "acme"})
        fleet.ingest_realtime(conn, "edge-a", {"systems": [{"system_id": "gx-1", "soc": 70}]})


def test_health_is_open_everything_else_needs_an_operator(client):
    assert client.get("/api/health").json == {"status": "ok", "version": web.__version__}
    for path in ("/api/nodes", "/api/openapi.json", "/api/events", "/api/reports", "/api/whoami", "/api/nope"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert "authentication required" in r.json["error"] and r.headers["WWW-Authenticate"].startswith("Basic")
    assert client.get("/api/nodes", headers=basic("ada", "wrong")).status_code == 401
    assert client.post("/api/events", json={"name": "x"}).status_code == 401
    assert client.get("/api/whoami", headers=VIEWER).json == {"name": "vic", "role": "viewer"}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/api/events", {"name": "x"}), ("post", "/api/events/e1/end", None), ("post", "/api/events/e1/nodes", {"node_ids": ["a"]}),
    ("post", "/api/events/e1/merge", {"local_event_id": "x"}), ("post", "/api/alignments/1", {"resolution": "merge"}),
    ("put", "/api/nodes/edge-a/location", {"latitude": 1, "longitude": 2}), ("delete", "/api/nodes/edge-a/location", None),
    ("put", "/api/tiles/preferred", {"provider": "esri"}),
])
def test_viewer_cannot_change_anything(client, method, path, body):
    r = getattr(client, method)(path, headers=VIEWER, json=body)
    assert r.status_code == 403 and "viewer" in r.json["error"]


# ---- the authorization matrix, generated from the app's routes ------------------------------
# Every route needs an operator but OPEN; every change needs admin but VIEWER_MAY (the test's
# own list: widening web.VIEWER_MAY fails here). Generated, so a new route is checked the day it is added.
OPEN = {("GET", "/api/health")}
VIEWER_MAY = {("POST", "/api/tiles/usage")}
ARG_SAMPLES = {"node_id": "edge-a", "event_id": "e1", "report_id": "r1", "alignment_id": "1"}
READ_METHODS = ("GET",)


def route_table(app) -> list[tuple[str, str, str]]:
    return [(m, rule, path) for m, rule, path, _ in routes.route_table(app, ARG_SAMPLES)]


def route_failures(client, method: str, rule: str, path: str) -> list[str]:
    """What is wrong with one route's authorization (empty: nothing)."""
    call = getattr(client, method.lower())
    body = {} if method not in READ_METHODS else None
    wrong = []
    if (method, rule) in OPEN:
        return [] if call(path).status_code not in (401, 403) else [f"{method} {rule} must stay open"]
    for who, headers in (("anonymous", {}), ("a wrong password", basic("ada", "wrong"))):
        r = call(path, json=body, headers=headers)
        if r.status_code != 401 or "authentication required" not in (r.json or {}).get("error", ""):
            wrong.append(f"{method} {rule}: {who} got {r.status_code}, not 401")
    r = call(path, json=body, headers=VIEWER)
    viewer_may = method in READ_METHODS or (method, rule) in VIEWER_MAY
    if viewer_may and r.status_code in (401, 403):
        wrong.append(f"{method} {rule}: a viewer got {r.status_code}")
    if not viewer_may and (r.status_code != 403 or "viewer" not in r.json["error"]):
        wrong.append(f"{method} {rule}: a viewer got {r.status_code}, not 403")
    return wrong


MATRIX_APP = web.create_app(make_settings(Path(tempfile.mkdtemp(prefix="ovr-fleet-routes-"))))
ROUTES = route_table(MATRIX_APP)


def test_the_matrix_has_every_route():
    routes = {(m, rule) for m, rule, _ in ROUTES}
    assert len(routes) >= 24 and routes >= OPEN | VIEWER_MAY
    assert web.VIEWER_MAY == VIEWER_MAY


@pytest.mark.parametrize(("method", "rule", "path"), ROUTES)
def test_authorization_matrix(client, method, rule, path):
    assert route_failures(client, method, rule, path) == []


def test_the_matrix_finds_a_change_a_viewer_may_make(client, monkeypatch):
    monkeypatch.setattr(web, "VIEWER_MAY", web.VIEWER_MAY | {("POST", "/api/events")})
    assert route_failures(client, "POST", "/api/events", "/api/events") == ["POST /api/events: a viewer got 400, not 403"]


def test_viewer_may_count_tiles(client):
    assert client.post("/api/tiles/usage", headers=VIEWER, json={"provider": "esri", "count": 10}).status_code == 200


def test_one_call_counts_at_most_what_a_map_session_loads(client):
    r = client.post("/api/tiles/usage", headers=VIEWER, json={"provider": "esri", "count": 1_000_000})
    assert r.status_code == 400 and "at most 5000" in r.json["error"]
    r = client.post("/api/tiles/usage", headers=ADMIN, json={"provider": "esri", "count": 5001})
    assert r.status_code == 400 and "at most 5000" in r.json["error"]
    assert client.post("/api/tiles/usage", headers=VIEWER, json={"provider": "esri", "count": 5000}).status_code == 200
    assert client.get("/api/tiles/status", headers=VIEWER).json["fleet"]["esri"] == 5000


def test_a_viewer_cannot_switch_satellite_tiles_off_for_the_fleet(tmp_path):
    """Each operator counts at most 10 % of a provider's monthly free tier, whatever node_id and
    deployment_id it names: one viewer alone cannot push the fleet over a threshold."""
    c = web.create_app(make_settings(tmp_path, OVR_FLEET_TILES_LIMITS="mapbox=20000,esri=40000")).test_client()
    for provider, cap in (("mapbox", 2000), ("esri", 4000)):
        for i in range(cap // 1000):
            r = c.post("/api/tiles/usage", headers=VIEWER,
                       json={"provider": provider, "count": 1000, "node_id": f"map-{i}", "deployment_id": f"dep-{i}"})
            assert r.status_code == 200, r.json
        r = c.post("/api/tiles/usage", headers=VIEWER, json={"provider": provider, "count": 1, "node_id": "other"})
        assert r.status_code == 400, r.json
        assert f"vic has counted {cap} {provider} tiles" in r.json["error"] and f"at most {cap}" in r.json["error"]
    st = c.get("/api/tiles/status", headers=VIEWER).json
    assert st["fleet"] == {"mapbox": 2000, "esri": 4000} and st["satellite_allowed"] is True and st["warning"] is None
    assert st["source"] == {"name": "vic", "counted": {"mapbox": 2000, "esri": 4000}, "cap": {"mapbox": 2000, "esri": 4000}}
    # Another operator's map still counts: the cap is per operator, not per fleet.
    assert c.post("/api/tiles/usage", headers=ADMIN, json={"provider": "esri", "count": 10}).status_code == 200


SANDBOX_CSP = ("sandbox", "default-src 'none'", "form-action 'none'", "base-uri 'none'", "frame-ancestors 'none'")


def test_report_html_is_served_sandboxed_and_cleaned(app, client):
    from ovr_fleet import registry, reports

    conn = open_db(app.extensions["ovr_fleet"]["settings"].db_path)
    with tx(conn):
        registry.create(conn, "Regatta", "acme", "ada", event_id="ev-1")
        reports.ingest(conn, "edge-a", {"report_id": "r1", "event": {"id": "ev-1"}, "report": {"summary": {}}, "html": "<p>ok</p>"})
        # As an older ovr-fleet stored it, before node HTML was cleaned on arrival.
        conn.execute("UPDATE reports SET html = ? WHERE report_id = 'r1'",
                     ("<meta http-equiv=refresh content='0;url=https://evil.example/'><p>ok</p><form><input></form>",))
    for path in ("/api/reports/r1/html", "/api/events/ev-1/aggregate.html"):
        r = client.get(path, headers=VIEWER)
        assert r.status_code == 200 and r.mimetype == "text/html"
        csp = [d.strip() for d in r.headers["Content-Security-Policy"].split(";")]
        assert all(d in csp for d in SANDBOX_CSP), (path, csp)
        assert "allow-scripts" not in csp[0] and "allow-forms" not in csp[0] and "allow-top-navigation" not in csp[0]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        text = r.get_data(as_text=True)
        assert "refresh" not in text and "form" not in text and "evil.example" not in text, path
        assert "<p>ok</p>" in text or "&lt;p&gt;ok&lt;/p&gt;" in text


def test_event_flow(app, client):
    seed(app)
    r = client.post("/api/events", headers=ADMIN, json={"name": "Regatta", "deployment_id": "acme"})
    assert r.status_code == 201
    ev = r.json
    assert ev["state"] == "active" and ev["source"] == "ada"
    dup = client.post("/api/events", headers=ADMIN, json={"name": "regatta", "deployment_id": "acme"})
    assert dup.status_code == 409 and dup.json["existing"]["id"] == ev["id"] and dup.json["suggestion"].startswith("regatta 20")
    r = client.post(f"/api/events/{ev['id']}/nodes", headers=ADMIN, json={"node_ids": ["edge-a", "ghost"]})
    assert r.json == {"event_id": ev["id"], "added": ["edge-a"], "unknown": ["ghost"]}
    assert [n["node_id"] for n in client.get(f"/api/events/{ev['id']}", headers=VIEWER).json["nodes"]] == ["edge-a"]
    r = client.post(f"/api/events/{ev['id']}/end", headers=ADMIN)
    assert r.status_code == 200 and r.json["state"] == "ended"
    assert "unreachable" in r.json["end_markers"]["error"]  # VictoriaMetrics is down here: the end still happens
    assert client.get("/api/events?state=ended", headers=VIEWER).json["events"][0]["id"] == ev["id"]
    node = client.get("/api/nodes/edge-a", headers=VIEWER).json
    assert node["node"]["soc"] == 70 and node["events"][0]["id"] == ev["id"]


def test_manual_location(app, client):
    seed(app)
    r = client.put("/api/nodes/edge-a/location", headers=ADMIN, json={"latitude": 47.5, "longitude": 8.1, "label": "dock"})
    assert r.status_code == 200
    n = client.get("/api/nodes", headers=VIEWER).json["nodes"][0]
    assert (n["latitude"], n["location_source"]) == (47.5, "manual")
    assert client.delete("/api/nodes/edge-a/location", headers=ADMIN).json == {"node_id": "edge-a", "cleared": True}
    assert client.delete("/api/nodes/edge-a/location", headers=ADMIN).status_code == 404


@pytest.mark.parametrize(("method", "path", "body", "status", "word"), [
    ("get", "/api/nodes?deployment_id=../etc", None, 400, "deployment_id"),
    ("get", "/api/nodes?event_id=a%20b", None, 400, "event_id"),
    ("get", "/api/nodes/EDGE!", None, 400, "node_id"),
    ("get", "/api/nodes/nobody", None, 404, "no node"),
    ("get", "/api/nodes/edge-a/history?metric=soc&start=10&end=5", None, 400, "before"),
    ("get", "/api/nodes/edge-a/history?metric=soc&start=1&end=99999999999", None, 400, "range"),
    ("get", "/api/nodes/edge-a/history?metric=soc&step=0.1", None, 400, "step"),
    ("get", "/api/nodes/edge-a/history?metric=soc&step=1&start=1000&end=90000", None, 400, "points"),
    ("get", "/api/nodes/edge-a/history?metric=up%7Bjob%3D%22x%22%7D", None, 400, "metric"),
    ("get", "/api/nodes/edge-a/history?metric=soc&start=nan", None, 400, "finite"),
    ("get", "/api/events?state=weird", None, 400, "state"),
    ("get", "/api/events/nope", None, 404, "no event"),
    ("post", "/api/events", {"name": ""}, 400, "name"),
    ("post", "/api/events", {"name": "x", "deployment_id": "a b"}, 400, "deployment_id"),
    ("post", "/api/events", {"name": "x", "started_at": "today"}, 400, "started_at"),
    ("post", "/api/events", [1, 2], 400, "object"),
    ("post", "/api/events/nope/end", None, 404, "no event"),
    ("post", "/api/events/nope/nodes", {"node_ids": []}, 400, "node_ids"),
    ("post", "/api/events/nope/nodes", {"node_ids": ["UPPER"]}, 400, "node id"),
    ("post", "/api/events/nope/merge", {}, 400, "local_event_id"),
    ("post", "/api/alignments/7", {"resolution": "maybe"}, 400, "resolution"),
    ("post", "/api/alignments/7", {"resolution": "merge"}, 404, "alignment"),
    ("put", "/api/nodes/edge-a/location", {"latitude": 91, "longitude": 0}, 400, "latitude"),
    ("put", "/api/nodes/edge-a/location", {"latitude": True, "longitude": 0}, 400, "latitude"),
    ("put", "/api/nodes/edge-a/location", {"latitude": 1, "longitude": 0, "label": 5}, 400, "label"),
    ("get", "/api/reports/nope", None, 404, "no report"),
    ("get", "/api/reports/nope/html", None, 404, "no report"),
    ("get", "/api/events/nope/aggregate", None, 404, "no event"),
    ("get", "/api/tiles/status?month=2026-13", None, 400, "month"),
    ("post", "/api/tiles/usage", {"provider": "google", "count": 1}, 400, "provider"),
    ("post", "/api/tiles/usage", {"provider": "esri", "count": 0}, 400, "count"),
    ("post", "/api/tiles/usage", {"provider": "esri", "count": 1.5}, 400, "count"),
    ("delete", "/api/events", None, 405, "not allowed"),
    ("get", "/api/does-not-exist", None, 404, "no such endpoint"),
])
def test_bad_input_is_a_clear_json_4xx(app, client, method, path, body, status, word):
    seed(app)
    r = getattr(client, method)(path, headers=ADMIN, json=body)
    assert r.status_code == status, r.json
    assert word in r.json["error"]


def test_body_must_be_json(client):
    r = client.post("/api/events", headers=ADMIN, data="name=x", content_type="application/x-www-form-urlencoded")
    assert r.status_code == 415 and "JSON" in r.json["error"]
    r = client.post("/api/events", headers=ADMIN, data="{nope", content_type="application/json")
    assert r.status_code == 400 and "not valid JSON" in r.json["error"]
    r = client.post("/api/events", headers=ADMIN, data="x" * 1_100_000, content_type="application/json")
    assert r.status_code == 413 and "too large" in r.json["error"]


def test_history_proxy_is_read_only_and_reports_vm_down(client):
    r = client.get("/api/nodes/edge-a/history?metric=soc", headers=VIEWER)
    assert r.status_code == 502 and "unreachable" in r.json["error"]


def test_openapi_document_is_served_and_covers_every_route(app, client):
    doc = client.get("/api/openapi.json", headers=VIEWER).json
    assert doc["openapi"].startswith("3.")
    routes = {(r.rule.replace("<int:", "{").replace("<", "{").replace(">", "}"), m.lower())
              for r in app.url_map.iter_rules() if r.endpoint != "static" for m in r.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, m) for path, ops in doc["paths"].items() for m in ops}
    assert routes == documented


# ---- schemathesis: generated requests, every response must be documented and no 5xx ----

FUZZ_DIR = Path(tempfile.mkdtemp(prefix="ovr-fleet-fuzz-"))
FUZZ_APP = web.create_app(make_settings(FUZZ_DIR))
seed(FUZZ_APP)
# Loaded from the running app, as a client would: the document the service serves is the one tested.
SCHEMA = schemathesis.openapi.from_wsgi("/api/openapi.json", FUZZ_APP, headers=ADMIN)


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_schemathesis(case, victoria):
    FUZZ_APP.extensions["ovr_fleet"]["vm"].url = victoria  # history queries go to a real VictoriaMetrics
    case.headers = {**(case.headers or {}), **ADMIN}
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    case.validate_response(response, checks=[schemathesis.checks.not_a_server_error,
                                             schemathesis.checks.status_code_conformance,
                                             schemathesis.checks.content_type_conformance,
                                             schemathesis.checks.response_schema_conformance])
    if response.headers.get("Content-Type", "").startswith("application/json"):
        json.loads(response.text)
