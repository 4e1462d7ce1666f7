"""Cloud sync over the local broker (the bridge carries it to the cloud): the node's status with
its last will, the node summary, the event lifecycle outbox, reports until acknowledged; and in,
cmd/ack, cmd/align, the registry and the end broadcasts."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from ovr_common.protocol import (
    END_TOPIC_FILTER,
    REGISTRY_TOPIC,
    ack_topic,
    align_topic,
    cmd_topic,
    end_event_id,
    node_topic,
)
from paho.mqtt.enums import CallbackAPIVersion

from . import SCHEMA, __version__, outbox, reportjobs
from .config import Settings
from .events import Events
from .reports import report_hash
from .store import Store, now_ms

log = logging.getLogger("ovr_events.worker")


def summary_for_cloud(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("system_id", "soc", "voltage", "current", "battery_power", "pin", "pout", "mode", "alarms", "gps", "stale")
    return {k: s.get(k) for k in keys}


class CloudSync:
    """`on_change()` is called when a cloud message changed the events (the worker runs its jobs
    soon); `end_series(event_id, systems)` when an alignment moved systems off an event id."""

    def __init__(self, settings: Settings, store: Store, events: Events, on_change: Callable[[], None],
                 end_series: Callable[[str, list[str]], None]) -> None:
        self.s = settings
        self.store = store
        self.events = events
        self.on_change = on_change
        self.end_series = end_series
        self.connected = threading.Event()
        self.client = self._client()

    # ---- the connection ----------------------------------------------------------------
    def _status(self, state: str) -> bytes:
        return json.dumps({"schema": SCHEMA, "state": state, "version": __version__, "ts": now_ms(),
                           "node_id": self.s.node_id,
                           "deployment_id": self.s.deployment_id}).encode()

    def _client(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ovr-events-{self.s.node_id}", clean_session=False)
        c.enable_logger(logging.getLogger("ovr_events.local.paho"))
        password = self.s.mqtt_password()
        if password is not None:
            # The broker takes the user name as client id (roles/edge, mosquitto-ovr.conf.j2).
            c.username_pw_set(self.s.mqtt_username, password)
        c.will_set(node_topic(self.s.node_id, "status"), self._status("offline"), qos=1, retain=True)
        c.reconnect_delay_set(1, 30)
        c.max_queued_messages_set(1000)
        c.on_connect = self._on_connect
        c.on_disconnect = lambda *a: self.connected.clear()
        c.on_message = self._on_message
        return c

    def start(self) -> None:
        self.client.connect_async(self.s.mqtt_host, self.s.mqtt_port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        """Says offline (when connected) and disconnects."""
        if self.connected.is_set():
            info = self.client.publish(node_topic(self.s.node_id, "status"), self._status("offline"), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("local broker refused the connection: %s", reason_code)
            return
        node = self.s.node_id
        client.publish(node_topic(node, "status"), self._status("online"), qos=1, retain=True)
        client.subscribe([(cmd_topic(node), 1), (REGISTRY_TOPIC, 1), (END_TOPIC_FILTER, 1)])
        self.connected.set()
        log.info("local broker connected (%s:%s)", self.s.mqtt_host, self.s.mqtt_port)

    # ---- in ----------------------------------------------------------------------------
    def _on_message(self, client, userdata, msg) -> None:
        try:
            doc = json.loads(msg.payload) if msg.payload else None
            self.handle(msg.topic, doc)
        except Exception:  # a bad message must never stop the subscriber
            log.exception("cannot handle %s", msg.topic)

    def handle(self, topic: str, doc: Any) -> None:
        node = self.s.node_id
        if topic == ack_topic(node):
            rid = doc.get("report_id") if isinstance(doc, dict) else None
            if isinstance(rid, str):
                with self.store.tx() as c:
                    n = reportjobs.ack(c, rid, now_ms())
                if n:
                    self.store.audit("cloud", "report_acked", detail={"report_id": rid})
        elif topic == align_topic(node):
            if not isinstance(doc, dict):
                return
            local_id, canonical, name = doc.get("local_event_id"), doc.get("canonical_event_id"), doc.get("name")
            if not all(isinstance(x, str) and x for x in (local_id, canonical, name)):
                log.warning("align without local_event_id/canonical_event_id/name ignored: %s", doc)
                return
            changed = self.events.align(local_id, canonical, name)
            if changed:
                log.info("event %s aligned to %s (%s)", local_id, canonical, name)
                self.end_series(local_id, changed["systems"])
                self.on_change()
        elif topic == REGISTRY_TOPIC:
            entries = doc.get("events") if isinstance(doc, dict) else doc
            if not isinstance(entries, list):
                return
            good = [e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)
                    and isinstance(e.get("name"), str) and e.get("state") in ("active", "ended")]
            ended = self.events.apply_registry(good)
            if ended:
                log.info("registry: ended %s (ended in the cloud while this node was away)", ended)
                self.on_change()
        elif (ended_id := end_event_id(topic)) is not None and self.events.end_from_cloud(ended_id, "event_end_broadcast"):
                log.info("event %s ended by the cloud", ended_id)
                self.on_change()

    # ---- out ---------------------------------------------------------------------------
    def publish_summary(self, snap: dict[str, Any]) -> None:
        if not self.connected.is_set():
            return
        doc = {"schema": SCHEMA, "ts": now_ms(), "node_id": self.s.node_id, "deployment_id": self.s.deployment_id,
               "systems": [summary_for_cloud(s) for s in snap["systems"]], "active_events": self.events.active_summary()}
        self.client.publish(node_topic(self.s.node_id, "realtime"), json.dumps(doc, separators=(",", ":")), qos=0, retain=True)

    def flush_outbox(self) -> None:
        if not self.connected.is_set():
            return
        for r in outbox.pending(self.store.conn()):
            info = self.client.publish(r["topic"], r["payload"], qos=r["qos"])
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
            if not info.is_published():
                return
            with self.store.tx() as c:
                outbox.delete(c, r["id"])

    def send_reports(self) -> None:
        if not self.connected.is_set():
            return
        now = now_ms()
        for r in reportjobs.unacked(self.store.conn(), now):
            path = self.s.reports_dir / f"{r['id']}.json"
            try:
                report = json.loads(path.read_text(encoding="utf-8"))
                html_text = (self.s.reports_dir / f"{r['id']}.html").read_text(encoding="utf-8")
            except (OSError, ValueError) as exc:
                log.error("report %s unreadable: %s", r["id"], exc)
                continue
            report["event"] = {"id": r["event_id"], "name": r["name"], "temp": bool(r["temp"])}
            payload = {"schema": SCHEMA, "ts": now, "report_id": r["id"], "hash": report_hash(report),
                       "event": report["event"], "node_id": self.s.node_id, "deployment_id": self.s.deployment_id,
                       "report": report, "html": html_text}
            info = self.client.publish(node_topic(self.s.node_id, "reports"), json.dumps(payload, separators=(",", ":")), qos=1)
            attempts = r["attempts"] + 1
            delay = min(self.s.report_retry_max_seconds, self.s.report_retry_seconds * 2 ** min(attempts - 1, 10))
            with self.store.tx() as c:
                reportjobs.record_attempt(c, r["id"], attempts, now + int(delay * 1000),
                                          None if info.rc == 0 else mqtt.error_string(info.rc))
