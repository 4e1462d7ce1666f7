"""Helpers for the GX discovery tests: a real mosquitto per simulated GX, the real GX simulator
process, an observer of what the GX receives, a node (env + dirs) that runs the real CLI, and
the real Telegraf. (A uniquely named module, so it never clashes with other test directories.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from peers import Broker, free_port, locate_mosquitto, locate_telegraf, port_open, wait_for  # noqa: F401 (re-exported)

REPO = Path(__file__).resolve().parents[3]
PKG_DIR = REPO / "files/services/gxdiscovery"
COMMON_DIR = REPO / "files/services/common"
SIM_DIR = REPO / "files/services/gxsim"
SIM_PROFILE = SIM_DIR / "profiles/default.json"
STAR = REPO / "files/services/telegraf/victron_mqtt.star"
SUPPRESS = b'{"keepalive-options":["suppress-republish"]}'


def make_cert(tmp: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (like a GX's device-local certificate)."""
    ca_key, ca, key, csr, cert = (tmp / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = tmp / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=test GX CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=venus.local")
    ssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert),
        "-days", "2", "-extfile", str(ext))
    return ca, cert, key


def write_profile(path: Path, custom_name: str | None, system_name: str | None) -> Path:
    """The simulator's default profile with another vebus CustomName and SystemName."""
    doc = json.loads(SIM_PROFILE.read_text())
    for dev in doc["devices"]:
        items = dev["items"]
        if dev["service"] == "vebus" and custom_name is not None:
            items["CustomName"] = custom_name
        if dev["service"] == "settings" and system_name is not None:
            item = items["Settings/SystemSetup/SystemName"]
            if isinstance(item, dict):
                item["value"] = system_name
            else:
                items["Settings/SystemSetup/SystemName"] = system_name
    path.write_text(json.dumps(doc))
    return path


class Sim:
    """The real GX simulator process (ovr_gxsim) connected to a Broker."""

    def __init__(self, broker: Broker, portal: str, tmp: Path, custom_name: str | None = None,
                 system_name: str | None = None, keepalive_timeout: float = 4.0,
                 auth: tuple[str, str] | None = None) -> None:
        self.broker, self.portal, self.tmp = broker, portal, tmp
        self.profile = write_profile(tmp / f"profile-{portal}.json", custom_name, system_name)
        self.keepalive_timeout = keepalive_timeout
        self.auth = auth
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / f"sim-{portal}.log"

    def start(self) -> Sim:
        env = {**os.environ, "PYTHONPATH": str(SIM_DIR), "PYTHONUNBUFFERED": "1"}
        if self.auth:
            env["GXSIM_USERNAME"], env["GXSIM_PASSWORD"] = self.auth
        cmd = [sys.executable, "-m", "ovr_gxsim", "--broker-port", str(self.broker.port), "--portal-id", self.portal,
               "--profile", str(self.profile), "--keepalive-timeout", str(self.keepalive_timeout),
               "--heartbeat-interval", "1", "--log-level", "DEBUG"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
        wait_for(lambda: bool(retained(self.broker, f"N/{self.portal}/system/0/Serial", self.auth, 0.3)), 10,
                 f"simulator {self.portal} to publish its retained Serial")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


def _client(broker: Broker, auth: tuple[str, str] | None, name: str) -> mqtt.Client:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"test-{name}-{time.monotonic_ns()}",
                    protocol=mqtt.MQTTv311)
    if auth:
        c.username_pw_set(*auth)
    return c


def retained(broker: Broker, topic: str, auth: tuple[str, str] | None = None, wait: float = 0.5) -> list[tuple[str, bytes]]:
    """Retained messages on `topic` (a filter): what a fresh subscriber gets at once."""
    got: list[tuple[str, bytes]] = []
    c = _client(broker, auth, "retained")
    c.on_message = lambda cl, ud, m: got.append((m.topic, bytes(m.payload))) if m.retain else None
    try:
        c.connect("127.0.0.1", broker.port, keepalive=10)
    except OSError:
        return []
    c.subscribe(topic, 0)
    end = time.monotonic() + wait
    while time.monotonic() < end:
        c.loop(0.05)
    c.disconnect()
    return got


@dataclass
class Observed:
    topic: str
    payload: bytes
    retain: bool
    at: float


class Observer:
    """Watches a GX broker: the keepalives the GX receives (R/<portal>/keepalive) and the full
    republishes it makes (N/<portal>/full_publish_completed)."""

    def __init__(self, broker: Broker, portal: str, auth: tuple[str, str] | None = None) -> None:
        self.portal = portal
        self.messages: list[Observed] = []
        self.lock = threading.Lock()
        self.client = _client(broker, auth, "observer")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"R/{portal}/#", 0), (f"N/{portal}/full_publish_completed", 0), (f"N/{portal}/heartbeat", 0)])
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()
        wait_for(self.client.is_connected, 5, "observer connection")
        time.sleep(0.2)

    def _on_message(self, client: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(Observed(m.topic, bytes(m.payload), bool(m.retain), time.monotonic()))

    def mark(self) -> int:
        time.sleep(0.3)  # let in-flight messages land
        with self.lock:
            return len(self.messages)

    def since(self, mark: int) -> list[Observed]:
        time.sleep(0.3)
        with self.lock:
            return self.messages[mark:]

    def keepalives(self, mark: int) -> list[bytes]:
        return [m.payload for m in self.since(mark) if m.topic == f"R/{self.portal}/keepalive"]

    def full_republishes(self, mark: int) -> int:
        return sum(1 for m in self.since(mark) if m.topic == f"N/{self.portal}/full_publish_completed")

    def heartbeats(self, mark: int) -> int:
        return sum(1 for m in self.since(mark) if m.topic == f"N/{self.portal}/heartbeat")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@dataclass
class RunResult:
    rc: int
    out: str
    seconds: float


@dataclass
class Node:
    """An edge node's files in a temp dir, and the real CLI run against them."""

    root: Path
    telegraf_bin: str
    node_id: str = "node-1"
    env_extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.etc = self.root / "etc"
        self.confdir = self.etc / "telegraf.d"
        self.state = self.root / "state"
        self.confdir.mkdir(parents=True)
        self.reload_log = self.root / "reloads.log"
        self.reload_script = self.root / "reload.sh"
        self.reload_script.write_text(f'#!/bin/sh\necho "reload $*" >> "{self.reload_log}"\n')
        self.reload_script.chmod(0o755)
        self.main_conf = self.etc / "telegraf.conf"
        self.main_conf.write_text(
            '[global_tags]\n  node_id = "${OVR_NODE_ID}"\n'
            '[agent]\n  interval = "1s"\n  flush_interval = "1s"\n  omit_hostname = true\n'
            f'[[outputs.file]]\n  files = ["{self.root / "metrics.out"}"]\n'
            "[[inputs.internal]]\n  collect_memstats = false\n  namepass = [\"none\"]\n"
        )
        # The victron processor fragment, as roles/edge installs it next to the generated file.
        (self.confdir / "victron_processor.conf").write_text(
            '[[processors.starlark]]\n  namepass = ["mqtt_consumer"]\n'
            f'  script = "{STAR}"\n'
            "  [processors.starlark.constants]\n"
            '    path_allowlist = ["Dc/Battery/", "Soc", "Ac/Out/"]\n'
            "    max_payload_bytes = 65536\n    report_interval_s = 10.0\n"
            "  [processors.starlark.constants.service_path_allowlist]\n"
            '    vebus = ["Settings/"]\n'
        )
        self.inventory = self.etc / "gx_inventory.json"
        self.systems = self.etc / "gx_systems.json"
        self.conf = self.confdir / "gx_mqtt_sources.conf"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OVR_")}
        env.update({
            "PYTHONPATH": f"{PKG_DIR}:{COMMON_DIR}",  # as on a host: the service and ovr_common
            "OVR_NODE_ID": self.node_id,
            "OVR_DEPLOYMENT_ID": "demo",
            "OVR_GX_INVENTORY": str(self.inventory),
            "OVR_GX_SYSTEMS": str(self.systems),
            "OVR_TELEGRAF_CONFIG": str(self.main_conf),
            "OVR_TELEGRAF_CONFIG_DIR": str(self.confdir),
            "OVR_GX_STATE_DIR": str(self.state),
            "OVR_TELEGRAF_BIN": self.telegraf_bin,
            "OVR_TELEGRAF_CONF_GROUP": "",
            "OVR_GX_RELOAD_COMMAND": f"{self.reload_script} telegraf.service",
            "OVR_GX_CONNECT_TIMEOUT": "1.5",
            "OVR_GX_SERIAL_TIMEOUT": "1",
            "OVR_GX_NAME_TIMEOUT": "3",
            "OVR_GX_RUN_TIMEOUT": "8",
        })
        env.update(self.env_extra)
        env.update(extra)
        return env

    def write_inventory(self, systems: list[dict[str, Any]]) -> None:
        self.inventory.write_text(json.dumps({"systems": systems}, indent=2))

    def run(self, *args: str, **extra: str) -> RunResult:
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "ovr_gxdiscovery", *args], env=self.env(**extra),
                              capture_output=True, text=True, timeout=60, check=False)
        return RunResult(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start)

    def reloads(self) -> int:
        return len(self.reload_log.read_text().splitlines()) if self.reload_log.exists() else 0

    def systems_doc(self) -> dict[str, Any]:
        return json.loads(self.systems.read_text())

    def by_name(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in self.systems_doc()["systems"]}

    def stamp(self) -> tuple[tuple[int, int], tuple[int, int]]:
        a, b = self.conf.stat(), self.systems.stat()
        return (a.st_ino, a.st_mtime_ns), (b.st_ino, b.st_mtime_ns)
