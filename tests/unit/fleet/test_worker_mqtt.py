"""The worker against a real mosquitto: a simulated node publishes the protocol's messages, the
worker keeps state and answers (ack, align), and operator actions reach the node through the
outbox (end broadcast, retained registry) — also for a node that was away during the end."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fleet_testlib import basic, make_settings
from ovr_fleet import web
from ovr_fleet.store import open_db
from ovr_fleet.worker import Worker

ADMIN = basic("ada")


def wait(pred: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Node:
    """An edge as the cloud sees it through its bridge: persistent session, QoS 1."""

    def __init__(self, port: int, node_id: str) -> None:
        self.port, self.node_id = port, node_id
        self.messages: list[tuple[str, dict, bool]] = []
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=node_id, clean_session=False)
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload), m.retain))
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(
            [(f"ovr/{node_id}/cmd/#", 1), ("ovr/registry/#", 1), ("ovr/events/#", 1)])
        self.connect()

    def connect(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        wait(self.client.is_connected, what=f"{self.node_id} connected")

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, kind: str, body: dict, qos: int = 1, retain: bool = False) -> None:
        body = {"ts": int(time.time() * 1000), "schema": 1, **body}
        self.client.publish(f"ovr/{self.node_id}/{kind}", json.dumps(body), qos=qos, retain=retain).wait_for_publish(5)

    def got(self, topic: str, pred: Callable[[dict], bool] = lambda b: True) -> list[dict]:
        return [b for t, b, _ in self.messages if t == topic and pred(b)]


@pytest.fixture
def stack(broker: int, tmp_path) -> Iterator[tuple[Worker, Any, int]]:
    settings = make_settings(tmp_path, OVR_MQTT_PORT=str(broker), OVR_FLEET_VM_SYNC_SECONDS="3600")
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    wait(worker.connected.is_set, what="worker connected")
    app = web.create_app(settings)
    yield worker, app.test_client(), broker
    worker.stop.set()
    thread.join(10)


def test_node_state_events_reports_and_end(stack):
    _worker, api, port = stack
    node = Node(port, "edge-a")
    node.publish("status", {"state": "online", "version": "1.0", "deployment_id": "acme"}, retain=True)
    node.publish("realtime", {"systems": [{"system_id": "gx-1", "soc": 55, "power_out": 1000}]}, qos=0, retain=True)
    nodes = wait(lambda: [n for n in api.get("/api/nodes", headers=ADMIN).json["nodes"] if n["soc"] == 55], what="node in the list")
    assert nodes[0]["deployment_id"] == "acme" and nodes[0]["state"] == "online"

    node.publish("events", {"op": "start", "event": {"id": "11111111-2222-4333-8444-555555555555", "name": "Regatta", "temp": False},
                            "system_id": "gx-1", "location": "pier 3"})
    ev = wait(lambda: api.get("/api/events/11111111-2222-4333-8444-555555555555", headers=ADMIN).json.get("state"), what="event")
    assert ev == "active"
    # The retained registry carries it (what a reconnecting edge reads first).
    reg = wait(lambda: node.got("ovr/registry/events", lambda b: any(e["id"].startswith("1111") for e in b["events"])), what="registry")
    assert set(reg[-1]["events"][0]) >= {"id", "name", "state", "ended_at"} and reg[-1]["schema"] == 1

    node.publish("reports", {"report_id": "rep-1", "hash": "sha256:abc", "event": {"id": "11111111-2222-4333-8444-555555555555"},
                             "report": {"summary": {"energy_wh": 1234}}, "html": "<p>hi</p>"})
    ack = wait(lambda: node.got("ovr/edge-a/cmd/ack"), what="ack")
    assert ack[0]["report_id"] == "rep-1" and ack[0]["schema"] == 1 and isinstance(ack[0]["ts"], int)
    agg = api.get("/api/events/11111111-2222-4333-8444-555555555555/aggregate", headers=ADMIN).json
    assert agg["totals"] == {"energy_wh": 1234.0} and agg["nodes"] == ["edge-a"]
    # Retry from the edge's outbox: acknowledged again, stored once.
    node.publish("reports", {"report_id": "rep-1", "hash": "sha256:abc", "event": {"id": "11111111-2222-4333-8444-555555555555"},
                             "report": {"summary": {"energy_wh": 1234}}})
    wait(lambda: len(node.got("ovr/edge-a/cmd/ack")) == 2, what="second ack")
    assert len(api.get("/api/reports", headers=ADMIN).json["reports"]) == 1

    r = api.post("/api/events/11111111-2222-4333-8444-555555555555/end", headers=ADMIN)
    assert r.status_code == 200
    end = wait(lambda: node.got("ovr/events/11111111-2222-4333-8444-555555555555/end"), what="end broadcast")
    assert end[0]["id"] == "11111111-2222-4333-8444-555555555555" and end[0]["ended_at"] == r.json["ended_at"]
    wait(lambda: node.got("ovr/registry/events", lambda b: b["events"] and b["events"][0]["state"] == "ended"), what="ended registry")
    node.disconnect()


def test_offline_node_reconciles_after_reconnect(stack):
    worker, api, port = stack
    node = Node(port, "edge-b")
    node.publish("events", {"op": "start", "event": {"id": "ev-b", "name": "Harbour Days"}})
    wait(lambda: api.get("/api/events/ev-b", headers=ADMIN).status_code == 200, what="event ev-b")
    node.disconnect()  # the boat loses its uplink; its session (QoS 1 queue) stays on the broker
    assert api.post("/api/events/ev-b/end", headers=ADMIN).status_code == 200
    db = open_db(worker.settings.db_path)  # the worker's own connection is its thread's alone
    wait(lambda: db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0] == 0, what="outbox drained")
    node.messages.clear()
    node.connect()
    # The QoS 1 end that waited in its session, and the retained registry (the reconciliation
    # path for an edge whose session expired): both say ended.
    wait(lambda: node.got("ovr/events/ev-b/end"), what="queued end after reconnect")
    retained = wait(lambda: [b for t, b, r in node.messages if t == "ovr/registry/events" and r], what="retained registry")
    assert [(e["id"], e["state"]) for e in retained[-1]["events"]] == [("ev-b", "ended")], "\n".join(map(str, node.messages))
    node.disconnect()


def test_same_name_from_another_node_is_aligned(stack):
    _worker, api, port = stack
    a, b = Node(port, "edge-a"), Node(port, "edge-b")
    a.publish("events", {"op": "start", "event": {"id": "ev-a", "name": "Boat Show"}})
    wait(lambda: api.get("/api/events/ev-a", headers=ADMIN).status_code == 200, what="ev-a")
    b.publish("events", {"op": "start", "event": {"id": "ev-local", "name": "boat show"}})
    align = wait(lambda: b.got("ovr/edge-b/cmd/align"), what="align")
    assert {k: align[0][k] for k in ("local_event_id", "canonical_event_id", "name")} == \
        {"local_event_id": "ev-local", "canonical_event_id": "ev-a", "name": "Boat Show"}
    assert a.got("ovr/edge-a/cmd/align") == []  # addressed to edge-b only
    assert len(api.get("/api/events", headers=ADMIN).json["events"]) == 1
    a.disconnect()
    b.disconnect()


def test_garbage_is_dropped_and_the_worker_goes_on(stack):
    worker, _api, port = stack
    node = Node(port, "edge-c")
    for kind, raw in (("events", b"not json"), ("reports", b"[1,2]"), ("status", b'{"state": "asleep"}'), ("events", b'{"op": "x"}')):
        node.client.publish(f"ovr/edge-c/{kind}", raw, qos=1).wait_for_publish(5)
    node.publish("status", {"state": "online"})
    # The counters move when a message is handled, the row when its batch commits: wait for the row.
    db = open_db(worker.settings.db_path)
    wait(lambda: (db.execute("SELECT state FROM nodes WHERE node_id='edge-c'").fetchone() or [None])[0] == "online",
         what="edge-c online after the garbage")
    assert worker.stats.dropped >= 4 and worker.stats.handled >= 1
    node.disconnect()


def test_refused_fields_are_counted_and_the_rest_is_kept(tmp_path):
    """A realtime message with a javascript: ui_url, a report with a script in its HTML: the
    message is handled, the bad part refused, and the worker counts it (stats.refused)."""
    worker = Worker(make_settings(tmp_path))
    worker.inbox.put(("ovr/edge-a/realtime", json.dumps({"systems": [{"system_id": "gx-1", "soc": 50}],
                                                         "ui_url": "javascript:alert(1)"}).encode()))
    worker.inbox.put(("ovr/edge-a/reports", json.dumps({"report_id": "r1", "event": {"id": "ev-1"}, "report": {},
                                                        "html": "<p>x</p><script>alert(1)</script>"}).encode()))
    assert worker.process_batch(timeout=1) == 2
    assert (worker.stats.handled, worker.stats.dropped, worker.stats.refused) == (2, 0, 2)
    row = worker.conn.execute("SELECT soc, ui_url FROM nodes WHERE node_id = 'edge-a'").fetchone()
    assert (row["soc"], row["ui_url"]) == (50, None)
    assert worker.conn.execute("SELECT html FROM reports WHERE report_id = 'r1'").fetchone()["html"] == "<p>x</p>"
