"""The Flask app (gunicorn: `ovr_events.api:create_app()`). Thin: validation and JSON in, logic in the modules."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask, request
from ovr_common.errors import register_error_handlers

from .. import __version__
from ..config import Settings, load_settings
from ..context import Ctx
from . import auth, control, events, media, realtime, reports
from .common import ok
from .openapi import document

log = logging.getLogger("ovr_events.api")


def session_key(data_dir: Path) -> bytes:
    """A per-node secret for the session cookies, made once and shared by every gunicorn worker."""
    path = data_dir / "session.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes()
    with os.fdopen(fd, "wb") as fh:
        key = secrets.token_bytes(32)
        fh.write(key)
    return key


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    app = Flask("ovr_events")
    app.config.update(
        SECRET_KEY=session_key(settings.data_dir),
        SESSION_COOKIE_NAME="ovr_events_session",
        SESSION_COOKIE_HTTPONLY=True,
        # The dashboard is served over HTTPS only (Caddy on the LAN, docs/adr/0015); scripts on the
        # node itself talk plain HTTP to loopback with HTTP Basic and need no cookie.
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_SAMESITE="Strict",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=settings.photo_max_bytes + 256 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["ovr"] = Ctx(settings)
    for bp in (auth.bp, realtime.bp, control.bp, events.bp, media.bp, reports.bp):
        app.register_blueprint(bp)

    @app.get("/health")
    @app.get("/api/health")
    def health():
        return ok({"status": "ok", "version": __version__, "node_id": settings.node_id})

    @app.get("/api/openapi.json")
    def openapi():
        return ok(document())

    register_error_handlers(
        app, log,
        http_messages=lambda: {404: f"no such endpoint {request.path}; see /api/openapi.json",
                               405: f"{request.method} is not allowed on {request.path}",
                               413: "request body too large"},
        internal_message="internal error; the service log has the details",
        www_authenticate='Session realm="ovr-events"',
    )

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        return resp

    return app
