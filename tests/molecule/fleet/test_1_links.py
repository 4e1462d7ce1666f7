"""Both edges report to the cloud with their own identity, over TLS, downsampled; the MQTT
bridge carries each node's topics out and the cloud's commands in; nothing else gets in."""

from __future__ import annotations

import itertools
import json
import shlex
import statistics
import uuid

import pytest
from conftest import wait_for
from fleetlib import (
    CLOUD,
    DEPLOYMENT,
    EDGE_A,
    EDGE_B,
    INTERVAL,
    bridge_up,
    cloud_pub,
    cloud_sub,
    edge_auth,
    export,
    fleet_auth,
    now,
    query,
    secret,
    series,
    sh,
    start_sub,
    sub_messages,
)

RUN = uuid.uuid4().hex[:8]


def test_series_of_both_nodes_arrive_with_their_identity():
    def labelled():
        rows = query(CLOUD, 'count by (node_id, deployment_id) ({__name__=~"victron_.+"})')
        return {r["metric"].get("node_id"): r["metric"].get("deployment_id") for r in rows}
    got = wait_for(lambda: (lambda d: d if len(d) >= 2 else None)(labelled()), timeout=180, interval=5,
                   what="GX series of both edges in the cloud")
    assert got == DEPLOYMENT
    # Every series carries the GX's identity too, as on the edge.
    rows = query(CLOUD, 'count by (node_id) ({__name__="victron_system_dc_battery_soc_value", portal_id!="", system_id!=""})')
    assert {r["metric"]["node_id"] for r in rows} == {EDGE_A, EDGE_B}


def test_cloud_gets_the_downsampled_interval():
    end = now() - 20
    start = end - 120
    edge = export(EDGE_A, '{__name__=~"victron_.+"}', start, end)
    cloud = export(CLOUD, f'{{__name__=~"victron_.+", node_id="{EDGE_A}"}}', start, end)
    assert cloud, "no GX series of fleet-edge-a in the cloud"
    # A series the GX updates often: many raw samples on the edge, one per interval in the cloud.
    busy = max(edge, key=lambda k: len(edge[k]))
    name = json.loads(busy)["__name__"]
    assert len(edge[busy]) >= 3 * 120 / INTERVAL, (name, len(edge[busy]))
    cloud_ts = next(v for k, v in cloud.items() if json.loads(k)["__name__"] == name
                    and json.loads(k).get("system_id") == json.loads(busy).get("system_id"))
    steps = [(b - a) / 1000 for a, b in itertools.pairwise(cloud_ts)]
    assert statistics.median(steps) == pytest.approx(INTERVAL, abs=1), steps


def test_bridge_carries_node_topics_out():
    payload = json.dumps({"state": "online", "version": "fleet-test", "ts": int(now() * 1000), "schema": 1, "run": RUN})
    sh(EDGE_A, f"mosquitto_pub -h 127.0.0.1 {edge_auth()} -q 1 -r -t ovr/{EDGE_A}/status -m {shlex.quote(payload)}")
    got = wait_for(lambda: [m for m in cloud_sub(f"ovr/{EDGE_A}/status", wait=3) if RUN in m], timeout=30,
                   what="the edge's status at the cloud")
    assert got[0].startswith(f"ovr/{EDGE_A}/status ")
    assert bridge_up(EDGE_A) and bridge_up(EDGE_B)


def test_bridge_carries_commands_and_registry_in():
    start_sub(EDGE_B, f"-h 127.0.0.1 {edge_auth()} -t ovr/{EDGE_B}/cmd/fleet-test -t ovr/registry/fleet-test "
                      f"-t ovr/{EDGE_A}/cmd/fleet-test -C 2 -W 30", f"/tmp/in-{RUN}")
    cloud_pub(f"ovr/{EDGE_B}/cmd/fleet-test", RUN)
    cloud_pub(f"ovr/{EDGE_A}/cmd/fleet-test", "not-for-b-" + RUN)
    cloud_pub("ovr/registry/fleet-test", RUN)
    got = wait_for(lambda: (lambda m: m if len(m) >= 2 else None)(sub_messages(EDGE_B, f"/tmp/in-{RUN}")),
                   timeout=30, what="cloud messages at fleet-edge-b")
    assert sorted(got) == sorted([f"ovr/{EDGE_B}/cmd/fleet-test {RUN}", f"ovr/registry/fleet-test {RUN}"])


# ---- identity and refusal ------------------------------------------------------------------

def curl_write(src: str, user: str, password: str, body: str, path: str = "/write") -> int:
    out = sh(src, "curl -s -o /dev/null -w '%{http_code}' --cacert /etc/ovr/cloud-ca.pem "
                  f"-u {shlex.quote(user + ':' + password)} --data-binary {shlex.quote(body)} "
                  f"{shlex.quote(f'https://{CLOUD}{path}')}")
    return int(out.stdout)


def test_a_node_writing_as_another_lands_as_itself():
    body = f"ovr_fleet_forgery,node_id={EDGE_B},run={RUN} value=1"
    assert curl_write(EDGE_A, EDGE_A, secret(EDGE_A, "remote_write"), body) == 204
    rows = wait_for(lambda: series(CLOUD, f'ovr_fleet_forgery_value{{run="{RUN}"}}'), timeout=30,
                    what="the forged sample")
    assert [r["node_id"] for r in rows] == [EDGE_A]
    # vmagent's protocol handshake cannot carry data past the node label: Caddy answers it on
    # /api/v1/write itself (ADR 10), and on the Influx path it is an ordinary write, labelled as
    # the sender.
    body2 = f"ovr_fleet_forgery2,node_id={EDGE_B},run={RUN} value=1"
    path = f"/write?get_vm_proto_version=1&extra_label=node_id={EDGE_B}"
    assert curl_write(EDGE_A, EDGE_A, secret(EDGE_A, "remote_write"), body2, path) == 204
    rows = wait_for(lambda: series(CLOUD, f'ovr_fleet_forgery2_value{{run="{RUN}"}}'), timeout=30,
                    what="the second forged sample")
    assert [r["node_id"] for r in rows] == [EDGE_A]
    # With another node's password, or none, nothing is written.
    assert curl_write(EDGE_A, EDGE_B, secret(EDGE_A, "remote_write"), body) == 401
    assert curl_write(EDGE_A, "", "", body) == 401


def mqtt_as(src: str, user: str, password: str, args: str, timeout: int = 20) -> tuple[int, str]:
    cred = f"-u {shlex.quote(user)} -P {shlex.quote(password)}" if user else ""
    out = sh(src, f"{args} -h {CLOUD} -p 8883 --cafile /etc/mosquitto/ca_certificates/ovr-cloud-ca.crt {cred}",
             check=False, timeout=timeout + 30)
    return out.returncode, out.stdout + out.stderr


def test_a_node_cannot_publish_or_read_as_another_node():
    # Connecting with fleet-edge-b's user name but fleet-edge-a's password is refused outright.
    rc, out = mqtt_as(EDGE_A, EDGE_B, secret(EDGE_A, "mqtt"), f"mosquitto_pub -q 1 -t ovr/{EDGE_B}/status -m x")
    assert rc != 0 and "not authori" in out.lower(), out
    # The cloud ties the client id to the user, so a node's credentials have one session: its
    # bridge's. fleet-edge-b's bridge is stopped while the test speaks as fleet-edge-b (a clean
    # session, which also drops the bridge's queue - nothing is addressed to it now).
    #
    # What must not arrive is followed by a marker that must, from the same publisher to the
    # same subscriber: the broker handles one publish after the other, so once the marker is
    # in, a message that was going to be delivered would be too - no sleep to guess it has not.
    start_sub(CLOUD, f"-h 127.0.0.1 {fleet_auth()} -t ovr/{EDGE_A}/forged -C 1 -W 120", f"/tmp/forged-{RUN}")
    sh(EDGE_B, "systemctl stop mosquitto")
    try:
        pw_b = secret(EDGE_B, "mqtt")
        # fleet-edge-b may read the registry, never fleet-edge-a's commands.
        start_sub(EDGE_B, f"-t ovr/{EDGE_A}/cmd/# -t ovr/registry/fleet-marker -h {CLOUD} -p 8883 "
                          f"--cafile /etc/mosquitto/ca_certificates/ovr-cloud-ca.crt -u {EDGE_B} -P {shlex.quote(pw_b)} "
                          f"-C 1 -W 60", f"/tmp/stolen-{RUN}")
        cloud_pub(f"ovr/{EDGE_A}/cmd/fleet-test", "secret-for-a-" + RUN)
        cloud_pub("ovr/registry/fleet-marker", "marker-" + RUN)
        stolen = wait_for(lambda: sub_messages(EDGE_B, f"/tmp/stolen-{RUN}"), timeout=30,
                          what="the marker after fleet-edge-a's command at fleet-edge-b's subscriber")
        assert stolen == [f"ovr/registry/fleet-marker marker-{RUN}"], f"fleet-edge-b read fleet-edge-a's command: {stolen}"
        rc, out = mqtt_as(EDGE_B, EDGE_B, pw_b, f"mosquitto_pub -q 1 -i probe-{RUN} -t ovr/{EDGE_A}/forged -m {RUN}")
        assert rc == 0, out  # MQTT 3.1.1 cannot tell the client; the broker drops it
    finally:
        sh(EDGE_B, "systemctl start mosquitto")
    # The forged message was acknowledged before the marker was sent: it is in by now, or never.
    cloud_pub(f"ovr/{EDGE_A}/forged", "marker-" + RUN)
    forged = wait_for(lambda: sub_messages(CLOUD, f"/tmp/forged-{RUN}"), timeout=30,
                      what="the marker after the forged message at the cloud's subscriber")
    assert forged == [f"ovr/{EDGE_A}/forged marker-{RUN}"], f"fleet-edge-b published as fleet-edge-a: {forged}"
    wait_for(lambda: bridge_up(EDGE_B), timeout=60, what="fleet-edge-b's bridge back")


def test_anonymous_is_refused_on_every_cloud_port():
    rc, out = mqtt_as(EDGE_A, "", "", "mosquitto_pub -q 1 -t ovr/anon -m x")
    assert rc != 0 and "not authori" in out.lower(), out
    assert curl_write(EDGE_A, "", "", "anon value=1") == 401
    code = sh(EDGE_A, "curl -s -o /dev/null -w '%{http_code}' --cacert /etc/ovr/cloud-ca.pem "
                      f"'https://{CLOUD}/api/v1/query?query=up'").stdout
    assert code == "401"
    # Everything else on the cloud is loopback only or closed to the WAN.
    for port in (1883, 8428, 9001, 2019, 8089, 80):
        probe = sh(EDGE_A, f"python3 -c \"import socket; s=socket.socket(); s.settimeout(3); "
                           f"print(s.connect_ex(('{CLOUD}', {port})))\"", check=False)
        result = probe.stdout.strip()
        if port == 80:   # Caddy's HTTP->HTTPS redirect only
            continue
        assert result != "0", f"port {port} of the cloud is reachable from the WAN"
