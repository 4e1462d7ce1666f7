"""What the fleet scenario's tests share: hosts, queries, MQTT, playbook runs.

The edges and the cloud are reached with `podman exec`; every query to a VictoriaMetrics is
made on its own host (both listen on loopback only). Credentials come from the controller
files the cloud role generated, the same files the edge role reads.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
import time
import urllib.parse
from pathlib import Path

from conftest import wait_for

GX = "fleet-gx"
EDGE_A = "fleet-edge-a"
EDGE_B = "fleet-edge-b"
CLOUD = "fleet-cloud"
WAN = "fleet-wan"
DEPLOYMENT = {EDGE_A: "harbour", EDGE_B: "rental"}
INTERVAL = 10  # edge_vmagent_cloud_aggregation_interval (role default)


def sh(container: str, command: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["podman", "exec", container, "sh", "-c", command],
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{container}: {command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


def credentials_dir() -> Path:
    eph = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    assert eph, "run through molecule (MOLECULE_EPHEMERAL_DIRECTORY is not set)"
    return Path(eph) / "credentials"


def secret(*parts: str) -> str:
    return credentials_dir().joinpath(*parts).read_text().strip()


def fleet_auth(user: str = "molecule-fleet") -> str:
    """Login of one of the scenario's users with the fleet's rights (molecule.yml) on the cloud's
    loopback listener. The user name is the client id there, so a subscriber that must stay
    connected and a publisher beside it need two users: cloud_pub uses molecule-fleet-pub."""
    return f"-u {user} -P {shlex.quote(secret('mqtt-' + user))}"


def edge_auth() -> str:
    """Login of the scenario's molecule-probe user on an edge's internal broker (no anonymous client)."""
    return f"-u molecule-probe -P {shlex.quote(secret('mqtt-edge-probe'))}"


def vm(container: str, path: str, **params: str) -> dict:
    """GET a VictoriaMetrics API path on the host's own loopback VM."""
    sh(container, "curl -sf -X POST http://127.0.0.1:8428/internal/force_flush")
    url = "http://127.0.0.1:8428" + path + "?" + urllib.parse.urlencode(params)
    out = sh(container, "curl -sf " + shlex.quote(url)).stdout
    return json.loads(out)


def query(container: str, q: str, **params: str) -> list[dict]:
    return vm(container, "/api/v1/query", query=q, **params)["data"]["result"]


def series(container: str, match: str) -> list[dict]:
    """Label sets of the series matching ``match`` (the series API sees a sample at once; an
    instant query would wait out VictoriaMetrics' 30 s search latency offset)."""
    return vm(container, "/api/v1/series", **{"match[]": match})["data"]


def export(container: str, match: str, start: float, end: float) -> dict[str, list[int]]:
    """Raw samples per series (key: the series' labels as JSON) between start and end (s)."""
    sh(container, "curl -sf -X POST http://127.0.0.1:8428/internal/force_flush")
    url = "http://127.0.0.1:8428/api/v1/export?" + urllib.parse.urlencode(
        {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"})
    out = sh(container, "curl -sf " + shlex.quote(url), timeout=300).stdout
    series: dict[str, list[int]] = {}
    for line in out.splitlines():
        if line.strip():
            row = json.loads(line)
            key = json.dumps(row["metric"], sort_keys=True)
            series.setdefault(key, []).extend(row["timestamps"])
    return {k: sorted(v) for k, v in series.items()}


def cloud_sub(topic: str, count: int = 1, wait: int = 10) -> list[str]:
    """Messages on the cloud broker, read on its loopback listener as the scenario's molecule-fleet
    (the fleet's rights; ovr-fleet's own credential would close the fleet worker's session)."""
    out = sh(CLOUD, f"mosquitto_sub -h 127.0.0.1 -p 1883 {fleet_auth()} "
                    f"-t {shlex.quote(topic)} -C {count} -W {wait} -v", check=False, timeout=wait + 30)
    return [line for line in out.stdout.splitlines() if line]


def cloud_pub(topic: str, payload: str, retain: bool = False) -> None:
    sh(CLOUD, f"mosquitto_pub -h 127.0.0.1 -p 1883 {fleet_auth('molecule-fleet-pub')} "
              f"-q 1 {'-r ' if retain else ''}-t {shlex.quote(topic)} -m {shlex.quote(payload)}")


def bridge_up(node: str) -> bool:
    return any(line.endswith(" 1") for line in cloud_sub(f"ovr/{node}/bridge", wait=3))


def start_sub(container: str, args: str, out: str, timeout: float = 30) -> None:
    """Start ``mosquitto_sub <args>`` in the background on ``container``, its output in ``out``,
    and return once the broker has acknowledged the subscription (no guessed sleep: a message
    published after this returns reaches it). Read what it got with ``sub_messages``."""
    sh(container, f"rm -f {out}; (setsid stdbuf -oL mosquitto_sub -d -v {args} > {out} 2>&1 &)")
    wait_for(lambda: "Subscribed (mid" in sh(container, f"cat {out}").stdout, timeout, 0.2,
             f"the subscription of `mosquitto_sub {args}` on {container}")


def sub_messages(container: str, out: str) -> list[str]:
    """The "topic payload" lines a ``start_sub`` subscriber received (its debug lines left out)."""
    return [line for line in sh(container, f"cat {out}").stdout.splitlines() if line.startswith("ovr/")]


def playbook(name: str, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    project = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
    cmd = ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(project / name), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def max_gap(timestamps_ms: list[int]) -> float:
    """Longest interval between consecutive samples, in seconds."""
    return max((b - a for a, b in itertools.pairwise(timestamps_ms)), default=0) / 1000


def now() -> float:
    return time.time()


def span(timestamps_ms: list[int]) -> float:
    return (timestamps_ms[-1] - timestamps_ms[0]) / 1000 if timestamps_ms else 0.0


def cloud_shortfall(node: str, start: float, end: float) -> tuple[dict[str, dict], dict[str, list[int]], dict]:
    """Series of `node` that the cloud holds fewer downsampled samples of than the edge fed.

    The GX publishes a value only when it changes, so a series can sit still for longer than an
    aggregation interval and then rightly has no sample at the cloud for it. Only series the edge
    saw at least every half interval while they existed ("steady") must have one cloud sample per
    interval of their span. Returns (shortfall by metric name, steady series at the edge keyed by
    labels, cloud series keyed by labels without node_id/deployment_id)."""
    edge = export(node, '{__name__=~"victron_.+"}', start, end)
    cloud = export(CLOUD, f'{{__name__=~"victron_.+", node_id="{node}"}}', start, end)

    def key(labels: str) -> str:
        m = json.loads(labels)
        return json.dumps({k: v for k, v in m.items() if k not in ("node_id", "deployment_id")}, sort_keys=True)
    cloud_by_key = {key(k): v for k, v in cloud.items()}
    steady = {key(k): v for k, v in edge.items() if len(v) > 10 and max_gap(v) <= INTERVAL / 2 and span(v) >= 60}
    short = {}
    for labels, ts in steady.items():
        expected = span(ts) / INTERVAL
        got = cloud_by_key.get(labels, [])
        if len(got) < expected - 2 or max_gap(got) > 1.5 * INTERVAL + 1:
            short[json.loads(labels)["__name__"]] = {"expected": round(expected), "got": len(got),
                                                     "max_gap_s": round(max_gap(got), 1)}
    return short, steady, cloud_by_key


# ---- the events APIs (edge :8088, cloud :8089), as their operators -------------------------

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


def registry_event(event_id: str) -> dict:
    """The cloud registry's record of an event, once it has one."""
    return wait_for(lambda: (lambda r: r[1] if r[0] == 200 else None)(cloud_api("GET", f"/api/events/{event_id}")),
                    60, 2, f"event {event_id} in the cloud registry")


def edge_event_state(node: str, event_id: str) -> str:
    return edge_api(node, "GET", f"/api/events/{event_id}")[1].get("state", "")
