"""The JSON error handlers: every error is JSON, a client's mistake is never a 500, and a crash
shows no details."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from flask import Flask, request
from ovr_common.errors import ApiError, register_error_handlers


def app() -> Flask:
    a = Flask("t")
    register_error_handlers(a, logging.getLogger("t"), http_messages=lambda: {404: f"nothing at {request.path}"},
                            internal_message="internal error; see the log", www_authenticate='Session realm="t"')

    @a.get("/api")
    def api():
        raise ApiError(429, "slow down", retry_after=7)

    @a.get("/login")
    def login():
        raise ApiError(401, "log in")

    @a.post("/only-post")
    def only_post():
        return {}

    @a.get("/big/<int:n>")
    def big(n: int):
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    @a.get("/crash")
    def crash():
        raise KeyError("secret-detail")

    return a


def test_api_error_with_headers():
    c = app().test_client()
    r = c.get("/api")
    assert (r.status_code, r.json, r.headers["Retry-After"]) == (429, {"error": "slow down", "retry_after": 7}, "7")
    r = c.get("/login")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == 'Session realm="t"'


def test_http_errors_are_json():
    c = app().test_client()
    r = c.get("/nope")
    assert (r.status_code, r.json) == (404, {"error": "nothing at /nope"})
    r = c.get("/only-post")
    assert r.status_code == 405 and "POST" in r.headers["Allow"] and "error" in r.json


def test_out_of_range_id_is_404_and_a_crash_shows_nothing(caplog):
    c = app().test_client()
    assert c.get("/big/99999999999999999999").status_code == 404
    r = c.get("/crash")
    assert (r.status_code, r.json) == (500, {"error": "internal error; see the log"})
    assert "secret-detail" not in r.get_data(as_text=True)
    assert "secret-detail" in caplog.text  # the log has it


class DomainError(ApiError):
    """What a logic module raises (like ovr_events' EventError)."""


def test_a_logic_error_on_the_base_is_answered_without_translation():
    a = app()

    @a.get("/logic")
    def logic():
        raise DomainError(409, "already in another event")

    r = a.test_client().get("/logic")
    assert (r.status_code, r.json) == (409, {"error": "already in another event"})


def test_the_base_imports_without_flask():
    """Logic modules (and the events worker) raise ApiError subclasses without loading Flask."""
    code = "import sys, ovr_common.errors; assert 'flask' not in sys.modules, 'flask imported'"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3] / "files/services/common")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)
