"""What every blueprint shares: the app context, JSON errors, authentication, input helpers."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

from flask import current_app, g, jsonify, request, session
from ovr_common.errors import ApiError
from ovr_common.protocol import NODE_ID_RE as ID_RE

from .. import throttle
from ..auth import User, Users
from ..config import Settings
from ..control import ControlPolicy
from ..events import Events
from ..store import Store, now_ms

log = logging.getLogger("ovr_events.api")


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


def ctx() -> Ctx:
    return current_app.extensions["ovr"]


# ---- authentication ----------------------------------------------------------------------
LOOPBACK = ("127.0.0.1", "::1")


def client_address() -> str:
    """The client's address: the peer's, or, when the peer is the local reverse proxy, the last
    X-Forwarded-For entry (the one the proxy appended; entries before it are the client's word)."""
    peer = request.remote_addr or "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    if peer in LOOPBACK and forwarded.strip():
        return forwarded.split(",")[-1].strip()[:64] or peer
    return peer


def check_password(name: str, password: str) -> User | None:
    """A password check held back by throttle.py: 429 while the address or the name is blocked."""
    store = ctx().store
    addr = client_address()
    keys = [f"addr:{addr}", f"user:{name}"]
    wait, key = throttle.retry_after(store, keys, now_ms())
    if wait:
        what = f"address {addr}" if key and key.startswith("addr:") else f"user name {name!r}"
        raise ApiError(429, f"too many failed logins from {what}: try again in {wait} s (each further failure doubles "
                            f"the wait, up to {throttle.MAX_DELAY_SECONDS // 60} min)", retry_after=wait)
    user = ctx().users.verify(name, password)
    if user is None:
        blocked = throttle.record_failure(store, keys, now_ms())
        if blocked:
            log.warning("failed login for %r from %s: further attempts wait %d s", name[:64], addr, blocked)
    else:
        throttle.record_success(store, keys[1])
    return user


def current_user() -> User | None:
    if "user" in g:
        return g.user
    user = None
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username and auth.password is not None:
        g.user = None  # one check per request, even when it raises
        user = check_password(auth.username[:64], auth.password[:1024])
    elif session.get("user"):
        user = ctx().users.role_of(session["user"])
    g.user = user
    return user


def require(role: str) -> Callable:
    """Mutating endpoints: require("operator"). Reads: require("read") (anonymous if public_read)."""

    def deco(fn: Callable) -> Callable:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if role == "read" and ctx().settings.public_read:
                return fn(*args, **kwargs)
            user = current_user()
            if user is None:
                raise ApiError(401, "authentication required: log in with POST /api/auth/login or use HTTP Basic")
            need = "viewer" if role == "read" else role
            if not user.may(need):
                raise ApiError(403, f"user {user.name!r} ({user.role}) may not do this; it needs the {need} role")
            return fn(*args, **kwargs)

        wrapper._ovr_auth = role  # type: ignore[attr-defined]
        return wrapper

    return deco


def actor() -> str:
    user = current_user()
    return user.name if user else "anonymous"


# ---- input -------------------------------------------------------------------------------
def body() -> dict[str, Any]:
    doc = request.get_json(silent=True)
    if not isinstance(doc, dict):
        raise ApiError(400, "the request body must be a JSON object (Content-Type: application/json)")
    return doc


def system_id_arg(value: Any, field: str = "system_id", must_exist: bool = True) -> str:
    if not isinstance(value, str) or not ID_RE.match(value):
        raise ApiError(400, f"{field} must be a system id like pro6005-1 (lowercase letters, digits, '-', '_')")
    if must_exist and value not in ctx().known_systems():
        known = ", ".join(sorted(ctx().known_systems())) or "none yet"
        raise ApiError(404, f"unknown system {value!r}; systems on this node: {known}")
    return value


def int_arg(name: str, default: int, low: int = 1, high: int = 1000) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter {name} must be an integer") from None
    if not low <= value <= high:
        raise ApiError(400, f"query parameter {name} must be between {low} and {high}")
    return value


def ok(doc: Any, status: int = 200) -> Any:
    resp = jsonify(doc)
    resp.status_code = status
    return resp
