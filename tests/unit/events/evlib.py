"""Real peers for the events service tests: mosquitto, VictoriaMetrics, the GX simulator."""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from peers import Broker, Proc, free_port, wait_for, wait_port  # noqa: F401 (Broker, wait_for: re-exported)

ROOT = Path(__file__).resolve().parents[3]
EVENTS_DIR = ROOT / "files" / "services" / "events"
# What the events service imports, as its PYTHONPATH on a host: itself, ovr_common, ovr_gxdiscovery.
EVENTS_PATH = [EVENTS_DIR, ROOT / "files" / "services" / "common", ROOT / "files" / "services" / "gxdiscovery"]
GXSIM_DIR = ROOT / "files" / "services" / "gxsim"
VICTORIA_METRICS = "/usr/bin/victoria-metrics"
PORTAL = "c0ffee0000e1"


class VictoriaMetrics(Proc):
    def __init__(self, workdir: Path) -> None:
        if not os.access(VICTORIA_METRICS, os.X_OK):
            pytest.fail(f"{VICTORIA_METRICS} missing: apt-get install victoria-metrics (make host does)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([VICTORIA_METRICS, f"-storageDataPath={workdir / 'vm'}", f"-httpListenAddr=127.0.0.1:{self.port}",
                          "-search.latencyOffset=0s", "-loggerLevel=ERROR", "-retentionPeriod=100y"],
                         workdir / "vm.log")
        wait_port(self.port, 20)

    def import_prometheus(self, text: str) -> None:
        req = urllib.request.Request(f"{self.url}/api/v1/import/prometheus", data=text.encode(), method="POST")
        urllib.request.urlopen(req, timeout=10).read()
        self.flush()

    def flush(self) -> None:
        urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10).read()

    def query(self, expr: str) -> list[dict[str, Any]]:
        from urllib.parse import quote

        with urllib.request.urlopen(f"{self.url}/api/v1/query?query={quote(expr)}", timeout=10) as r:
            return json.loads(r.read())["data"]["result"]


class GxSim(Proc):
    def __init__(self, workdir: Path, broker_port: int, portal: str = PORTAL, **env: str) -> None:
        environ = {**os.environ, "PYTHONPATH": str(GXSIM_DIR), "PYTHONUNBUFFERED": "1",
                   "GXSIM_BROKER_PORT": str(broker_port), "GXSIM_PORTAL_ID": portal,
                   **{f"GXSIM_{k.upper()}": v for k, v in env.items()}}
        super().__init__([sys.executable, "-m", "ovr_gxsim"], workdir / f"gxsim-{portal}.log", environ)


class Collector:
    """Records every message on the given topics (paho VERSION2)."""

    def __init__(self, port: int, topics: list[str]) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(5), "collector could not subscribe"

    def _on(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[Any]:
        with self.lock:
            return [json.loads(p) if p else None for t, p, _ in self.messages if t == topic]

    def publish(self, topic: str, doc: Any, retain: bool = False) -> None:
        self.client.publish(topic, json.dumps(doc), qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# Users of the API tests (conftest.py imports them from here: `from conftest import` would find
# whichever test directory's conftest.py was imported last).
OPERATOR = ("tech", "operator-pass-1")
VIEWER = ("guest", "viewer-pass-1")
