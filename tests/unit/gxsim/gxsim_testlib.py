"""Helpers for the GX simulator tests: fake clock, real Mosquitto, MQTT test client."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from peers import Broker, FakeClock, free_port, wait_port  # noqa: F401 - re-exported to the tests

ROOT = Path(__file__).resolve().parents[3]
GXSIM_DIR = ROOT / "files" / "services" / "gxsim"
PORTAL = "c0ffee000001"


@dataclass
class SimProcess:
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_output(self, text: str, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in self.lines) >= count:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"simulator never logged {text!r}; output:\n" + "\n".join(self.lines))




@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    at: float


class Collector:
    """A paho client (CallbackAPIVersion.VERSION2) that records everything it receives."""

    def __init__(self, port: int, topics: list[str], username: str | None = None,
                 password: str | None = None) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 0) for t in topics])
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise TimeoutError("test client could not subscribe")

    def _on_message(self, client: object, userdata: object, msg: object) -> None:
        with self._lock:
            self.messages.append(
                Received(msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic())  # type: ignore[attr-defined]
            )

    def publish(self, topic: str, payload: bytes | str = b"") -> None:
        self.client.publish(topic, payload, qos=0).wait_for_publish(2)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.02)
        return predicate(self.snapshot())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

