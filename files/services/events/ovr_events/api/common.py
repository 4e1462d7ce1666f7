"""HTTP glue every blueprint shares: the app's context, authentication (decorators, login
throttle) and request parsing / JSON responses. The logic is in the modules above api/."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, jsonify, request, session
from ovr_common.errors import ApiError
from ovr_common.protocol import NODE_ID_RE as ID_RE

from .. import throttle
from ..auth import User
from ..context import Ctx
from ..store import now_ms

log = logging.getLogger("ovr_events.api")


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
