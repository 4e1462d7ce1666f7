"""What the HTTP workers share, without Flask: the store, the events, the users, the worker's
snapshot (re-read when it changes), the control policy (re-read when it changes), the GX list,
and the wake-up datagram to the worker. api/common.ctx() returns the app's one Ctx."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from .auth import Users
from .config import Settings
from .control import ControlPolicy
from .events import Events
from .store import Store


class Snapshot:
    """The worker's realtime snapshot, re-read only when the file changed (a stat per request)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int] | None = None
        self._doc: dict[str, Any] = {"ts": None, "systems": []}
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {"ts": None, "systems": []}
        key = (st.st_mtime_ns, st.st_size)
        if key != self._key:
            with self._lock:
                try:
                    doc = json.loads(self.path.read_bytes())
                except (OSError, ValueError):
                    return self._doc
                self._doc, self._key = doc, key
        return self._doc


class Ctx:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.db_path)
        self.store.migrate()
        self.events = Events(self.store, settings.node_id, settings.deployment_id)
        self.users = Users(settings.users_file)
        self.snapshot = Snapshot(settings.snapshot_path)
        self.policy_path = settings.control_file
        self._policy: tuple[float, ControlPolicy] | None = None

    def policy(self) -> ControlPolicy:
        try:
            mtime = self.policy_path.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        if self._policy is None or self._policy[0] != mtime:
            self._policy = (mtime, ControlPolicy.load(self.policy_path))
        return self._policy[1]

    def realtime(self) -> dict[str, Any]:
        """The snapshot with ages and `stale` computed now (the worker may have written it a while ago)."""
        snap = self.snapshot.get()
        now = time.time() * 1000
        threshold = self.settings.stale_seconds * 1000
        systems = []
        for s in snap.get("systems", []):
            s = dict(s)
            ts = s.get("ts")
            s["age_s"] = None if ts is None else round((now - ts) / 1000, 3)
            s["stale"] = ts is None or now - ts > threshold
            systems.append(s)
        snap_ts = snap.get("ts")
        worker_ok = snap_ts is not None and now - snap_ts < max(10_000, self.settings.snapshot_seconds * 4000)
        return {"ts": int(now), "node_id": self.settings.node_id, "snapshot_ts": snap_ts, "worker_ok": worker_ok,
                "systems": systems}

    def gx_systems(self) -> list[dict[str, Any]]:
        try:
            doc = json.loads(self.settings.gx_systems.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [s for s in doc.get("systems", []) if isinstance(s, dict)]

    def known_systems(self) -> set[str]:
        known = {s.get("system_id") for s in self.gx_systems()}
        known |= {s.get("system_id") for s in self.snapshot.get().get("systems", [])}
        return {k for k in known if isinstance(k, str)}

    def wake_worker(self) -> None:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(b"w", str(self.settings.wake_socket))
