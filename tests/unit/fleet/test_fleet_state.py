"""Fleet state from status/realtime and VM labels: online/stale/offline, GPS vs manual, grouping."""

from __future__ import annotations

import json

import pytest
from fleet_testlib import make_settings
from ovr_fleet import fleet, protocol, registry
from ovr_fleet.store import now_ms, tx

REALTIME = {
    "ts": 1_760_000_000_000, "schema": 1, "deployment_id": "acme",
    "systems": [
        {"system_id": "gx-1", "soc": 81.5, "voltage": 52.1, "power_in": 120.0, "power_out": 900.0, "mode": 3,
         "alarms": {"low_soc": 0, "high_temperature": 2}, "gps": {"lat": 48.2, "lon": 16.4, "ts": None}, "stale": False},
        {"system_id": "meter-1", "type": "acuvim", "pout": 300, "alarms": []},
    ],
    "events": [{"id": "ev-1", "name": "Regatta"}],
}


def test_realtime_and_status_make_a_node(conn, settings):
    with tx(conn):
        registry.create(conn, "Regatta", "acme", "ada", event_id="ev-1")
        fleet.ingest_status(conn, "edge-a", {"state": "online", "version": "1.2.3", "ts": 1})
        fleet.ingest_realtime(conn, "edge-a", REALTIME | {"ts": now_ms()})
    [n] = fleet.list_nodes(conn, settings)
    assert (n["node_id"], n["deployment_id"], n["state"], n["online"], n["version"]) == ("edge-a", "acme", "online", True, "1.2.3")
    assert (n["soc"], n["power_in"], n["power_out"], n["alarms"]) == (81.5, 120.0, 1200.0, 1)
    assert (n["latitude"], n["longitude"], n["location_source"]) == (48.2, 16.4, "gps")
    assert n["active_events"] == [{"id": "ev-1", "name": "Regatta"}]
    assert [s["system_id"] for s in n["systems"]] == ["gx-1", "meter-1"]
    assert n["systems"][1]["power_out"] == 300 and n["systems"][1]["type"] == "acuvim"
    assert fleet.list_nodes(conn, settings, deployment_id="other") == []
    assert [x["node_id"] for x in fleet.list_nodes(conn, settings, event_id="ev-1")] == ["edge-a"]
    assert fleet.list_nodes(conn, settings, event_id="ev-2") == []


def test_last_will_and_staleness(conn, tmp_path):
    settings = make_settings(tmp_path, OVR_FLEET_STALE_SECONDS="1")
    with tx(conn):
        fleet.ingest_status(conn, "edge-a", {"state": "online"})
    assert fleet.list_nodes(conn, settings)[0]["state"] == "online"
    with tx(conn):
        conn.execute("UPDATE nodes SET status_at = ?", (now_ms() - 5000,))
    assert fleet.list_nodes(conn, settings)[0]["state"] == "stale"
    with tx(conn):
        fleet.ingest_status(conn, "edge-a", {"state": "offline"})  # the bridge's last will
    n = fleet.list_nodes(conn, settings)[0]
    assert n["state"] == "offline" and not n["online"]
    with pytest.raises(protocol.BadMessage):
        fleet.ingest_status(conn, "edge-a", {"state": "sleeping"})


def test_bridge_notification_takes_a_node_off_and_back_online(conn, settings):
    """The edge's Mosquitto bridge publishes "1"/"0" on ovr/<node>/bridge ("0" is its last will at
    the cloud): the node's own retained status still says online when the WAN drops."""
    assert protocol.split_topic("ovr/edge-a/bridge") == ("edge-a", "bridge")
    assert ("ovr/+/bridge", 1) in protocol.SUBSCRIPTIONS
    with tx(conn):
        fleet.ingest_status(conn, "edge-a", {"state": "online"})
        fleet.ingest_bridge(conn, "edge-a", b"0")
    n = fleet.list_nodes(conn, settings)[0]
    assert n["state"] == "offline" and not n["online"]
    with tx(conn):
        fleet.ingest_bridge(conn, "edge-a", b"1")
    assert fleet.list_nodes(conn, settings)[0]["state"] == "online"
    with pytest.raises(protocol.BadMessage):
        fleet.ingest_bridge(conn, "edge-a", b"maybe")


def test_manual_location_when_gps_is_missing_or_old(conn, tmp_path):
    settings = make_settings(tmp_path, OVR_FLEET_GPS_STALE_SECONDS="60")
    with tx(conn):
        fleet.ingest_realtime(conn, "edge-a", {"systems": [{"system_id": "gx"}]})
        fleet.set_manual(conn, "edge-a", 10.0, 20.0, "yard", "ada")
    n = fleet.list_nodes(conn, settings)[0]
    assert (n["latitude"], n["longitude"], n["location_source"]) == (10.0, 20.0, "manual")
    old = now_ms() - 3_600_000
    with tx(conn):
        fleet.ingest_realtime(conn, "edge-a", {"systems": [{"system_id": "gx", "gps": {"lat": 1.0, "lon": 2.0, "ts": old}}]})
    assert fleet.list_nodes(conn, settings)[0]["location_source"] == "manual"  # GPS older than the threshold
    with tx(conn):
        fleet.ingest_realtime(conn, "edge-a", {"systems": [{"system_id": "gx", "gps": {"latitude": 1.0, "longitude": 2.0}}]})
    n = fleet.list_nodes(conn, settings)[0]
    assert (n["latitude"], n["longitude"], n["location_source"]) == (1.0, 2.0, "gps")
    assert n["manual_location"]["label"] == "yard"
    with tx(conn):
        assert fleet.clear_manual(conn, "edge-a") is True
        assert fleet.clear_manual(conn, "edge-a") is False
        conn.execute("UPDATE nodes SET gps_at = ?", (old,))
    assert fleet.list_nodes(conn, settings)[0]["location_source"] == "gps-stale"


def test_deployment_from_vm_labels_when_the_edge_sends_none(conn, settings):
    with tx(conn):
        fleet.ingest_realtime(conn, "edge-a", {"systems": []})
        fleet.sync_vm_labels(conn, [{"node_id": "edge-a", "deployment_id": "acme", "system_id": "gx-1"},
                                    {"node_id": "edge-a", "deployment_id": "acme", "system_id": "meter-9"},
                                    {"node_id": "edge-z", "deployment_id": "zeta"}, {"node_id": "BAD NODE"}])
    nodes = {n["node_id"]: n for n in fleet.list_nodes(conn, settings)}
    assert nodes["edge-a"]["deployment_id"] == "acme"
    assert [s["system_id"] for s in nodes["edge-a"]["systems"]] == ["gx-1", "meter-9"]
    assert nodes["edge-z"]["state"] == "unknown" and nodes["edge-z"]["deployment_id"] == "zeta"
    assert set(nodes) == {"edge-a", "edge-z"}
    assert fleet.known_nodes(conn) == {"edge-a", "edge-z"}
    assert {d["deployment_id"]: d["nodes"] for d in fleet.deployments(conn, settings)} == {"acme": 1, "zeta": 1}
    assert fleet.node_deployment(conn, "edge-a", "x") == "acme"
    assert fleet.node_deployment(conn, "nobody", "x") == "x"


def test_garbage_in_realtime_is_ignored_not_fatal(conn, settings):
    with tx(conn):
        fleet.ingest_realtime(conn, "edge-a", {"systems": [{"system_id": "gx", "soc": "high", "gps": {"lat": 999, "lon": 0},
                                                            "mode": True, "alarms": 5}, "junk", {"no": "id"}],
                                               "events": ["ok-id", "bad id", 7], "ts": "yesterday"})
        fleet.ingest_realtime(conn, "edge-b", {"systems": {"gx-b": {"soc": 50}}})
    a, b = fleet.list_nodes(conn, settings)
    assert a["soc"] is None and a["latitude"] is None and a["systems"][0]["mode"] is None
    assert json.loads(conn.execute("SELECT active_events FROM nodes WHERE node_id='edge-a'").fetchone()[0]) == ["ok-id"]
    assert b["systems"][0]["system_id"] == "gx-b" and b["soc"] == 50


def test_url_template(conn, tmp_path):
    settings = make_settings(tmp_path, OVR_FLEET_NODE_URL_TEMPLATE="https://{node_id}.{deployment_id}.example.org/")
    with tx(conn):
        fleet.ingest_status(conn, "edge-a", {"state": "online", "deployment_id": "acme"})
    assert fleet.list_nodes(conn, settings)[0]["ui_url"] == "https://edge-a.acme.example.org/"


@pytest.mark.parametrize("url", ["javascript:alert(document.cookie)", "JavaScript:alert(1)", " javascript:alert(1)",
                                 "data:text/html,<script>alert(1)</script>", "//evil.example/", "/relative", "https://",
                                 "http://exa mple.org/", "ftp://edge-a.example.org/", "https://edge-a\n.example.org/", 7])
def test_ui_url_from_a_node_must_be_absolute_http(conn, settings, url):
    with tx(conn):
        assert fleet.ingest_realtime(conn, "edge-a", {"systems": [], "ui_url": "https://edge-a.example.org:8443/x"}) == []
        refused = fleet.ingest_realtime(conn, "edge-a", {"systems": [], "ui_url": url})
    assert len(refused) == 1 and "ui_url" in refused[0] and "http(s)" in refused[0]
    assert fleet.list_nodes(conn, settings)[0]["ui_url"] == "https://edge-a.example.org:8443/x"  # the last good one stays


def test_fleet_list_json_is_the_list(conn, settings):
    """GET /api/nodes splices the stored systems text into one encoder pass: same content as the
    parsed list, whatever strings the nodes send."""
    with tx(conn):
        fleet.ingest_status(conn, "edge-a", {"state": "online", "version": '"x:0"\u0000:1 \\" ]}'})
        fleet.ingest_realtime(conn, "edge-a", REALTIME | {"ts": now_ms()})
        fleet.ingest_realtime(conn, "edge-b", {"systems": [{"system_id": 'we"ird\u0000:0', "soc": 1}]})
        fleet.sync_vm_labels(conn, [{"node_id": "edge-b", "system_id": "vm-only"}, {"node_id": "edge-c", "deployment_id": "z"}])
    parsed = json.loads(fleet.list_nodes_json(conn, settings))
    assert parsed["nodes"] == fleet.list_nodes(conn, settings)
    assert [s["system_id"] for s in parsed["nodes"][1]["systems"]] == ['we"ird\u0000:0', "vm-only"]
    assert json.loads(fleet.list_nodes_json(conn, settings, deployment_id="z"))["nodes"][0]["node_id"] == "edge-c"
