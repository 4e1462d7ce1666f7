"""The MQTT worker (its own systemd unit, one process): subscribes to what the nodes publish,
keeps fleet state, registry and reports in SQLite, and publishes the outbox.

paho's network thread only queues messages; this process's main loop handles them in
batches (one transaction per batch), then publishes what the batch queued (acks, aligns,
the registry). Outbox rows are marked sent when the broker acknowledges them (PUBACK).
"""

from __future__ import annotations

import logging
import queue
import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from . import fleet, outbox, protocol, registry, reports, vm
from .config import Settings
from .store import migrate, now_ms, open_db, tx

log = logging.getLogger("ovr_fleet.worker")

# What a node's message can be refused with (logged as a warning; anything else is a bug).
DROPPED = (protocol.BadMessage, registry.Invalid, registry.Conflict, registry.NotFound)


@dataclass
class Stats:
    received: int = 0
    handled: int = 0
    dropped: int = 0
    refused: int = 0  # handled messages with a part refused (a bad ui_url, report HTML cleaned)
    published: int = 0
    last: dict[str, Any] = field(default_factory=dict)


def handle(conn: sqlite3.Connection, settings: Settings, topic: str, payload: bytes) -> dict[str, Any] | None:
    """One message from a node, inside the caller's transaction. Raises BadMessage to drop it."""
    if topic == protocol.REGISTRY_TOPIC:  # our own retained registry (it matches ovr/+/events)
        return None
    where = protocol.split_topic(topic)
    if where is None:
        raise protocol.BadMessage("not a node topic this worker handles")
    node_id, kind = where
    if not payload:  # a cleared retained message
        return None
    if kind == "bridge":
        fleet.ingest_bridge(conn, node_id, payload)
        return None
    data = protocol.decode(payload, settings.max_report_bytes)
    if kind == "status":
        fleet.ingest_status(conn, node_id, data)
        return None
    if kind == "realtime":
        refused = fleet.ingest_realtime(conn, node_id, data)
        return {"node_id": node_id, "refused": refused} if refused else None
    dep = fleet.node_deployment(conn, node_id, settings.default_deployment)
    if kind == "events":
        return registry.handle_lifecycle(conn, node_id, dep, data, settings.align_auto, settings.align_review)
    return reports.ingest(conn, node_id, data)


class Worker:
    def __init__(self, settings: Settings, client_id: str = "ovr-fleet-worker") -> None:
        self.settings = settings
        self.conn = open_db(settings.db_path)
        migrate(self.conn)
        self.vm = vm.VM(settings.vm_url, settings.vm_timeout, settings.metric_suffix)
        self.inbox: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=100_000)
        self.stop = threading.Event()
        self.connected = threading.Event()
        self.stats = Stats()
        self._inflight: dict[int, int] = {}  # mid -> outbox id
        self._acked: list[int] = []
        self._lock = threading.Lock()
        self._next_vm_sync = 0.0
        # Persistent session: QoS 1 messages that arrive while the worker is down wait in the broker.
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False, protocol=mqtt.MQTTv311)
        self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password())
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    # ---- paho callbacks (network thread): no database work here ---------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        client.subscribe(protocol.SUBSCRIPTIONS)
        with self._lock:
            self._inflight.clear()  # unacknowledged rows are sent again from the outbox
        self.connected.set()
        log.info("connected to %s:%s", self.settings.mqtt_host, self.settings.mqtt_port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        self.connected.clear()
        if not self.stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", rc)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.stats.received += 1
        try:
            self.inbox.put_nowait((msg.topic, msg.payload))
        except queue.Full:
            self.stats.dropped += 1

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any = None, props: Any = None) -> None:
        with self._lock:
            row = self._inflight.pop(mid, None)
            if row is not None:
                self._acked.append(row)

    # ---- main loop ----------------------------------------------------------------------
    def process_batch(self, timeout: float = 0.2, limit: int = 2000) -> int:
        batch: list[tuple[str, bytes]] = []
        try:
            batch.append(self.inbox.get(timeout=timeout))
            while len(batch) < limit:
                batch.append(self.inbox.get_nowait())
        except queue.Empty:
            pass
        if not batch:
            return 0
        with tx(self.conn):
            for topic, payload in batch:
                self.conn.execute("SAVEPOINT msg")
                try:
                    result = handle(self.conn, self.settings, topic, payload)
                except Exception as exc:  # one message never costs the batch, nor stops the worker
                    self.conn.execute("ROLLBACK TO msg")
                    self.conn.execute("RELEASE msg")
                    self.stats.dropped += 1
                    if isinstance(exc, DROPPED):
                        log.warning("dropped %s: %s", topic[:200], exc)
                    else:  # a bug met by this message: its traceback is for us
                        log.exception("dropped %s: unexpected error", topic[:200])
                    continue
                self.conn.execute("RELEASE msg")
                self.stats.handled += 1
                if result and result.get("refused"):
                    self.stats.refused += 1
                    log.warning("%s: refused %s", topic, "; ".join(result["refused"]))
                if result:
                    self.stats.last = result
                    log.info("%s: %s", topic, result)
        return len(batch)

    def drain_outbox(self) -> int:
        with self._lock:
            acked, self._acked = self._acked, []
        if acked:
            with tx(self.conn):
                outbox.mark_sent(self.conn, acked)
        if not self.connected.is_set():
            return 0
        sent = 0
        rows = outbox.pending(self.conn)
        with self._lock:
            inflight = set(self._inflight.values())
        rows = [r for r in rows if r["id"] not in inflight]
        # Registry requests: only the newest is sent (built now, so it has every change).
        registry_rows = [r["id"] for r in rows if r["payload"] is None]
        if len(registry_rows) > 1:
            with tx(self.conn):
                outbox.mark_sent(self.conn, registry_rows[:-1])
            rows = [r for r in rows if r["id"] not in registry_rows[:-1]]
        for row in rows:
            payload = row["payload"]
            if payload is None:  # the registry, as it is now
                payload = registry.registry_payload(self.conn, self.settings.registry_ended_days)
            info = self.client.publish(row["topic"], payload, qos=row["qos"], retain=bool(row["retain"]))
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            with self._lock:
                self._inflight[info.mid] = row["id"]
            if row["qos"] == 0:
                self._on_publish(self.client, None, info.mid)
            sent += 1
        self.stats.published += sent
        return sent

    def sync_vm(self) -> None:
        if time.monotonic() < self._next_vm_sync:
            return
        self._next_vm_sync = time.monotonic() + self.settings.vm_sync_seconds
        try:
            sets = self.vm.label_sets()
        except vm.VMError as exc:
            log.warning("node labels from VictoriaMetrics not refreshed: %s", exc)
            return
        with tx(self.conn):
            n = fleet.sync_vm_labels(self.conn, sets)
        log.debug("VictoriaMetrics knows %d nodes", n)

    def run(self) -> None:
        self.client.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30)
        self.client.loop_start()
        with tx(self.conn):
            outbox.enqueue_registry(self.conn)  # the retained registry is ours: republish at start
        last_prune = 0.0
        try:
            while not self.stop.is_set():
                self.process_batch()
                self.drain_outbox()
                self.sync_vm()
                if time.monotonic() - last_prune > 3600:
                    last_prune = time.monotonic()
                    with tx(self.conn):
                        outbox.prune(self.conn, now_ms() - 7 * 86_400_000)
        finally:
            self.client.disconnect()
            self.client.loop_stop()

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())
