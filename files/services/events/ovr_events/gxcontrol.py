"""GX control in the worker: sends the queued writes on W/, watches the N/ echo, and marks each
write confirmed, failed or timed out (the rows: writes.py; the rules: control.py)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from . import writes
from .control import SETTINGS, confirms
from .gx import GxConnection, GxManager
from .store import Store, now_ms

log = logging.getLogger("ovr_events.worker")


class ControlRunner:
    def __init__(self, store: Store, gx: GxManager | None, confirm_timeout: float) -> None:
        self.store = store
        self.gx = gx  # set by the worker once the GxManager (which calls on_gx_change) exists
        self.confirm_timeout = confirm_timeout
        self.pending: dict[str, dict[str, Any]] = {}  # control write id -> watch
        self.pending_lock = threading.Lock()

    def on_gx_change(self, conn: GxConnection, key: str) -> None:
        with self.pending_lock:
            watches = [(wid, w) for wid, w in self.pending.items()
                       if w["system_id"] == conn.target.system_id and w["key"] == key]
        if not watches:
            return
        with conn.lock:
            observed = conn.cache.get(key)
        for wid, w in watches:
            if confirms(SETTINGS[w["setting"]], w["value"], observed):
                self._finish(wid, "confirmed", observed)
            else:
                w["observed"] = observed

    def _finish(self, wid: str, state: str, observed: Any, error: str | None = None) -> None:
        with self.pending_lock:
            w = self.pending.pop(wid, None)
        if w is None:
            return
        with self.store.tx() as c:
            writes.finish(c, wid, state, observed, error, now_ms())
        self.store.audit(w["actor"], "gx_write", system_id=w["system_id"],
                         detail={"write_id": wid, "setting": w["setting"], "value": w["value"]},
                         before={"value": w["before"]}, after={"value": observed}, result=state, error=error)
        log.info("gx write %s %s=%s on %s: %s", wid, w["setting"], w["value"], w["system_id"], state)

    def process(self) -> None:
        # A write still queued after the confirmation window was asked for while no worker ran
        # (a restart, a crash): the operator stopped waiting long ago and the value may be wrong
        # now, so it is never sent late.
        stale_before = now_ms() - int(self.confirm_timeout * 1000)
        for r in writes.queued(self.store.conn()):
            if r["requested_at"] < stale_before:
                self._drop_stale(r)
            else:
                self._send(r)

    def _drop_stale(self, r: Any) -> None:
        age = (now_ms() - r["requested_at"]) / 1000
        error = (f"not sent: it waited {age:.0f} s for the worker (over the {self.confirm_timeout:g} s window); "
                 "ask again if it is still wanted")
        with self.store.tx() as c:
            writes.mark_timeout(c, r["id"], error, now_ms())
        self.store.audit(r["actor"], "gx_write", system_id=r["system_id"],
                         detail={"write_id": r["id"], "setting": r["setting"], "value": r["value"]},
                         result="timeout", error=error)
        log.warning("gx write %s %s=%s on %s dropped: %s", r["id"], r["setting"], r["value"], r["system_id"], error)

    def _send(self, r: Any) -> None:
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
                writes.mark_failed(c, r["id"], error, now_ms())
            self.store.audit(r["actor"], "gx_write", system_id=r["system_id"],
                             detail={"write_id": r["id"], "setting": r["setting"], "value": r["value"]},
                             result="failed", error=error)
            return
        # Pending (in the store and in memory) before the publish, so no echo can be missed.
        with self.store.tx() as c:
            writes.mark_pending(c, r["id"], before, now_ms())
        with self.pending_lock:
            self.pending[r["id"]] = {"system_id": r["system_id"], "key": key, "setting": r["setting"], "value": r["value"],
                                     "before": before, "actor": r["actor"],
                                     "deadline": time.monotonic() + self.confirm_timeout}
        try:
            conn.send(key, r["value"], setting.integer)
        except RuntimeError as exc:
            self._finish(r["id"], "failed", None, str(exc))

    def expire(self) -> None:
        now = time.monotonic()
        with self.pending_lock:
            late = [(wid, w) for wid, w in self.pending.items() if w["deadline"] <= now]
        for wid, w in late:
            self._finish(wid, "timeout", w.get("observed"), "no echo of the value from the GX within "
                         f"{self.confirm_timeout:g} s")
        # Rows left pending by an earlier worker process can no longer be confirmed.
        cutoff = now_ms() - int(self.confirm_timeout * 1000)
        with self.pending_lock:
            mine = set(self.pending)
        for r in writes.unfinished_before(self.store.conn(), cutoff):
            if r["id"] not in mine:
                with self.store.tx() as c:
                    writes.mark_timeout(c, r["id"], "the worker restarted before the GX confirmed", now_ms())
