"""The background process (ovr-events-worker.service): everything that must run once per node.

This module is the main loop: it schedules the jobs below, writes the realtime snapshot to the
runtime directory (the HTTP workers read it, so /api/realtime answers from memory), sends the
heartbeat of `ovr_event_active` to the local vmagent and generates the reports of ended events.
The API wakes it through a datagram socket. The jobs it runs:
- gxcontrol.ControlRunner: GX writes, sent on W/ and confirmed by the N/ echo, or timed out;
- cloudsync.CloudSync: the cloud on the local broker (status and last will, node summary, event
  outbox, reports until acknowledged; registry / end broadcast / align in).
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

from ovr_common.atomic import write_atomic

from . import SCHEMA, __version__, reportjobs
from . import notes as notes_db
from . import photos as photos_db
from .cloudsync import CloudSync
from .config import Settings
from .events import Events, event_ref, open_participations
from .gx import GxManager
from .gxcontrol import ControlRunner
from .reports import Analyzer, SystemWindow, build_report, render_html, report_hash
from .store import Store, now_ms
from .vm import VMClient, VMError, line

log = logging.getLogger("ovr_events.worker")


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
        self.control = ControlRunner(self.store, None, settings.confirm_timeout)
        self.gx = GxManager(settings.gx_systems, settings.gx_inventory, settings.node_id, self.control.on_gx_change)
        self.control.gx = self.gx
        self.stop_event = threading.Event()
        self.cloud = CloudSync(settings, self.store, self.events, self._wake_self, self._end_series)
        self.wake = self._wake_socket()
        self._next: dict[str, float] = {}
        self._last_heartbeat_ms = 0

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
        rows = open_participations(self.store.conn(), systems)
        now = now_ms()
        lines = [line("ovr_event", {"event_id": event_id, "system_id": r["system_id"], "location": r["location"] or "-"},
                      {"active": 0}, now) for r in rows]
        if lines:
            with contextlib.suppress(VMError):
                self.vm.write_lines(lines)

    # ---- reports -----------------------------------------------------------------------
    def run_report_jobs(self) -> None:
        due = now_ms() - int(self.s.report_delay_seconds * 1000)
        for r in reportjobs.due(self.store.conn(), due):
            try:
                self.generate_report(r["id"])
            except VMError as exc:  # VM down: try again on a later pass
                log.warning("report %s postponed: %s", r["id"], exc)
                with self.store.tx() as c:
                    reportjobs.postpone(c, r["id"], str(exc))
                return
            except Exception as exc:
                log.exception("report %s failed", r["id"])
                with self.store.tx() as c:
                    reportjobs.mark_failed(c, r["id"], str(exc)[:500])

    def generate_report(self, report_id: str) -> dict[str, Any]:
        db = self.store.conn()
        r = reportjobs.row(db, report_id)
        ev = reportjobs.event_of(db, r["event_pk"])
        parts = reportjobs.participations_of(db, ev["pk"])
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
        notes = notes_db.find(db, event_pk=ev["pk"], limit=1000)
        notes += [n for n in notes_db.find(db, start=start_ms, end=end_ms, limit=1000)
                  if n["event_id"] is None and (n["system_id"] in windows or n["system_id"] is None)]
        photos = photos_db.for_report(db, ev["pk"], start_ms, end_ms)
        report = build_report(report_id=report_id, event=event_ref(ev), node_id=self.s.node_id,
                              deployment_id=self.s.deployment_id, windows=list(windows.values()),
                              notes=sorted(notes, key=lambda n: n["created_at"]), photos=photos,
                              analyze=self.analyzer.analyze, generated_at=now_ms())
        digest = report_hash(report)
        write_atomic(self.s.reports_dir / f"{report_id}.json", json.dumps(report, indent=1, sort_keys=True).encode())
        write_atomic(self.s.reports_dir / f"{report_id}.html", render_html(report).encode())
        with self.store.tx() as c:
            reportjobs.mark_done(c, report_id, report["generated_at"], digest)
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
        self.cloud.start()
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
                self.control.process()
                self.control.expire()
                if self._due("gx_refresh", 5):
                    self.gx.refresh()
                if self._due("snapshot", self.s.snapshot_seconds):
                    snap = self.write_snapshot()
                if self._due("heartbeat", self.s.heartbeat_seconds):
                    self.heartbeat()
                if self._due("summary", self.s.summary_seconds):
                    self.cloud.publish_summary(snap)
                if self._due("outbox", 1):
                    self.cloud.flush_outbox()
                if self._due("jobs", 2):
                    self.run_report_jobs()
                    self.cloud.send_reports()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        self.gx.stop()
        self.cloud.stop()
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
