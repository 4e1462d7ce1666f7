"""The background process (ovr-events-worker.service): everything that must run once per node.

- GX connections and the live cache, written as a snapshot to the runtime directory, which the
  HTTP workers read (so /api/realtime answers from memory without talking to anything);
- GX control: picks up queued writes (woken through a datagram socket), publishes W/, watches
  the N/ echo, marks writes confirmed or timed out;
- heartbeat of `ovr_event_active` to the local vmagent;
- cloud sync on the local broker: status (with its last will), node summary, event lifecycle
  outbox, report outbox until acknowledged, registry / end broadcast / align in;
- report generation for ended events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from ovr_common.atomic import write_atomic
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

from . import SCHEMA, __version__
from . import notes as notes_db
from .config import Settings
from .control import SETTINGS, confirms
from .events import Events, event_ref
from .gx import GxConnection, GxManager
from .reports import Analyzer, SystemWindow, build_report, render_html, report_hash
from .store import Store, now_ms
from .vm import VMClient, VMError, line

log = logging.getLogger("ovr_events.worker")


def summary_for_cloud(s: dict[str, Any]) -> dict[str, Any]:
    keys = ("system_id", "soc", "voltage", "current", "battery_power", "pin", "pout", "mode", "alarms", "gps", "stale")
    return {k: s.get(k) for k in keys}


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.store = Store(settings.db_path)
        self.store.migrate()
        for d in (settings.photos_dir, settings.reports_dir, settings.run_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.events = Events(self.store, settings.node_id, settings.deployment_id)
        self.vm = VMClient(settings.vm_url, settings.vmagent_url, settings.vm_timeout)
        self.analyzer = Analyzer(self.vm)
        self.gx = GxManager(settings.gx_systems, settings.gx_inventory, settings.node_id, self._on_gx_change)
        self.pending: dict[str, dict[str, Any]] = {}  # control write id -> watch
        self.pending_lock = threading.Lock()
        self.stop_event = threading.Event()
        self.local_connected = threading.Event()
        self.local = self._local_client()
        self.wake = self._wake_socket()
        self._next: dict[str, float] = {}
        self._last_heartbeat_ms = 0

    # ---- local broker --------------------------------------------------------------------
    def _status(self, state: str) -> bytes:
        return json.dumps({"schema": SCHEMA, "state": state, "version": __version__, "ts": now_ms(),
                           "node_id": self.s.node_id,
                           "deployment_id": self.s.deployment_id}).encode()

    def _local_client(self) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ovr-events-{self.s.node_id}", clean_session=False)
        c.enable_logger(logging.getLogger("ovr_events.local.paho"))
        c.will_set(node_topic(self.s.node_id, "status"), self._status("offline"), qos=1, retain=True)
        c.reconnect_delay_set(1, 30)
        c.max_queued_messages_set(1000)
        c.on_connect = self._on_local_connect
        c.on_disconnect = lambda *a: self.local_connected.clear()
        c.on_message = self._on_local_message
        return c

    def _on_local_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("local broker refused the connection: %s", reason_code)
            return
        node = self.s.node_id
        client.publish(node_topic(node, "status"), self._status("online"), qos=1, retain=True)
        client.subscribe([(cmd_topic(node), 1), (REGISTRY_TOPIC, 1), (END_TOPIC_FILTER, 1)])
        self.local_connected.set()
        log.info("local broker connected (%s:%s)", self.s.mqtt_host, self.s.mqtt_port)

    def _on_local_message(self, client, userdata, msg) -> None:
        try:
            doc = json.loads(msg.payload) if msg.payload else None
            self.handle_cloud(msg.topic, doc)
        except Exception:  # a bad message must never stop the subscriber
            log.exception("cannot handle %s", msg.topic)

    def handle_cloud(self, topic: str, doc: Any) -> None:
        node = self.s.node_id
        if topic == ack_topic(node):
            rid = doc.get("report_id") if isinstance(doc, dict) else None
            if isinstance(rid, str):
                with self.store.tx() as c:
                    n = c.execute("UPDATE reports SET acked_at = ? WHERE id = ? AND acked_at IS NULL", (now_ms(), rid)).rowcount
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
                self._end_series(local_id, changed["systems"])
                self._wake_self()
        elif topic == REGISTRY_TOPIC:
            entries = doc.get("events") if isinstance(doc, dict) else doc
            if not isinstance(entries, list):
                return
            good = [e for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)
                    and isinstance(e.get("name"), str) and e.get("state") in ("active", "ended")]
            ended = self.events.apply_registry(good)
            if ended:
                log.info("registry: ended %s (ended in the cloud while this node was away)", ended)
                self._wake_self()
        elif (ended_id := end_event_id(topic)) is not None and self.events.end_from_cloud(ended_id, "event_end_broadcast"):
                log.info("event %s ended by the cloud", ended_id)
                self._wake_self()

    # ---- wake socket -------------------------------------------------------------------
    def _wake_socket(self) -> socket.socket:
        path = self.s.wake_socket
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        os.chmod(path, 0o660)
        sock.setblocking(False)
        return sock

    def _wake_self(self) -> None:
        self._next["heartbeat"] = 0
        self._next["jobs"] = 0

    # ---- GX control --------------------------------------------------------------------
    def _on_gx_change(self, conn: GxConnection, key: str) -> None:
        with self.pending_lock:
            watches = [(wid, w) for wid, w in self.pending.items()
                       if w["system_id"] == conn.target.system_id and w["key"] == key]
        if not watches:
            return
        with conn.lock:
            observed = conn.cache.get(key)
        for wid, w in watches:
            if confirms(SETTINGS[w["setting"]], w["value"], observed):
                self._finish_write(wid, "confirmed", observed)
            else:
                w["observed"] = observed

    def _finish_write(self, wid: str, state: str, observed: Any, error: str | None = None) -> None:
        with self.pending_lock:
            w = self.pending.pop(wid, None)
        if w is None:
            return
        with self.store.tx() as c:
            c.execute("UPDATE control_writes SET state = ?, done_at = ?, observed = ?, error = ? WHERE id = ? AND state = 'pending'",
                      (state, now_ms(), observed if isinstance(observed, (int, float)) else None, error, wid))
        self.store.audit(w["actor"], "gx_write", system_id=w["system_id"],
                         detail={"write_id": wid, "setting": w["setting"], "value": w["value"]},
                         before={"value": w["before"]}, after={"value": observed}, result=state, error=error)
        log.info("gx write %s %s=%s on %s: %s", wid, w["setting"], w["value"], w["system_id"], state)

    def process_control(self) -> None:
        for r in self.store.all("SELECT * FROM control_writes WHERE state = 'queued' ORDER BY requested_at"):
            self._send_write(r)

    def _send_write(self, r: Any) -> None:
        setting = SETTINGS[r["setting"]]
        conn = self.gx.get(r["system_id"])
        error = None
        if conn is None:
            error = "the GX is not connected to this node"
        else:
            with conn.lock:
                adjustable = conn.cache.controls().get(r["setting"], {}).get("adjustable")
            if adjustable is False:
                error = f"the GX reports {r['setting']} is not adjustable"
        if error is None:
            try:
                key, before = conn.prepare(setting.path)
            except RuntimeError as exc:
                error = str(exc)
        if error is not None:
            with self.store.tx() as c:
                c.execute("UPDATE control_writes SET state = 'failed', done_at = ?, error = ? WHERE id = ?",
                          (now_ms(), error, r["id"]))
            self.store.audit(r["actor"], "gx_write", system_id=r["system_id"],
                             detail={"write_id": r["id"], "setting": r["setting"], "value": r["value"]},
                             result="failed", error=error)
            return
        # Pending (in the store and in memory) before the publish, so no echo can be missed.
        with self.store.tx() as c:
            c.execute("UPDATE control_writes SET state = 'pending', sent_at = ?, before = ? WHERE id = ?",
                      (now_ms(), before if isinstance(before, (int, float)) else None, r["id"]))
        with self.pending_lock:
            self.pending[r["id"]] = {"system_id": r["system_id"], "key": key, "setting": r["setting"], "value": r["value"],
                                     "before": before, "actor": r["actor"],
                                     "deadline": time.monotonic() + self.s.confirm_timeout}
        try:
            conn.send(key, r["value"], setting.integer)
        except RuntimeError as exc:
            self._finish_write(r["id"], "failed", None, str(exc))

    def expire_control(self) -> None:
        now = time.monotonic()
        with self.pending_lock:
            late = [(wid, w) for wid, w in self.pending.items() if w["deadline"] <= now]
        for wid, w in late:
            self._finish_write(wid, "timeout", w.get("observed"), "no echo of the value from the GX within "
                               f"{self.s.confirm_timeout:g} s")
        # Rows left pending by an earlier worker process can no longer be confirmed.
        cutoff = now_ms() - int(self.s.confirm_timeout * 1000)
        with self.pending_lock:
            mine = set(self.pending)
        for r in self.store.all("SELECT id FROM control_writes WHERE state IN ('pending', 'queued') AND requested_at < ?", cutoff):
            if r["id"] not in mine:
                with self.store.tx() as c:
                    c.execute("UPDATE control_writes SET state = 'timeout', done_at = ?, error = ? WHERE id = ?",
                              (now_ms(), "the worker restarted before the GX confirmed", r["id"]))

    # ---- realtime snapshot -------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        for conn in self.gx.all():
            conn.tick()
        systems = sorted((c.summary(self.s.stale_seconds) for c in self.gx.all()), key=lambda s: s["system_id"])
        return {"schema": SCHEMA, "ts": now_ms(), "node_id": self.s.node_id, "systems": systems}

    def write_snapshot(self) -> dict[str, Any]:
        snap = self.snapshot()
        write_atomic(self.s.snapshot_path, json.dumps(snap, separators=(",", ":")).encode(), 0o644)
        return snap

    # ---- heartbeat ---------------------------------------------------------------------
    def heartbeat(self) -> None:
        now = now_ms()
        since = now - int(max(60.0, 3 * self.s.heartbeat_seconds) * 1000)
        series = self.events.series_lines(since, now)
        if not series:
            return
        lines = [line("ovr_event", labels, {"active": value}, now) for labels, value in series]
        try:
            self.vm.write_lines(lines)
        except VMError as exc:
            log.warning("heartbeat not written: %s", exc)

    def _end_series(self, event_id: str, systems: list[str]) -> None:
        marks = ",".join("?" * len(systems))
        rows = self.store.all(f"SELECT system_id, location FROM participations WHERE system_id IN ({marks}) AND ended_at IS NULL",
                              *systems) if systems else []
        now = now_ms()
        lines = [line("ovr_event", {"event_id": event_id, "system_id": r["system_id"], "location": r["location"] or "-"},
                      {"active": 0}, now) for r in rows]
        if lines:
            with contextlib.suppress(VMError):
                self.vm.write_lines(lines)

    # ---- cloud publishing --------------------------------------------------------------
    def publish_summary(self, snap: dict[str, Any]) -> None:
        if not self.local_connected.is_set():
            return
        doc = {"schema": SCHEMA, "ts": now_ms(), "node_id": self.s.node_id, "deployment_id": self.s.deployment_id,
               "systems": [summary_for_cloud(s) for s in snap["systems"]], "active_events": self.events.active_summary()}
        self.local.publish(node_topic(self.s.node_id, "realtime"), json.dumps(doc, separators=(",", ":")), qos=0, retain=True)

    def flush_outbox(self) -> None:
        if not self.local_connected.is_set():
            return
        for r in self.store.all("SELECT * FROM outbox ORDER BY id LIMIT 100"):
            info = self.local.publish(r["topic"], r["payload"], qos=r["qos"])
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
            if not info.is_published():
                return
            with self.store.tx() as c:
                c.execute("DELETE FROM outbox WHERE id = ?", (r["id"],))

    def send_reports(self) -> None:
        if not self.local_connected.is_set():
            return
        now = now_ms()
        rows = self.store.all(
            "SELECT r.*, e.id AS event_id, e.name, e.temp FROM reports r JOIN events e ON e.pk = r.event_pk"
            " WHERE r.state = 'done' AND r.acked_at IS NULL AND r.next_attempt_at <= ? ORDER BY r.generated_at LIMIT 10", now)
        for r in rows:
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
            info = self.local.publish(node_topic(self.s.node_id, "reports"), json.dumps(payload, separators=(",", ":")), qos=1)
            attempts = r["attempts"] + 1
            delay = min(self.s.report_retry_max_seconds, self.s.report_retry_seconds * 2 ** min(attempts - 1, 10))
            with self.store.tx() as c:
                c.execute("UPDATE reports SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
                          (attempts, now + int(delay * 1000), None if info.rc == 0 else mqtt.error_string(info.rc), r["id"]))

    # ---- reports -----------------------------------------------------------------------
    def run_report_jobs(self) -> None:
        due = now_ms() - int(self.s.report_delay_seconds * 1000)
        for r in self.store.all("SELECT * FROM reports WHERE state = 'queued' AND requested_at <= ? ORDER BY requested_at", due):
            try:
                self.generate_report(r["id"])
            except VMError as exc:  # VM down: try again on a later pass
                log.warning("report %s postponed: %s", r["id"], exc)
                with self.store.tx() as c:
                    c.execute("UPDATE reports SET error = ? WHERE id = ?", (str(exc), r["id"]))
                return
            except Exception as exc:
                log.exception("report %s failed", r["id"])
                with self.store.tx() as c:
                    c.execute("UPDATE reports SET state = 'failed', error = ? WHERE id = ?", (str(exc)[:500], r["id"]))

    def generate_report(self, report_id: str) -> dict[str, Any]:
        r = self.store.one("SELECT * FROM reports WHERE id = ?", report_id)
        ev = self.store.one("SELECT * FROM events WHERE pk = ?", r["event_pk"])
        parts = self.store.all("SELECT * FROM participations WHERE event_pk = ? ORDER BY started_at, pk", ev["pk"])
        end_default = ev["ended_at"] or r["requested_at"]
        windows: dict[str, SystemWindow] = {}
        for p in parts:
            start, end = p["started_at"] / 1000, (p["ended_at"] or end_default) / 1000
            w = windows.get(p["system_id"])
            loc = {"location": p["location"], "start": p["started_at"], "end": p["ended_at"]}
            if w is None:
                windows[p["system_id"]] = SystemWindow(p["system_id"], start, end, [loc])
            else:
                w.start, w.end = min(w.start, start), max(w.end, end)
                w.locations.append(loc)
        start_ms = min((p["started_at"] for p in parts), default=ev["created_at"])
        end_ms = max(((p["ended_at"] or end_default) for p in parts), default=end_default)
        notes = notes_db.find(self.store.conn(), event_pk=ev["pk"], limit=1000)
        notes += [n for n in notes_db.find(self.store.conn(), start=start_ms, end=end_ms, limit=1000)
                  if n["event_id"] is None and (n["system_id"] in windows or n["system_id"] is None)]
        photos = [dict(p) for p in self.store.all(
            "SELECT id, filename, system_id, caption, created_at FROM photos WHERE event_pk = ?"
            " OR (event_pk IS NULL AND created_at BETWEEN ? AND ?) ORDER BY created_at", ev["pk"], start_ms, end_ms)]
        report = build_report(report_id=report_id, event=event_ref(ev), node_id=self.s.node_id,
                              deployment_id=self.s.deployment_id, windows=list(windows.values()),
                              notes=sorted(notes, key=lambda n: n["created_at"]), photos=photos,
                              analyze=self.analyzer.analyze, generated_at=now_ms())
        digest = report_hash(report)
        write_atomic(self.s.reports_dir / f"{report_id}.json", json.dumps(report, indent=1, sort_keys=True).encode())
        write_atomic(self.s.reports_dir / f"{report_id}.html", render_html(report).encode())
        with self.store.tx() as c:
            c.execute("UPDATE reports SET state = 'done', generated_at = ?, sha256 = ?, error = NULL WHERE id = ?",
                      (report["generated_at"], digest, report_id))
        self.store.audit("worker", "report_generated", event_id=ev["id"], detail={"report_id": report_id,
                                                                                 "total_power_wh": report["totals"]["total_power_wh"]})
        log.info("report %s for event %s: %.1f Wh", report_id, ev["name"], report["totals"]["total_power_wh"])
        return report

    # ---- main loop ---------------------------------------------------------------------
    def _due(self, name: str, every: float) -> bool:
        now = time.monotonic()
        if now >= self._next.get(name, 0):
            self._next[name] = now + every
            return True
        return False

    def run(self) -> None:
        self.local.connect_async(self.s.mqtt_host, self.s.mqtt_port, keepalive=30)
        self.local.loop_start()
        self.gx.refresh(force=True)
        snap = self.write_snapshot()
        log.info("worker %s started for node %s: %d GX", __version__, self.s.node_id, len(self.gx.all()))
        try:
            while not self.stop_event.is_set():
                readable, _, _ = select.select([self.wake], [], [], 0.1)
                if readable:
                    with contextlib.suppress(BlockingIOError):
                        while self.wake.recv(64):
                            pass
                    self._next["heartbeat"] = 0
                    self._next["jobs"] = 0
                self.process_control()
                self.expire_control()
                if self._due("gx_refresh", 5):
                    self.gx.refresh()
                if self._due("snapshot", self.s.snapshot_seconds):
                    snap = self.write_snapshot()
                if self._due("heartbeat", self.s.heartbeat_seconds):
                    self.heartbeat()
                if self._due("summary", self.s.summary_seconds):
                    self.publish_summary(snap)
                if self._due("outbox", 1):
                    self.flush_outbox()
                if self._due("jobs", 2):
                    self.run_report_jobs()
                    self.send_reports()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.gx.stop()
        if self.local_connected.is_set():
            info = self.local.publish(node_topic(self.s.node_id, "status"), self._status("offline"), qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        self.local.disconnect()
        self.local.loop_stop()
        with contextlib.suppress(OSError):
            self.wake.close()
            self.s.wake_socket.unlink()


def main(settings: Settings) -> int:
    worker = Worker(settings)

    def stop(signum, frame) -> None:
        worker.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run()
    return 0
