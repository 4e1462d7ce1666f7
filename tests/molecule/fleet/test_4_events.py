"""Events across the fleet (issues 5 and 6 together): an event started on an edge is in the
cloud registry under the same id; ending it in the cloud ends it on the edge, also on an edge
that was cut off while it was ended; each edge's report arrives, is acknowledged and is part of
the event's aggregate in the cloud."""

from __future__ import annotations

import json
import shlex
import subprocess
import time
import uuid

import pytest
from conftest import wait_for
from fleetlib import CLOUD, EDGE_A, EDGE_B, WAN, bridge_up, secret, sh

RUN = uuid.uuid4().hex[:6]
state: dict[str, str] = {}


def http(container: str, method: str, url: str, user: str, body: dict | None = None) -> tuple[int, dict]:
    cmd = ["curl", "-s", "-o", "/tmp/ovr-fleet-resp", "-w", "%{http_code}", "-X", method, "-u", user]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    status = int(sh(container, shlex.join([*cmd, url])).stdout)
    text = sh(container, "cat /tmp/ovr-fleet-resp").stdout
    return status, (json.loads(text) if text.startswith(("{", "[")) else {"raw": text})


def edge_api(node: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    return http(node, method, "http://127.0.0.1:8088" + path, f"fleet-tech:{secret('events-fleet-tech')}", body)


def cloud_api(method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    return http(CLOUD, method, "http://127.0.0.1:8089" + path, f"alice:{secret('operator-alice')}", body)


def a_system(node: str) -> str:
    systems = wait_for(lambda: edge_api(node, "GET", "/api/systems")[1].get("systems"), 90, 3,
                       f"GX systems on {node}")
    return systems[0]["system_id"]


def start_event(node: str, name: str) -> str:
    status, doc = edge_api(node, "POST", "/api/events", {"systems": [a_system(node)], "name": name,
                                                         "location": "Quay 3", "note": "fleet test"})
    assert status == 201, doc
    return doc["event"]["id"]


def edge_event_state(node: str, event_id: str) -> str:
    return edge_api(node, "GET", f"/api/events/{event_id}")[1].get("state", "")


@pytest.mark.parametrize("node", [EDGE_A, EDGE_B])
def test_event_started_on_an_edge_is_in_the_cloud_registry_with_its_id(node):
    event_id = start_event(node, f"Harbour job {node[-1]} {RUN}")
    state[node] = event_id
    got = wait_for(lambda: (lambda r: r[1] if r[0] == 200 else None)(cloud_api("GET", f"/api/events/{event_id}")),
                   60, 2, f"event {event_id} in the cloud registry")
    assert got["id"] == event_id and got["state"] == "active"
    assert node in {p["node_id"] for p in got["nodes"]}


def test_ending_in_the_cloud_ends_it_on_the_edge():
    event_id = state[EDGE_B]
    status, doc = cloud_api("POST", f"/api/events/{event_id}/end")
    assert status == 200, doc
    wait_for(lambda: edge_event_state(EDGE_B, event_id) == "ended", 60, 2, "the end on fleet-edge-b")


def test_an_edge_cut_off_during_the_end_ends_it_when_back():
    event_id = state[EDGE_A]
    subprocess.run(["podman", "network", "disconnect", WAN, EDGE_A], check=True, capture_output=True)
    try:
        wait_for(lambda: not bridge_up(EDGE_A), timeout=120, interval=5, what="the cloud noticing fleet-edge-a is gone")
        status, doc = cloud_api("POST", f"/api/events/{event_id}/end")
        assert status == 200, doc
        time.sleep(10)
        assert edge_event_state(EDGE_A, event_id) == "active"  # it cannot know yet
    finally:
        subprocess.run(["podman", "network", "connect", WAN, EDGE_A], check=True, capture_output=True)
    wait_for(lambda: edge_event_state(EDGE_A, event_id) == "ended", 180, 3, "the end on fleet-edge-a after reconnecting")


@pytest.mark.parametrize("node", [EDGE_A, EDGE_B])
def test_each_edge_report_is_acknowledged_and_in_the_aggregate(node):
    event_id = state[node]
    reports = wait_for(lambda: [r for r in cloud_api("GET", f"/api/reports?event_id={event_id}")[1].get("reports", [])
                                if r.get("node_id") == node], 240, 5, f"{node}'s report in the cloud")
    # The edge saw the acknowledgement: its outbox is empty for that report.
    rid = reports[0]["report_id"] if "report_id" in reports[0] else reports[0]["id"]
    edge_reports = edge_api(node, "GET", "/api/reports")[1]
    mine = [r for r in edge_reports.get("reports", []) if r.get("report_id", r.get("id")) == rid]
    assert mine and mine[0].get("acked_at"), mine
    status, agg = cloud_api("GET", f"/api/events/{event_id}/aggregate")
    assert status == 200, agg
    assert node in json.dumps(agg)
