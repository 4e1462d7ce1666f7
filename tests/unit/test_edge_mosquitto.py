"""The edge's internal broker as roles/edge renders it (mosquitto-ovr.conf, users.passwd,
users.acl from the role's defaults), run by the real mosquitto: no anonymous client, each local
user confined to its ACL, no client id taken over, and the bridge to the cloud still carrying
both ways (issue 10 item 13, docs/adr/0013-edge-broker-local-users.md)."""

from __future__ import annotations

import os
import pwd
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from peers import Proc, free_port, wait_port
from units import ROOT, render_unit

NODE = "edge-1"
EVENTS_PW = "events-password-0123456789abcdef"
PROBE_PW = "probe-password-0123456789abcdef"
PROBE = {"name": "probe", "password": PROBE_PW, "topics": ["read ovr/#"]}
VARS = yaml.safe_load((ROOT / "roles/edge/vars/main.yml").read_text())
EVENTS_USER = VARS["_edge_events_mqtt_user"]


@dataclass
class Broker:
    port: int
    conf: Path


def render(name: str, tmp: Path, users: list[dict]) -> str:
    return render_unit("edge", name, inventory_hostname=NODE, edge_node_id=NODE, _edge_mosquitto_dir=str(tmp),
                       edge_mqtt_users=users,
                       __edge_mqtt_passwords={EVENTS_USER: EVENTS_PW, **{u["name"]: u["password"] for u in users}})


def start(mosquitto_bin: str, tmp: Path, conf_text: str) -> tuple[Proc, int]:
    port = free_port()
    conf = tmp / "mosquitto.conf"
    # Run as whoever runs the tests: as root, mosquitto would drop to its own user, which cannot
    # read pytest's temporary directory.
    user = f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
    conf.write_text(user + conf_text.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1"))
    proc = Proc([mosquitto_bin, "-c", str(conf), "-v"], tmp / "mosquitto.log")
    wait_port(port)
    return proc, port


@pytest.fixture
def edge_broker(mosquitto_bin: str, tmp_path: Path) -> Iterator[Broker]:
    for name in ("users.passwd", "users.acl"):
        (tmp_path / name).write_text(render(f"mosquitto-{name}", tmp_path, [PROBE]))
    proc, port = start(mosquitto_bin, tmp_path, render("mosquitto-ovr.conf", tmp_path, [PROBE]))
    yield Broker(port, tmp_path / "mosquitto.conf")
    proc.stop()


def pub(port: int, user: tuple[str, str] | None, topic: str, message: str, *extra: str) -> subprocess.CompletedProcess:
    auth = ["-u", user[0], "-P", user[1]] if user else []
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", "5", *auth, "-q", "1",
                           "-t", topic, "-m", message, *extra], capture_output=True, text=True, timeout=20, check=False)


class Sub:
    """mosquitto_sub in the background, its output read after stop()."""

    def __init__(self, port: int, user: tuple[str, str], topic: str, *extra: str) -> None:
        self.proc = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-u", user[0], "-P", user[1],
                                      "-q", "1", "-v", "-t", topic, *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # subscribed

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=10)
        return out, err


def test_anonymous_clients_are_refused(edge_broker: Broker) -> None:
    out = pub(edge_broker.port, None, f"ovr/{NODE}/cmd/ack", '{"report_id": "forged"}')
    assert out.returncode != 0 and "not authori" in out.stderr.lower(), out.stderr


def test_wrong_password_is_refused(edge_broker: Broker) -> None:
    out = pub(edge_broker.port, (EVENTS_USER, "wrong-password-0123456789"), f"ovr/{NODE}/status", "x")
    assert out.returncode != 0 and "not authori" in out.stderr.lower(), out.stderr


def test_events_worker_writes_only_its_nodes_topics(edge_broker: Broker) -> None:
    probe = Sub(edge_broker.port, ("probe", PROBE_PW), "ovr/#")
    events = (EVENTS_USER, EVENTS_PW)
    for kind in ("status", "realtime", "events", "reports"):
        assert pub(edge_broker.port, events, f"ovr/{NODE}/{kind}", f"ok-{kind}").returncode == 0
    # Outside its ACL: a fake ack to itself, another node's topic, the registry. MQTT 5 tells the
    # publisher; the broker drops the message either way.
    for topic in (f"ovr/{NODE}/cmd/ack", "ovr/other-node/status", "ovr/registry/events", f"ovr/{NODE}/junk"):
        out = pub(edge_broker.port, events, topic, "forged")
        assert "not authorized" in (out.stdout + out.stderr).lower(), (topic, out.stdout, out.stderr)
    # The probe's read-only user cannot publish either.
    out = pub(edge_broker.port, ("probe", PROBE_PW), f"ovr/{NODE}/cmd/ack", "forged")
    assert "not authorized" in (out.stdout + out.stderr).lower(), out.stderr
    time.sleep(0.5)
    seen, _ = probe.stop()
    assert {line.split()[1] for line in seen.splitlines()} == {"ok-status", "ok-realtime", "ok-events", "ok-reports"}, seen


def test_a_client_cannot_take_over_another_clients_session(edge_broker: Broker) -> None:
    """The user name is the client id: the events user asking for the probe's id is still
    ovr-events, so the probe stays connected."""
    probe = Sub(edge_broker.port, ("probe", PROBE_PW), "ovr/#", "-i", "probe-session")
    assert pub(edge_broker.port, (EVENTS_USER, EVENTS_PW), f"ovr/{NODE}/status", "hello", "-i", "probe").returncode == 0
    time.sleep(0.5)
    assert probe.alive()
    seen, _ = probe.stop()
    assert f"ovr/{NODE}/status hello" in seen


def test_the_bridge_carries_both_ways_past_the_acl(mosquitto_bin: str, tmp_path: Path) -> None:
    """The ACL binds clients, not the bridge: what the events worker publishes reaches the cloud,
    and the commands the cloud sends arrive, although no local user may write them."""
    cloud_dir = tmp_path / "cloud"
    cloud_dir.mkdir()
    cloud, cloud_port = start(mosquitto_bin, cloud_dir, "listener 1883 127.0.0.1\nallow_anonymous true\n")
    edge_dir = tmp_path / "edge"
    edge_dir.mkdir()
    for name in ("users.passwd", "users.acl"):
        (edge_dir / name).write_text(render(f"mosquitto-{name}", edge_dir, [PROBE]))
    out_topics = "".join(f"topic {kind} out 1 ovr/{NODE}/ ovr/{NODE}/\n" for kind in VARS["_edge_bridge_out_topics"])
    # The bridge section of mosquitto-bridge.conf.j2, without its TLS (a plain test cloud).
    bridge = (f"connection ovr-cloud\naddress 127.0.0.1:{cloud_port}\nbridge_protocol_version mqttv311\n"
              f"remote_clientid {NODE}\nlocal_clientid ovr-cloud-bridge\ncleansession false\n{out_topics}"
              f"topic # in 1 ovr/registry/ ovr/registry/\ntopic # in 1 ovr/events/ ovr/events/\n"
              f"topic # in 1 ovr/{NODE}/cmd/ ovr/{NODE}/cmd/\n")
    edge, edge_port = start(mosquitto_bin, edge_dir, render("mosquitto-ovr.conf", edge_dir, [PROBE]) + bridge)
    try:
        at_cloud = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(cloud_port), "-v", "-q", "1",
                                     "-t", f"ovr/{NODE}/status", "-C", "1", "-W", "15"], stdout=subprocess.PIPE, text=True)
        # (Not as the events user, whose publishes below would close this session: one id per user.)
        local = Sub(edge_port, ("probe", PROBE_PW), f"ovr/{NODE}/cmd/#", "-C", "1", "-W", "15")
        deadline = time.monotonic() + 10
        while at_cloud.poll() is None and time.monotonic() < deadline:
            pub(edge_port, (EVENTS_USER, EVENTS_PW), f"ovr/{NODE}/status", "online")
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(cloud_port), "-q", "1",
                            "-t", f"ovr/{NODE}/cmd/ack", "-m", "from-cloud"], check=True, timeout=10)
            time.sleep(0.5)
        out, _ = at_cloud.communicate(timeout=20)
        assert out.strip() == f"ovr/{NODE}/status online", out
        seen, err = local.stop()
        assert f"ovr/{NODE}/cmd/ack from-cloud" in seen, (seen, err)
    finally:
        edge.stop()
        cloud.stop()
