#!/usr/bin/env python3
"""Events service benchmark: /api/realtime latency with 10 GX, and control write -> confirmed.

A benchmark, not a test: it prints figures (and writes them as JSON) and never fails on them.

    .venv/bin/python bench/events.py            # make bench-events (~1 min)
    .venv/bin/python bench/events.py --quick    # smoke run

Everything runs on 127.0.0.1 from a temporary directory: a real mosquitto, 10 GX simulators
(files/services/gxsim, one portal each, all on that broker), the worker
(`python -m ovr_events worker`) and the API under gunicorn with the role's command line
(2 workers). Clients are sequential HTTP requests over keep-alive connections.
- realtime: N GETs of /api/realtime; p50/p90/p99/max in ms, and the response size.
- control: M writes of ac_input_current_limit alternating between two values on one GX, each
  polled every 5 ms on /api/gx/writes/<id> until confirmed; p50/p95/max in ms from the POST
  to the poll that saw `confirmed`.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import lib
import requests
from lib import Processes, free_port, pct

# As on a host: events' release holds ovr_common and ovr_gxdiscovery (its GX inventory reader).
EVENTS_PATH = lib.service_path("events", "gxdiscovery")
sys.path[:0] = EVENTS_PATH
from ovr_events.auth import sync_users  # noqa: E402

NAME = "events"
N_GX = 10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer requests and writes")
    lib.add_common_args(ap, NAME)
    return ap.parse_args(argv)


def run(args: argparse.Namespace, tmp: Path, procs: Processes, result: dict[str, Any]) -> None:
    n_get, n_write = (300, 5) if args.quick else (3000, 40)
    port = free_port()
    # One broker for all simulators, but each GX at its own address (127.0.0.2, .3, …): an
    # inventory may not list one broker twice, as no boat has two GX behind one address.
    hosts = [f"127.0.0.{i + 2}" for i in range(N_GX)]
    lib.start_mosquitto(procs, port, *(f"listener {port} {h}" for h in hosts))
    portals = [f"c0ffee0b{i:04x}" for i in range(N_GX)]
    sim_env = {**os.environ, "PYTHONPATH": str(lib.GXSIM), "GXSIM_BROKER_PORT": str(port)}
    for i, p in enumerate(portals):
        procs.start(f"gxsim-{i}", [sys.executable, "-m", "ovr_gxsim", "--portal-id", p], env=sim_env)
    systems = [{"name": f"gx{i}", "system_id": f"boat-{i}", "portal_id": p, "host": hosts[i], "port": port,
                "status": "online"} for i, p in enumerate(portals)]
    (tmp / "gx_systems.json").write_text(json.dumps({"systems": systems}))
    (tmp / "gx_inventory.json").write_text(json.dumps({"systems": [
        {"name": s["name"], "host": s["host"], "port": port} for s in systems]}))
    sync_users(tmp / "users.json", [{"name": "bench", "password": "bench-password", "role": "operator"}])
    api_port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(EVENTS_PATH), "OVR_EVENTS_ENV_FILE": "/nonexistent",
           "OVR_NODE_ID": "bench", "OVR_GX_SYSTEMS": str(tmp / "gx_systems.json"),
           "OVR_GX_INVENTORY": str(tmp / "gx_inventory.json"), "OVR_EVENTS_DATA_DIR": str(tmp / "data"),
           "OVR_EVENTS_RUN_DIR": str(tmp / "run"), "OVR_EVENTS_USERS_FILE": str(tmp / "users.json"),
           "OVR_EVENTS_MQTT_PORT": str(port), "OVR_VM_URL": "http://127.0.0.1:9", "OVR_VMAGENT_URL": "http://127.0.0.1:9",
           "OVR_EVENTS_LOG_LEVEL": "WARNING"}
    procs.start("worker", [sys.executable, "-m", "ovr_events", "worker"], env=env)
    procs.start("gunicorn", [lib.tool("gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{api_port}", "--timeout", "60",
                             "ovr_events.wsgi:app"], env=env)
    base = f"http://127.0.0.1:{api_port}"
    lib.wait_health(base + "/api/health", 20, "the events API", lambda: procs.check("gunicorn"))
    http = requests.Session()

    def live() -> int:
        doc = http.get(base + "/api/realtime").json()
        return sum(1 for s in doc["systems"] if not s["stale"] and s["vebus_instance"]
                   and s["controls"]["ac_input_current_limit"]["value"] is not None)

    deadline = time.monotonic() + 60
    while live() < N_GX and time.monotonic() < deadline:
        time.sleep(0.5)
    n_live = live()
    # --- realtime --------------------------------------------------------------------
    lat, size = [], 0
    for _ in range(n_get):
        t = time.perf_counter()
        r = http.get(base + "/api/realtime")
        lat.append((time.perf_counter() - t) * 1000)
        size = len(r.content)
    # --- control ---------------------------------------------------------------------
    auth = {"Authorization": "Basic " + base64.b64encode(b"bench:bench-password").decode()}
    # Each gunicorn worker verifies a password hash once (scrypt, ~0.5 s here by design) and then
    # caches it: warm both workers so the figures are about the write path, not the login.
    for _ in range(8):
        requests.get(base + "/api/auth/me", headers=auth)
    confirm, states = [], {}
    for i in range(n_write):
        value = 10.0 if i % 2 else 11.0
        t = time.perf_counter()
        r = http.post(base + "/api/gx/settings", headers=auth,
                      json={"system_id": "boat-0", "setting": "ac_input_current_limit", "value": value})
        if r.status_code != 202:
            raise lib.BenchError(f"control write answered {r.status_code}: {r.text[:300]}")
        wid = r.json()["write"]["id"]
        while True:
            w = http.get(f"{base}/api/gx/writes/{wid}").json()["write"]
            if w["state"] not in ("queued", "pending"):
                break
            time.sleep(0.005)
        states[w["state"]] = states.get(w["state"], 0) + 1
        if w["state"] == "confirmed":
            confirm.append((time.perf_counter() - t) * 1000)
    figures = {
        "gx_systems": N_GX, "gx_live": n_live,
        "realtime": {"requests": n_get, "p50_ms": round(statistics.median(lat), 2), "p90_ms": round(pct(lat, 90), 2),
                     "p99_ms": round(pct(lat, 99), 2), "max_ms": round(max(lat), 2), "bytes": size},
        "control": {"writes": n_write, "states": states,
                    "p50_ms": round(statistics.median(confirm), 1) if confirm else None,
                    "p95_ms": round(pct(confirm, 95), 1) if confirm else None,
                    "max_ms": round(max(confirm), 1) if confirm else None},
    }
    result |= figures


def print_report(result: dict[str, Any]) -> None:
    print(json.dumps({k: v for k, v in result.items() if k not in ("meta", "json_path")}, indent=2))
    print(f"figures written to {result['json_path']}")


def main(argv: list[str] | None = None) -> int:
    return lib.main(sys.modules[__name__], parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
