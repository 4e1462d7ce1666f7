"""fleet-edge-a loses the WAN for 10 minutes (its podman network is disconnected). The time is
used: a command is queued for it at the cloud, an event of fleet-edge-a is ended in the cloud,
a rollout with it as canary must halt without touching fleet-edge-b, and fleet-edge-b's
credential is rotated. Then the WAN comes back and the cloud must end with every downsampled
sample fleet-edge-a produced while cut off, at the original timestamps, the queued command must
arrive, and the event must end on fleet-edge-a too.

The module needs nothing from the others but a converged fleet: its event, subscribers and
feeder are its own."""

from __future__ import annotations

import json
import subprocess
import time
import uuid

import pytest
from conftest import wait_for
from fleetlib import (
    CLOUD,
    EDGE_A,
    EDGE_B,
    INTERVAL,
    WAN,
    bridge_up,
    cloud_api,
    cloud_pub,
    cloud_shortfall,
    edge_auth,
    edge_event_state,
    export,
    max_gap,
    now,
    playbook,
    query,
    registry_event,
    secret,
    sh,
    span,
    start_event,
    start_sub,
    sub_messages,
)

OUTAGE = 600
RUN = uuid.uuid4().hex[:8]
state: dict[str, float | str] = {}


def cloud_reachable(src: str) -> bool:
    return sh(src, f"curl -s -o /dev/null -m 3 --cacert /etc/ovr/cloud-ca.pem https://{CLOUD}/", check=False).returncode == 0


def test_an_event_of_edge_a_is_in_the_registry_before_the_cut():
    event_id = start_event(EDGE_A, f"Outage job {RUN}")
    state["event"] = event_id
    got = registry_event(event_id)
    assert got["id"] == event_id and got["state"] == "active"


def test_cut_edge_a_off_the_wan():
    # A subscriber on fleet-edge-a's own broker, to see what the bridge delivers on reconnect.
    start_sub(EDGE_A, f"-h 127.0.0.1 {edge_auth()} -q 1 -t ovr/{EDGE_A}/cmd/fleet-outage -C 1 -W {OUTAGE + 600}", f"/tmp/outage-{RUN}")
    subprocess.run(["podman", "network", "disconnect", WAN, EDGE_A], check=True, capture_output=True)
    state["cut"] = now()
    assert not cloud_reachable(EDGE_A)
    # podman restarts the network's DNS on a disconnect: fleet-edge-b may miss a lookup or two.
    wait_for(lambda: cloud_reachable(EDGE_B), timeout=30, what="fleet-edge-b still reaching the cloud")
    wait_for(lambda: not bridge_up(EDGE_A), timeout=120, interval=5, what="the cloud noticing fleet-edge-a is gone")


def test_command_for_the_offline_node_is_queued():
    cloud_pub(f"ovr/{EDGE_A}/cmd/fleet-outage", RUN)


def test_ending_in_the_cloud_an_event_of_the_cut_off_edge():
    # The first half of test_an_edge_cut_off_during_the_end_ends_it_when_back (below): the cloud
    # noticed the cut (test_cut_edge_a_off_the_wan), and ends the event all the same.
    status, doc = cloud_api("POST", f"/api/events/{state['event']}/end")
    assert status == 200, doc
    state["ended"] = now()


def test_rollout_halts_at_a_failing_canary():
    before_b = sh(EDGE_B, "systemctl show -p ExecStart victoria-metrics").stdout
    assert "-retentionPeriod=400d" in before_b
    result = playbook("playbooks/upgrade.yml", "-e", json.dumps({
        "upgrade_canary": EDGE_A, "upgrade_batch_size": 5, "upgrade_health_timeout": 40,
        "edge_vm_retention": "399d"}))
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    assert f"ROLLOUT HALTED at {EDGE_A} (the canary)" in out, out[-3000:]
    assert "fresh data of this node in the cloud" in out, out[-3000:]
    assert f"Not upgraded: {EDGE_B}" in out, out[-3000:]
    # The canary got the change; the rest of the fleet was not touched at all.
    assert "-retentionPeriod=399d" in sh(EDGE_A, "systemctl show -p ExecStart victoria-metrics").stdout
    assert sh(EDGE_B, "systemctl show -p ExecStart victoria-metrics").stdout == before_b
    assert f"{EDGE_B}" not in out.split("Upgrade the edges, canary first", 1)[1].split("ROLLOUT HALTED", 1)[0]


def test_rotating_a_credential_loses_no_sample():
    # The GX publishes only what changes, and the simulated plant can sit still for minutes: a
    # feeder on fleet-edge-b writes one sample a second into its vmagent, so every aggregation
    # interval of the rotation has input and must have its sample at the cloud.
    metric = f"ovr_test_rotation_{RUN}"
    sh(EDGE_B, f"(setsid sh -c 'i=0; while [ ! -e /tmp/stop-{RUN} ]; do i=$((i+1)); "
               f"curl -s -o /dev/null --data-binary \"{metric} $i\" http://127.0.0.1:8429/api/v1/import/prometheus; "
               f"sleep 1; done' > /dev/null 2>&1 &)")
    fed_from = now()

    def at_cloud(after: float, count: int = 1) -> list[int]:
        """The feeder's samples at the cloud with timestamps after `after`, once there are `count`."""
        got = [t for ts in export(CLOUD, f'{{__name__="{metric}", node_id="{EDGE_B}"}}', fed_from, now() + 60).values()
               for t in ts if t / 1000 > after]
        return got if len(got) >= count else []
    # The feed reaches the cloud, over whole intervals, before the rotation starts.
    wait_for(lambda: at_cloud(fed_from + INTERVAL, 2), timeout=120, interval=2, what="the feeder's samples at the cloud")
    old = (secret(EDGE_B, "remote_write"), secret(EDGE_B, "mqtt"))
    try:
        result = playbook("site.yml", "--limit", f"{CLOUD},{EDGE_B}",
                          "-e", json.dumps({"cloud_rotate_credentials": [EDGE_B]}))
        assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
        new = (secret(EDGE_B, "remote_write"), secret(EDGE_B, "mqtt"))
        assert new[0] != old[0] and new[1] != old[1]

        # The old password is refused now, the new one accepted; the bridge is back with the new one.
        def code(password: str) -> str:
            return sh(EDGE_B, "curl -s -o /dev/null -w '%{http_code}' --cacert /etc/ovr/cloud-ca.pem "
                              f"-u {EDGE_B}:{password} --data-binary 'ovr_rotation value=1' https://{CLOUD}/write").stdout
        assert code(old[0]) == "401"
        assert code(new[0]) == "204"
        wait_for(lambda: bridge_up(EDGE_B), timeout=90, interval=2, what="fleet-edge-b's bridge with the new password")
        rotated = now()
        # The checked span reaches an interval past the rotation; the cloud holds the sample of
        # the interval after that, so every sample of the span has arrived.
        wait_for(lambda: at_cloud(rotated + 2 * INTERVAL), timeout=120, interval=2,
                 what="the feeder's samples at the cloud after the rotation")
    finally:
        sh(EDGE_B, f"touch /tmp/stop-{RUN}", check=False)
    start, end = fed_from + INTERVAL, rotated + INTERVAL
    edge = list(export(EDGE_B, metric, start, end).values())
    assert len(edge) == 1 and max_gap(edge[0]) <= 3, "the feeder on fleet-edge-b did not run steadily"
    # vmagent kept writing through the switch: one sample per interval, none missing.
    cloud = list(export(CLOUD, f'{{__name__="{metric}", node_id="{EDGE_B}"}}', start, end).values())
    assert len(cloud) == 1, f"the feeder's series at the cloud: {cloud}"
    assert len(cloud[0]) >= (end - start) / INTERVAL - 2, (len(cloud[0]), end - start)
    assert max_gap(cloud[0]) <= 1.5 * INTERVAL + 1, f"gap of {max_gap(cloud[0])} s at the cloud around the rotation"


def test_the_cut_off_edge_cannot_know_of_the_end():
    # Minutes after the end at the cloud (the rollout and the rotation ran since), the event is
    # still active on fleet-edge-a: nothing reaches it without the WAN.
    assert now() - float(state["ended"]) > 60
    assert edge_event_state(EDGE_A, state["event"]) == "active"


def test_restore_after_ten_minutes():
    wait = float(state["cut"]) + OUTAGE - now()
    if wait > 0:
        time.sleep(wait)
    subprocess.run(["podman", "network", "connect", WAN, EDGE_A], check=True, capture_output=True)
    state["restored"] = now()
    wait_for(lambda: cloud_reachable(EDGE_A), timeout=60, what="fleet-edge-a reaching the cloud again")
    wait_for(lambda: bridge_up(EDGE_A), timeout=120, interval=2, what="fleet-edge-a's bridge back")

    # The cloud queue on fleet-edge-a drains.
    def drained():
        metrics = sh(EDGE_A, "curl -sf http://127.0.0.1:8429/metrics").stdout
        pending = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("vm_persistentqueue_bytes_pending")]
        return pending and sum(pending) == 0
    wait_for(drained, timeout=300, interval=2, what="fleet-edge-a's disk queue to the cloud to drain")


def test_cloud_has_every_sample_of_the_outage():
    start, end = float(state["cut"]) + INTERVAL, float(state["restored"])
    short, steady, cloud_by_key = cloud_shortfall(EDGE_A, start, end)
    # Series the GX updated at least every few seconds while they existed (some exist only part
    # of the time, e.g. the battery's time-to-go while discharging) need one sample per interval.
    assert len(steady) >= 5, f"only {len(steady)} steady series on the edge"
    assert not short, f"series with samples missing at the cloud over the outage: {short}"
    # Original timestamps: a series that lived through the whole outage has its cloud samples
    # spread over the outage, not piled up at the restore.
    longest = max(steady, key=lambda k: span(steady[k]))
    assert span(steady[longest]) >= 0.8 * (end - start), "no steady series covers the outage"
    some = cloud_by_key[longest]
    assert some[0] / 1000 <= steady[longest][0] / 1000 + 2 * INTERVAL
    assert some[len(some) // 2] / 1000 < float(state["restored"]) - OUTAGE / 3


def test_queued_command_arrives_after_reconnect():
    got = wait_for(lambda: sub_messages(EDGE_A, f"/tmp/outage-{RUN}"), timeout=60,
                   what="the command queued while fleet-edge-a was offline")
    assert got == [f"ovr/{EDGE_A}/cmd/fleet-outage {RUN}"]


def test_an_edge_cut_off_during_the_end_ends_it_when_back():
    wait_for(lambda: edge_event_state(EDGE_A, state["event"]) == "ended", 180, 2, "the end on fleet-edge-a after reconnecting")


@pytest.mark.parametrize("node", [EDGE_A, EDGE_B])
def test_fresh_data_from_both_nodes_after_the_outage(node):
    rows = wait_for(lambda: query(CLOUD, f'max(timestamp(victron_system_dc_battery_soc_value{{node_id="{node}"}}))'),
                    timeout=60, what=f"fresh data of {node}")
    assert now() - float(rows[0]["value"][1]) < 90
