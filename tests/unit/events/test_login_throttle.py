"""Logging in: failed attempts back off per client address and per user name (state in SQLite,
shared by the gunicorn workers), unknown names cost the same hash check as known ones, and the
audit (which records failed logins) is for operators only."""

from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import time

import pytest
from evlib import EVENTS_PATH, OPERATOR, VIEWER
from ovr_events import auth
from ovr_events.api import create_app
from ovr_events.config import ENV, Settings

# The bounds (ovr_events/throttle.py): free failed attempts per client address and per user name.
ADDR_FREE, USER_FREE = 5, 10


def basic(user: tuple[str, str]) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()}


def app_for(settings: Settings):
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    return create_app(settings)


def login(client, name: str, password: str, addr: str = "192.0.2.10"):
    return client.post("/api/auth/login", json={"username": name, "password": password}, environ_base={"REMOTE_ADDR": addr})


def test_backoff_doubles_after_the_free_attempts_and_is_capped():
    from ovr_events import throttle

    assert throttle.FREE == {"addr": ADDR_FREE, "user": USER_FREE}
    assert [throttle.delay_after(n, ADDR_FREE) for n in range(1, ADDR_FREE + 1)] == [0] * ADDR_FREE
    assert [throttle.delay_after(ADDR_FREE + n, ADDR_FREE) for n in range(1, 6)] == [1, 2, 4, 8, 16]
    assert throttle.delay_after(ADDR_FREE + 40, ADDR_FREE) == throttle.MAX_DELAY_SECONDS == 900


def test_failed_logins_from_one_address_get_429_with_retry_after(settings: Settings):
    c = app_for(settings).test_client()
    for _ in range(ADDR_FREE):
        assert login(c, OPERATOR[0], "wrong-password").status_code == 401
    assert login(c, "someone-else", "wrong-password").status_code == 401  # this failure starts the back-off
    r = login(c, OPERATOR[0], OPERATOR[1])  # even the right password waits: guessing must not go on
    assert r.status_code == 429
    doc = r.get_json()
    assert "too many failed logins" in doc["error"] and "192.0.2.10" in doc["error"]
    assert int(r.headers["Retry-After"]) == doc["retry_after"] >= 1
    # Another address is not held back, and its right password works.
    assert login(c, OPERATOR[0], OPERATOR[1], addr="192.0.2.11").status_code == 200
    # HTTP Basic is the same check: blocked for that address too.
    r = c.post("/api/notes", json={"text": "x"}, headers=basic(OPERATOR), environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_failed_logins_for_one_name_get_429_from_any_address(settings: Settings):
    c = app_for(settings).test_client()
    for i in range(USER_FREE + 1):
        assert login(c, OPERATOR[0], "wrong-password", addr=f"198.51.100.{i}").status_code == 401
    r = login(c, OPERATOR[0], OPERATOR[1], addr="203.0.113.7")
    assert r.status_code == 429 and f"user name {OPERATOR[0]!r}" in r.get_json()["error"]
    assert login(c, VIEWER[0], VIEWER[1], addr="203.0.113.7").status_code == 200


def test_wrong_basic_credentials_count_as_failed_logins(settings: Settings):
    c = app_for(settings).test_client()
    for _ in range(ADDR_FREE + 1):
        r = c.post("/api/notes", json={"text": "x"}, headers=basic((OPERATOR[0], "nope-nope")))
        assert r.status_code == 401
    assert c.post("/api/notes", json={"text": "x"}, headers=basic(OPERATOR)).status_code == 429


def test_the_client_address_is_the_proxy_s_last_forwarded_for_entry(settings: Settings):
    """Behind the local reverse proxy every request comes from 127.0.0.1; the address it appends
    is the client's. Addresses a client put in front of it do not help it."""
    c = app_for(settings).test_client()
    for i in range(ADDR_FREE + 1):
        r = c.post("/api/auth/login", json={"username": f"nobody{i}", "password": "x"},
                   headers={"X-Forwarded-For": f"10.9.9.{i}, 192.0.2.50"})
        assert r.status_code == 401
    r = c.post("/api/auth/login", json={"username": "other", "password": "x"}, headers={"X-Forwarded-For": "192.0.2.50"})
    assert r.status_code == 429
    r = c.post("/api/auth/login", json={"username": "other", "password": "x"}, headers={"X-Forwarded-For": "192.0.2.51"})
    assert r.status_code == 401


def test_limiter_state_is_shared_between_processes(settings: Settings):
    """gunicorn runs several worker processes: failures counted by one hold back the others."""
    app = app_for(settings)
    script = f"""
import sys
sys.path[:0] = {[str(p) for p in EVENTS_PATH]!r}
from ovr_events.api import create_app
c = create_app().test_client()
for i in range({ADDR_FREE + 1}):
    r = c.post("/api/auth/login", json={{"username": "tech", "password": "wrong"}}, environ_base={{"REMOTE_ADDR": "192.0.2.99"}})
    assert r.status_code == 401, r.status_code
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OVR_")}
    env |= {ENV[k]: str(v) for k, v in vars(settings).items() if k in ENV and not isinstance(v, bool)}
    env |= {"OVR_EVENTS_ENV_FILE": "/nonexistent", "OVR_EVENTS_PUBLIC_READ": str(settings.public_read).lower(),
            "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120, env=env)
    assert login(app.test_client(), OPERATOR[0], OPERATOR[1], addr="192.0.2.99").status_code == 429


def test_unknown_and_known_names_cost_the_same_hash_check(settings: Settings, monkeypatch):
    users = auth.Users(settings.users_file)
    checks: list[str] = []
    real = auth.check_password_hash

    def counting(stored: str, password: str) -> bool:
        checks.append(stored.split("$", 1)[0])
        return real(stored, password)

    monkeypatch.setattr(auth, "check_password_hash", counting)
    assert users.verify("no-such-user", "some-password") is None
    assert users.verify(OPERATOR[0], "wrong-password") is None
    method = json.loads(settings.users_file.read_text())["users"][0]["hash"].split("$", 1)[0]
    assert checks == [method, method]  # one check each, with the same method and cost parameters
    # A generous ratio, not an absolute time: an unknown name is not answered at once.
    timings: dict[str, list[float]] = {"unknown": [], "known": []}
    for _ in range(3):
        for kind, name in (("unknown", "nobody-here"), ("known", OPERATOR[0])):
            t = time.perf_counter()
            users.verify(name, "wrong-password")
            timings[kind].append(time.perf_counter() - t)
    assert statistics.median(timings["unknown"]) > 0.25 * statistics.median(timings["known"]), timings


def test_audit_is_for_operators_and_status_shows_no_logins(settings: Settings):
    c = app_for(settings).test_client()
    assert login(c, "probe", "wrong-password").status_code == 401
    r = c.get("/api/audit")
    assert r.status_code == 401 and "authentication required" in r.get_json()["error"]
    r = c.get("/api/audit", headers=basic(VIEWER))
    assert r.status_code == 403 and "operator" in r.get_json()["error"]
    entries = c.get("/api/audit?action=login", headers=basic(OPERATOR)).get_json()["entries"]
    assert entries[0]["actor"] == "probe" and entries[0]["result"] == "refused"
    assert all(e["action"] != "login" for e in c.get("/api/status").get_json()["recent"])


@pytest.mark.parametrize("reads_public", [True, False])
def test_me_and_login_are_not_throttled_for_sessions(settings: Settings, reads_public: bool):
    """A logged-in dashboard (session cookie) checks no password, so it is never held back."""
    import dataclasses

    s = dataclasses.replace(settings, public_read=reads_public)
    c = app_for(s).test_client()
    assert login(c, OPERATOR[0], OPERATOR[1], addr="127.0.0.1").status_code == 200
    for _ in range(ADDR_FREE + 1):
        login(c.application.test_client(), "x", "y", addr="127.0.0.1")
    assert c.get("/api/auth/me").status_code == 200
    assert c.post("/api/notes", json={"text": "by cookie"}).status_code == 201
