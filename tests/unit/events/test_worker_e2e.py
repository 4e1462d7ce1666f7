"""The worker against real peers: mosquitto, the GX simulator (files/services/gxsim) as the GX,
VictoriaMetrics as vmagent/VM. The HTTP app runs beside it on the same data dir, as in production.

Covers: live cache from the GX, the control round-trip (W/ -> N/ echo -> confirmed), and the
cloud protocol on the local broker (status with last will, realtime, event lifecycle, report
outbox until acked, end broadcast, registry reconcile, alignment)."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from evlib import OPERATOR, PORTAL, Broker, Collector, GxSim, VictoriaMetrics, wait_for
from ovr_events.api import create_app
from ovr_events.config import Settings
from ovr_events.worker import Worker

OP = {"Authorization": "Basic " + base64.b64encode(f"{OPERATOR[0]}:{OPERATOR[1]}".encode()).decode()}
NODE = "edge-t"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, vm: VictoriaMetrics) -> Iterator[dict]:
    from ovr_events.auth import sync_users

    tmp = tmp_path_factory.mktemp("e2e")
    broker = Broker(tmp).start()
    sim = GxSim(tmp, broker.port)
    # The GX is up before the worker connects, as on a boat (the other order is covered by the
    # worker's own full-republish request, which costs up to 10 s here).
    wait_for(lambda: "connected to" in sim.log_path.read_text(), 15, "the simulator to connect", interval=0.05)
    users = tmp / "users.json"
    sync_users(users, [{"name": OPERATOR[0], "password": OPERATOR[1], "role": "operator"}])
    (tmp / "gx_systems.json").write_text(json.dumps({"systems": [
        {"name": "gx1", "system_id": "pro-1", "portal_id": PORTAL, "host": "127.0.0.1", "port": broker.port,
         "status": "online"}]}))
    (tmp / "gx_inventory.json").write_text(json.dumps({"systems": [{"name": "gx1", "host": "127.0.0.1", "port": broker.port}]}))
    settings = Settings(node_id=NODE, deployment_id="dep-t", data_dir=tmp / "data", run_dir=tmp / "run",
                        users_file=users, gx_systems=tmp / "gx_systems.json", gx_inventory=tmp / "gx_inventory.json",
                        control_file=tmp / "control.json", vm_url=vm.url, vmagent_url=vm.url, mqtt_port=broker.port,
                        heartbeat_seconds=1.0, summary_seconds=1.0, snapshot_seconds=0.2, report_delay_seconds=0.5,
                        report_retry_seconds=1.0)
    cloud = Collector(broker.port, [f"ovr/{NODE}/#"])
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    client = create_app(settings).test_client()
    yield {"settings": settings, "worker": worker, "client": client, "cloud": cloud, "broker": broker, "vm": vm,
           "tmp": tmp}
    worker.stop_event.set()
    thread.join(10)
    cloud.close()
    sim.stop()
    broker.stop()


def live(client) -> dict | None:
    for s in client.get("/api/realtime").get_json()["systems"]:
        if s["system_id"] == "pro-1" and not s["stale"] and s["vebus_instance"] and s["controls"]["inverter_mode"]["value"]:
            return s
    return None


def test_realtime_from_the_gx(world):
    s = wait_for(lambda: live(world["client"]), 15, what="live data from the simulator")
    assert s["vebus_instance"] == "276"  # discovered from the topics
    assert s["soc"] is not None and s["voltage"] is not None
    assert set(s["pout_phases"]) == {"L1", "L2", "L3"}
    assert s["controls"]["ac_input_current_limit"]["adjustable"] is True
    assert s["gps"] and s["gps"]["latitude"] > 50
    # How fast /api/realtime answers is a figure of `make bench-events`, not a pass/fail here:
    # a timed assertion failed this test under a loaded CI machine.


def write(client, setting: str, value: object) -> dict:
    r = client.post("/api/gx/settings", headers=OP, json={"system_id": "pro-1", "setting": setting, "value": value})
    assert r.status_code == 202, r.get_json()
    wid = r.get_json()["write"]["id"]

    def done():
        w = client.get(f"/api/gx/writes/{wid}").get_json()["write"]
        return w if w["state"] not in ("queued", "pending") else None

    return wait_for(done, 25, what="the write to finish")


@pytest.mark.parametrize(("setting", "value", "expect"), [
    ("ac_input_current_limit", 12.5, 12.5),
    ("inverter_mode", "charger_only", 1),
    ("inverter_mode", "on", 3),
    ("battery_charge_current", 40, 40),  # the value it already has: the R/ read-back still confirms it
])
def test_control_round_trip_is_confirmed_quickly(world, setting, value, expect):
    wait_for(lambda: live(world["client"]), 15)
    t0 = time.monotonic()
    w = write(world["client"], setting, value)
    elapsed = time.monotonic() - t0
    assert w["state"] == "confirmed", w
    assert w["observed"] == expect
    assert elapsed < 2.0, f"confirmed after {elapsed:.2f}s"
    s = wait_for(lambda: live(world["client"]), 5)
    assert wait_for(lambda: live(world["client"])["controls"][setting]["value"] == expect, 5)
    entries = world["client"].get("/api/audit?action=gx_write", headers=OP).get_json()["entries"]  # operators only
    assert entries[0]["result"] == "confirmed" and entries[0]["actor"] == OPERATOR[0]
    assert s["system_id"] == "pro-1"


def test_write_the_simulator_refuses_times_out(world):
    # A policy that allows more than the simulator accepts (0-50 A): the GX ignores the write and
    # never echoes it, so the write ends as timeout (shortened from 20 s for the test).
    settings: Settings = world["settings"]
    settings.control_file.write_text(json.dumps({"defaults": {"ac_input_current_limit": {"min": 0, "max": 80}}}))
    short = dataclasses.replace(settings, confirm_timeout=1.5)
    world["worker"].s = short
    try:
        w = write(world["client"], "ac_input_current_limit", 75)
    finally:
        world["worker"].s = settings
        settings.control_file.unlink()
    assert w["state"] == "timeout" and "no echo" in w["error"]


def test_a_write_left_queued_while_the_worker_was_down_is_not_sent_late(world):
    """A write still queued long after it was asked for (the worker was down) must not reach the
    GX: a limit an operator asked for an hour ago may be wrong now. It ends as a timeout that says
    so, and the GX keeps its value."""
    from ovr_events import writes

    wait_for(lambda: live(world["client"]), 15)
    before = live(world["client"])["controls"]["ac_input_current_limit"]["value"]
    target = 31.0 if before != 31.0 else 32.0
    wid = str(uuid.uuid4())
    asked = int(time.time() * 1000) - 3600_000
    with world["worker"].store.tx() as c:
        writes.queue(c, wid, "pro-1", "ac_input_current_limit", target, before, OPERATOR[0], asked)

    def done():
        w = world["client"].get(f"/api/gx/writes/{wid}").get_json()["write"]
        return w if w["state"] not in ("queued", "pending") else None

    w = wait_for(done, 25, what="the stale write to finish")
    assert w["state"] == "timeout" and "not sent" in w["error"], w
    time.sleep(1.5)  # a write that had been sent would have its echo by now (confirmations take < 2 s)
    assert live(world["client"])["controls"]["ac_input_current_limit"]["value"] == before


def test_status_is_retained_with_last_will_fields(world):
    docs = wait_for(lambda: world["cloud"].on(f"ovr/{NODE}/status"), 10)
    assert docs[-1]["state"] == "online" and docs[-1]["deployment_id"] == "dep-t"
    assert docs[-1]["schema"] == 1 and isinstance(docs[-1]["ts"], int)
    rt = wait_for(lambda: world["cloud"].on(f"ovr/{NODE}/realtime"), 10)[-1]
    assert rt["systems"][0]["system_id"] == "pro-1" and "active_events" in rt


def test_event_lifecycle_series_report_and_ack(world):
    c, cloud, vm = world["client"], world["cloud"], world["vm"]
    r = c.post("/api/events", headers=OP, json={"systems": ["pro-1"], "name": "E2E fest", "location": "Dock 1"})
    eid = r.get_json()["event"]["id"]
    msgs = wait_for(lambda: [m for m in cloud.on(f"ovr/{NODE}/events") if m["event"]["id"] == eid], 10)
    assert msgs[0]["op"] == "start" and msgs[0]["system_id"] == "pro-1" and msgs[0]["location"] == "Dock 1"

    def active_series():
        vm.flush()
        return vm.query(f'ovr_event_active{{event_id="{eid}"}}')

    series = wait_for(active_series, 15, "ovr_event_active in VM", interval=0.5)
    assert series[0]["metric"]["location"] == "Dock 1" and series[0]["value"][1] == "1"
    r = c.post(f"/api/events/{eid}/end", headers=OP)
    rid = r.get_json()["report_id"]
    reports = wait_for(lambda: [m for m in cloud.on(f"ovr/{NODE}/reports") if m["report_id"] == rid], 15)
    rep = reports[0]
    assert rep["event"]["id"] == eid and len(rep["hash"]) == 64 and rep["report"]["report_id"] == rid
    assert c.get(f"/api/reports/{rid}").get_json()["state"] == "done"
    assert c.get(f"/api/reports/{rid}/html").status_code == 200
    # Not acknowledged: it is sent again.
    wait_for(lambda: len([m for m in cloud.on(f"ovr/{NODE}/reports") if m["report_id"] == rid]) >= 2, 10)
    cloud.publish(f"ovr/{NODE}/cmd/ack", {"report_id": rid, "schema": 1, "ts": 1})
    wait_for(lambda: c.get(f"/api/reports/{rid}").get_json()["acked_at"], 5, what="the ack")
    assert wait_for(lambda: active_series() and active_series()[0]["value"][1] == "0", 15, "active=0 at the end", interval=0.5)


def test_cloud_end_broadcast_registry_and_align(world):
    c, cloud = world["client"], world["cloud"]
    eid = c.post("/api/events", headers=OP, json={"systems": ["pro-1"], "name": "Cloud end"}).get_json()["event"]["id"]
    cloud.publish(f"ovr/events/{eid}/end", {"event_id": eid, "schema": 1, "ts": 1})
    wait_for(lambda: c.get(f"/api/events/{eid}").get_json()["state"] == "ended", 5, what="broadcast end")
    # Offline reconcile: the registry (retained) says an event we still run has ended.
    eid = c.post("/api/events", headers=OP, json={"systems": ["pro-1"], "name": "Registry end"}).get_json()["event"]["id"]
    cloud.publish("ovr/registry/events", [{"id": eid, "name": "Registry end", "state": "ended", "ended_at": None}], retain=True)
    wait_for(lambda: c.get(f"/api/events/{eid}").get_json()["state"] == "ended", 5, what="registry reconcile")
    cloud.publish("ovr/registry/events", [], retain=True)
    # A temporary event aligned to a canonical id, once.
    tmp = c.post("/api/events", headers=OP, json={"systems": ["pro-1"]}).get_json()["event"]
    assert tmp["temp"] is True
    canonical = str(uuid.uuid4())
    cloud.publish(f"ovr/{NODE}/cmd/align", {"local_event_id": tmp["id"], "canonical_event_id": canonical, "name": "Aligned"})
    ev = wait_for(lambda: c.get(f"/api/events/{canonical}").get_json() if c.get(f"/api/events/{canonical}").status_code == 200
                  else None, 5, what="alignment")
    assert ev["name"] == "Aligned" and ev["temp"] is False
    assert c.get(f"/api/events/{tmp['id']}").status_code == 404
    c.post(f"/api/events/{canonical}/end", headers=OP)
    assert Path(world["settings"].snapshot_path).exists()


LIMIT_KEY = "vebus/276/Ac/ActiveIn/CurrentLimit"


def current_limit(client) -> dict:
    s = next(s for s in client.get("/api/realtime").get_json()["systems"] if s["system_id"] == "pro-1")
    return s["controls"]["ac_input_current_limit"]


@pytest.mark.parametrize("payload", [b"", b'{"value":null}'], ids=["empty", "null"])
def test_a_control_value_that_goes_blank_is_read_back_from_the_gx(world, payload):
    """Issue 16: a GX publishes only changes, so after one blank (Venus' "device gone") or invalid
    payload on the current-limit path nothing would bring the value back. The worker reads it."""
    client = world["client"]
    known = wait_for(lambda: live(client) and current_limit(client)["state"] == "live" and current_limit(client),
                     15, what="a live current limit")
    reads = Collector(world["broker"].port, [f"R/{PORTAL}/{LIMIT_KEY}"])
    try:
        # As the GX would send it (the chaos GX of molecule/edge does, at random).
        reads.client.publish(f"N/{PORTAL}/{LIMIT_KEY}", payload, qos=1).wait_for_publish(5)
        back = wait_for(lambda: (c := current_limit(client))["state"] == "live" and c["updated_ms"] > known["updated_ms"]
                        and c, 5, "the current limit read back after a blank payload", interval=0.05)
        assert back["value"] == known["value"]
        assert reads.on(f"R/{PORTAL}/{LIMIT_KEY}"), "no R/ read of the lost path"
        # Known again: no more reads of it.
        time.sleep(2.5)
        assert len(reads.on(f"R/{PORTAL}/{LIMIT_KEY}")) == 1
    finally:
        reads.close()


def test_a_hostile_gx_payload_is_dropped_and_the_gx_keeps_flowing(world):
    """Issue 10 item 2: a payload nested 30,000 deep (inside the 64 KiB cap) used to raise
    RecursionError in paho's network thread, which died silently: live data froze."""
    client = world["client"]
    wait_for(lambda: live(client), 15)
    topic = f"N/{PORTAL}/battery/999/Alarms/HighTemperature"
    pub = Collector(world["broker"].port, ["test/none"])
    try:
        for bad in (b'{"value":' + b"[" * 30_000 + b"]" * 30_000 + b"}", b'{"value":NaN}', b'{"value":1e999}'):
            pub.client.publish(topic, bad, qos=1).wait_for_publish(5)
        pub.client.publish(topic, b'{"value":2}', qos=1).wait_for_publish(5)

        def alarm():
            s = live(client)
            return s and [a for a in s["alarms"] if a["instance"] == "999"] and s
        s = wait_for(alarm, 5, "the alarm published after the hostile payloads", interval=0.05)
        assert s["dropped_messages"] >= 3
        pub.client.publish(topic, b"", qos=1).wait_for_publish(5)
    finally:
        pub.close()
