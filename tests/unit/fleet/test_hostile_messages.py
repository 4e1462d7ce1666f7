"""Hostile node messages (issue 10 item 2): any single message is dropped and counted, never
stops the worker, never costs another message, and nothing non-finite is stored or served.

The worker's batches are driven directly (its inbox is what paho's thread fills), so the tests
need no broker; test_worker_mqtt.py covers the same loop against a real mosquitto."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fleet_testlib import basic, make_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ovr_fleet import fleet, protocol, reports, web
from ovr_fleet.worker import Worker

DEEP = b'{"systems":' + b"[" * 200_000 + b"]" * 200_000 + b"}"


def strict_loads(text: str | bytes) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in served JSON")
    return json.loads(text, parse_constant=refuse)


def status(state: str = "online") -> bytes:
    return json.dumps({"schema": 1, "ts": 1, "state": state}).encode()


@pytest.fixture
def worker(tmp_path) -> Worker:
    return Worker(make_settings(tmp_path))


def run(worker: Worker, messages: list[tuple[str, bytes]]) -> None:
    for m in messages:
        worker.inbox.put(m)
    while worker.process_batch(timeout=0.01):
        pass


def states(worker: Worker) -> dict[str, str]:
    return {r["node_id"]: r["state"] for r in worker.conn.execute("SELECT node_id, state FROM nodes")}


def test_deeply_nested_realtime_is_dropped_and_costs_no_other_message(worker):
    run(worker, [("ovr/edge-a/status", status()), ("ovr/edge-h/realtime", DEEP), ("ovr/edge-b/status", status())])
    assert states(worker) == {"edge-a": "online", "edge-b": "online"}
    assert worker.stats.dropped == 1 and worker.stats.handled == 2


def test_nan_and_infinity_are_refused_on_input_and_never_served(worker):
    bad = [b'{"systems":[{"system_id":"gx","mode":NaN}]}', b'{"systems":[{"system_id":"gx","soc":Infinity}]}',
           b'{"systems":[{"system_id":"gx","pout":1e999}]}', b'{"state":"online","version":-Infinity}']
    run(worker, [("ovr/edge-n/realtime", b) for b in bad[:3]] + [("ovr/edge-n/status", bad[3])])
    assert worker.stats.dropped == 4
    run(worker, [("ovr/edge-n/realtime", b'{"systems":[{"system_id":"gx","mode":3,"soc":50}]}')])
    client = web.create_app(worker.settings).test_client()
    r = client.get("/api/nodes", headers=basic("ada"))
    assert r.status_code == 200
    assert strict_loads(r.data)["nodes"][0]["systems"][0]["mode"] == 3


def test_fleet_totals_cannot_overflow_to_infinity():
    assert reports.combine([{"energy_wh": 1.7e308}, {"energy_wh": 1.7e308}]) == {}
    assert reports.combine([{"energy_wh": 1e6}, {"energy_wh": 2e6}]) == {"energy_wh": 3e6}
    assert protocol.number(float("nan")) is None and protocol.number(1e300) is None


kinds = st.sampled_from(["status", "realtime", "events", "reports", "bridge", "cmd/ack", "junk"])
nodes = st.sampled_from(["edge-a", "edge-b", "registry", "Bad Node", "e" * 70])
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8) | st.sampled_from(
                          ["state", "systems", "system_id", "soc", "mode", "alarms", "gps", "lat", "lon", "event",
                           "id", "name", "op", "report_id", "report", "summary", "html", "ui_url", "ts"]), inner, max_size=6),
                      max_leaves=30)
payloads = st.one_of(
    st.binary(max_size=300),
    values.map(lambda v: json.dumps(v).encode()),  # NaN and Infinity included (json.dumps writes them)
    st.integers(1, 300_000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([b"", b"1", b"0", b"NaN", b'{"state":"online"}', DEEP]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(nodes, kinds, payloads), min_size=1, max_size=8))
def test_any_batch_of_messages_leaves_the_worker_running_and_the_api_strict(tmp_path_factory, messages):
    w = Worker(make_settings(tmp_path_factory.mktemp("fuzz")))
    try:
        run(w, [(f"ovr/{n}/{k}", p) for n, k, p in messages] + [("ovr/edge-z/status", status())])
        assert states(w).get("edge-z") == "online"  # the message after the batch is never lost
        assert w.stats.handled + w.stats.dropped == len(messages) + 1
        strict_loads(fleet.list_nodes_json(w.conn, w.settings))
        for (event_id,) in w.conn.execute("SELECT DISTINCT event_id FROM reports").fetchall():
            strict_loads(json.dumps(reports.aggregate(w.conn, event_id), allow_nan=False))
    finally:
        w.conn.close()
