"""The fleet service on the cloud (molecule/cloud): hardened units, operators only (through
Caddy and directly on 8089), viewer vs admin, and the MQTT protocol with a simulated node that
publishes with edge-a's credentials over the 8883 TLS listener from the probe.

The cross-node checks with real edges are in the fleet scenario.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import time
import uuid

import pytest
from conftest import wait_for
from test_cloud import CA, CLOUD, PROBE, URL, credentials_dir, put_file, secret

RUN = uuid.uuid4().hex[:8]
EVENT = str(uuid.uuid4())


@pytest.fixture(scope="module")
def cloud(hosts):
    return hosts(CLOUD)


@pytest.fixture(scope="module")
def probe(hosts):
    put_file(PROBE, CA, (credentials_dir() / "cloud-ca.pem").read_text(), "0644")
    return hosts(PROBE)


def alice() -> tuple[str, str]:
    return ("alice", secret("operator-alice"))


def bob() -> tuple[str, str]:
    return ("bob", secret("operator-bob"))


def api(probe, method: str, path: str, user: tuple[str, str] | None = None, body: dict | None = None) -> tuple[int, object]:
    """The fleet API through Caddy, from the probe."""
    args = ["curl", "-s", "-g", "--cacert", CA, "-X", method, "-w", shlex.quote("\\n%{http_code}")]
    if user:
        args += ["-u", shlex.quote(f"{user[0]}:{user[1]}")]
    if body is not None:
        args += ["-H", "'Content-Type: application/json'", "--data-binary", shlex.quote(json.dumps(body))]
    out = probe.run(" ".join(args) + " " + shlex.quote(URL + path))
    assert out.rc == 0, out.stderr
    text, _, code = out.stdout.rpartition("\n")
    try:
        return int(code), json.loads(text)
    except ValueError:
        return int(code), text


def node_pub(probe, topic: str, payload: dict, retain: bool = False) -> None:
    user, password = "edge-a", secret("edge-a", "mqtt")
    body = json.dumps({"ts": int(time.time() * 1000), "schema": 1, **payload})
    out = probe.run(f"mosquitto_pub -h {CLOUD} -p 8883 --cafile {CA} -u {user} -P {shlex.quote(password)} -q 1 "
                    f"{'-r ' if retain else ''}-t {topic} -m {shlex.quote(body)}")
    assert out.rc == 0, out.stderr


# ---- units ---------------------------------------------------------------------------------

@pytest.mark.parametrize("unit", ["ovr-fleet.service", "ovr-fleet-worker.service"])
def test_fleet_units_active_and_hardened(cloud, unit):
    svc = cloud.service(unit)
    assert svc.is_enabled and svc.is_running
    props = svc.systemd_properties
    assert props["User"] == "ovr"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "PrivateDevices": "yes", "Restart": "on-failure"}.items():
        assert props[key] == value, key
    assert props.get("CapabilityBoundingSet", "") == ""
    assert props["ReadWritePaths"].split() == ["/var/lib/ovr/fleet"]
    status = cloud.file(f"/proc/{props['MainPID']}/status").content_string
    assert re.search(r"^CapBnd:\s+0000000000000000$", status, re.M)


def test_api_listens_on_loopback_only(cloud):
    addrs = {line.split()[3] for line in cloud.check_output("ss -Hltn").splitlines()}
    assert "127.0.0.1:8089" in addrs
    assert not any(a.endswith(":8089") and a != "127.0.0.1:8089" for a in addrs)


def test_secrets_and_database_files(cloud):
    ops = cloud.file("/etc/ovr/secrets/fleet-operators.json")
    assert (ops.user, ops.group, ops.mode) == ("root", "ovr", 0o640)
    doc = json.loads(ops.content_string)
    assert {o["name"]: o["role"] for o in doc["operators"]} == {"alice": "admin", "bob": "viewer"}
    assert secret("operator-alice") not in ops.content_string
    db = cloud.file("/var/lib/ovr/fleet/fleet.db")
    assert db.user == "ovr" and db.mode & 0o007 == 0


# ---- auth -----------------------------------------------------------------------------------

def test_anonymous_is_refused_through_caddy_and_directly(cloud, probe):
    for path in ("/api/nodes", "/api/events", "/api/openapi.json"):
        assert api(probe, "GET", path)[0] == 401
        assert api(probe, "GET", path, ("alice", "wrong-password"))[0] == 401
        assert api(probe, "GET", path, ("edge-a", secret("edge-a", "remote_write")))[0] == 401
        direct = cloud.run(f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:8089{path}")
        assert direct.stdout == "401", path
    # Forged upstream headers do not help on the loopback port either.
    direct = cloud.run("curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-User: alice' http://127.0.0.1:8089/api/nodes")
    assert direct.stdout == "401"
    assert cloud.run("curl -sf http://127.0.0.1:8089/api/health").rc == 0


def test_viewer_reads_but_cannot_change(probe):
    code, who = api(probe, "GET", "/api/whoami", bob())
    assert (code, who) == (200, {"name": "bob", "role": "viewer"})
    assert api(probe, "GET", "/api/nodes", bob())[0] == 200
    code, body = api(probe, "POST", "/api/events", bob(), {"name": f"viewer-{RUN}"})
    assert code == 403 and "viewer" in body["error"]
    code, body = api(probe, "POST", "/api/events", alice(), {"name": f"Molecule {RUN}"})
    assert code == 201, body
    code, body = api(probe, "POST", "/api/events", alice(), {"name": f"molecule  {RUN}"})
    assert code == 409 and body["suggestion"]


def test_openapi_document_is_served(probe):
    code, doc = api(probe, "GET", "/api/openapi.json", bob())
    assert code == 200 and doc["openapi"].startswith("3.") and "/api/nodes" in doc["paths"]


# ---- MQTT: a simulated node ------------------------------------------------------------------

def test_simulated_node_appears_in_the_fleet_list(probe):
    node_pub(probe, "ovr/edge-a/status", {"state": "online", "version": f"test-{RUN}", "deployment_id": "molecule"}, retain=True)
    node_pub(probe, "ovr/edge-a/realtime", {"systems": [{"system_id": "gx-1", "soc": 64.5, "power_out": 1500,
                                                         "gps": {"lat": 52.37, "lon": 4.89}}]}, retain=True)

    def listed():
        code, body = api(probe, "GET", "/api/nodes?deployment_id=molecule", bob())
        return [n for n in body["nodes"] if n["node_id"] == "edge-a" and n["version"] == f"test-{RUN}" and n["soc"] == 64.5] \
            if code == 200 else None
    [node] = wait_for(listed, timeout=20, what="edge-a in the fleet list")
    assert node["online"] and node["location_source"] == "gps" and node["systems"][0]["system_id"] == "gx-1"


def watch(host, unit: str, cmd: str) -> None:
    """A subscriber running in the background (systemd-run) that writes what it gets to /tmp/<unit>."""
    host.run(f"systemctl stop {unit}; systemctl reset-failed {unit}; rm -f /tmp/{unit}")
    host.check_output(f"systemd-run --unit {unit} sh -c {shlex.quote(cmd + f' > /tmp/{unit}')}")


def watched(host, unit: str) -> list[tuple[str, dict]]:
    out = []
    for line in host.run(f"cat /tmp/{unit}").stdout.splitlines():
        topic, _, payload = line.partition(" ")
        with contextlib.suppress(ValueError):
            out.append((topic, json.loads(payload)))
    return out


def test_event_lifecycle_end_registry_and_report(cloud, probe):
    node_pub(probe, "ovr/edge-a/events", {"op": "start", "event": {"id": EVENT, "name": f"Edge event {RUN}", "temp": False},
                                          "system_id": "gx-1", "location": "pier"})
    ev = wait_for(lambda: (r := api(probe, "GET", f"/api/events/{EVENT}", bob()))[0] == 200 and r[1], timeout=20,
                  what="the edge's event in the registry")
    assert ev["id"] == EVENT and ev["state"] == "active" and ev["nodes"][0]["node_id"] == "edge-a"

    # Live listeners: another node (edge-b, over TLS with its own credentials) for the broadcast
    # end, and the broker's loopback listener (the scenario's fleet stand-in) for edge-a's ack.
    watch(probe, f"fleet-end-{RUN}", f"mosquitto_sub -h {CLOUD} -p 8883 --cafile {CA} -u edge-b "
                                     f"-P {shlex.quote(secret('edge-b', 'mqtt'))} -q 1 -v -W 60 -C 1 -t 'ovr/events/{EVENT}/end'")
    watch(cloud, f"fleet-ack-{RUN}", "mosquitto_sub -h 127.0.0.1 -p 1883 -u molecule-fleet "
                                     f"-P {shlex.quote(secret('mqtt-molecule-fleet'))} -q 1 -v -W 60 -C 1 -t ovr/edge-a/cmd/ack")
    time.sleep(3)  # both subscribed

    node_pub(probe, "ovr/edge-a/reports", {"report_id": f"rep-{RUN}", "hash": f"sha256:{RUN}", "event": {"id": EVENT},
                                           "system_id": "gx-1", "report": {"summary": {"energy_wh": 4321, "peak_w": 2100}},
                                           "html": "<h1>edge-a</h1>"})
    acks = wait_for(lambda: [p for t, p in watched(cloud, f"fleet-ack-{RUN}") if t == "ovr/edge-a/cmd/ack"], timeout=20,
                    what="the report's ack on ovr/edge-a/cmd/ack")
    assert acks[0]["report_id"] == f"rep-{RUN}" and acks[0]["schema"] == 1 and isinstance(acks[0]["ts"], int)

    code, ended = api(probe, "POST", f"/api/events/{EVENT}/end", alice())
    assert code == 200 and ended["state"] == "ended", ended
    ends = wait_for(lambda: [p for t, p in watched(probe, f"fleet-end-{RUN}") if t == f"ovr/events/{EVENT}/end"], timeout=20,
                    what="the end broadcast at another node")
    assert ends[0]["id"] == EVENT and ends[0]["ended_at"] == ended["ended_at"] and ends[0]["schema"] == 1

    code, agg = api(probe, "GET", f"/api/events/{EVENT}/aggregate", bob())
    assert code == 200 and agg["nodes"] == ["edge-a"] and agg["totals"] == {"energy_wh": 4321.0, "peak_w": 2100.0}
    code, page = api(probe, "GET", f"/api/events/{EVENT}/aggregate.html", bob())
    assert code == 200 and "edge-a" in page


def test_retained_registry_tells_a_returning_node(probe):
    """Without its session (expired, or a rebuilt edge), the retained registry still has the end."""
    out = probe.run(f"mosquitto_sub -h {CLOUD} -p 8883 --cafile {CA} -u edge-b -P {shlex.quote(secret('edge-b', 'mqtt'))} "
                    f"--retained-only -W 3 -t ovr/registry/events")
    reg = json.loads(out.stdout.strip().splitlines()[-1])
    assert reg["schema"] == 1 and any(e["id"] == EVENT and e["state"] == "ended" for e in reg["events"])
