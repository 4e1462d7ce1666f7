"""Events across the fleet (issues 5 and 6 together): an event started on an edge is in the
cloud registry under the same id; ending it in the cloud ends it on the edge; each edge's report
arrives, is acknowledged and is part of the event's aggregate in the cloud. (An edge cut off
while its event is ended in the cloud ends it when back: test_2_outage, during its WAN cut.)"""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import wait_for
from fleetlib import EDGE_A, EDGE_B, cloud_api, edge_api, edge_event_state, registry_event, start_event

RUN = uuid.uuid4().hex[:6]


NODES = [EDGE_A, EDGE_B]


@pytest.fixture(scope="module")
def started() -> dict[str, str]:
    """An event started on each edge (once for the module): node -> event id."""
    return {node: start_event(node, f"Harbour job {node[-1]} {RUN}") for node in NODES}


@pytest.fixture(scope="module")
def ended(started) -> dict[str, str]:
    """The same events, ended from the cloud and seen ended on their edges. Each test asks for
    the state it needs, so any one of them runs alone (`-k`) and a failure does not cascade;
    both edges' reports are on their way at the same time."""
    for node, event_id in started.items():
        if edge_event_state(node, event_id) != "ended":
            status, doc = cloud_api("POST", f"/api/events/{event_id}/end")
            assert status == 200, doc
    for node, event_id in started.items():
        wait_for(lambda n=node, e=event_id: edge_event_state(n, e) == "ended", 60, 1, f"the end on {node}")
    return started


@pytest.mark.parametrize("node", NODES)
def test_event_started_on_an_edge_is_in_the_cloud_registry_with_its_id(node, started):
    got = registry_event(started[node])
    assert got["id"] == started[node] and got["state"] == "active"
    assert node in {p["node_id"] for p in got["nodes"]}


@pytest.mark.parametrize("node", NODES)
def test_ending_in_the_cloud_ends_it_on_the_edge(node, ended):
    assert edge_event_state(node, ended[node]) == "ended"


@pytest.mark.parametrize("node", NODES)
def test_each_edge_report_is_acknowledged_and_in_the_aggregate(node, ended):
    event_id = ended[node]
    reports = wait_for(lambda: [r for r in cloud_api("GET", f"/api/reports?event_id={event_id}")[1].get("reports", [])
                                if r.get("node_id") == node], 240, 2, f"{node}'s report in the cloud")
    rid = reports[0]["report_id"] if "report_id" in reports[0] else reports[0]["id"]

    # The edge saw the acknowledgement: its outbox is empty for that report. (The ack comes
    # back over the bridge a moment after the cloud stored the report: waited for, not slept.)
    def acked() -> list[dict]:
        mine = [r for r in edge_api(node, "GET", "/api/reports")[1].get("reports", []) if r.get("report_id", r.get("id")) == rid]
        return mine if mine and mine[0].get("acked_at") else []
    mine = wait_for(acked, 30, 1, f"the cloud's acknowledgement of {node}'s report at {node}")
    assert mine and mine[0].get("acked_at"), mine
    status, agg = cloud_api("GET", f"/api/events/{event_id}/aggregate")
    assert status == 200, agg
    assert node in json.dumps(agg)
