#!/usr/bin/env python3
"""Cloud fleet service benchmark: MQTT fleet-state ingestion and the fleet list with 1,000 nodes.

A benchmark, not a test: it prints figures (and writes them as JSON) and never fails on them.

    .venv/bin/python bench/fleet.py                  # 1,000 nodes (make bench-fleet), ~1 min
    .venv/bin/python bench/fleet.py --nodes 20 --rounds 2 --requests 20   # smoke run
    .venv/bin/python bench/fleet.py --help

Everything runs on 127.0.0.1 from a temporary directory that is removed at the end.
- A real mosquitto (Debian's) is the cloud broker; the worker (ovr_fleet.worker.Worker, the code
  of ovr-fleet-worker.service) runs in this process, the nodes' traffic comes from a separate
  publisher process (paho), so publisher and worker do not share a GIL.
- Ingestion: every node publishes its retained status once, then `--rounds` realtime summaries
  (2 systems each, GPS, alarms, an active event) — the steady state of a fleet. The figure is
  messages the worker handled (parsed and written to SQLite, committed) per second, from the
  first message it handled to the last.
- Fleet list: the API under gunicorn (the unit's command line: gthread, `--web-workers`
  processes, 4 threads) with an operator's Basic credentials; `--requests` sequential
  GET /api/nodes after one warm-up request each, p50/p90/p99/max in ms.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import lib
from lib import Processes, free_port, pct

REPO = lib.REPO
PYTHONPATH = lib.service_path("fleet")  # as on a host: the service and ovr_common
sys.path[:0] = PYTHONPATH

import bcrypt  # noqa: E402
import requests  # noqa: E402
from ovr_fleet.config import load_settings  # noqa: E402
from ovr_fleet.worker import Worker  # noqa: E402

NAME = "fleet"
PUBLISHER = r"""
import json, sys, time
import paho.mqtt.client as mqtt
port, nodes, rounds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
c = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="bench-nodes")
c.max_queued_messages_set(0)
c.connect("127.0.0.1", port)
c.loop_start()
t0 = time.time()
infos = []
for n in range(nodes):
    node = f"node-{n:04d}"
    infos.append(c.publish(f"ovr/{node}/status", json.dumps({"state": "online", "version": "1.0", "deployment_id": f"dep-{n % 10}",
                                                          "ts": int(time.time() * 1000), "schema": 1}), qos=1, retain=True))
for r in range(rounds):
    for n in range(nodes):
        node = f"node-{n:04d}"
        body = {"ts": int(time.time() * 1000), "schema": 1, "round": r,
                "systems": [{"system_id": f"{node}-gx", "soc": 50 + (n + r) % 50, "voltage": 52.0, "power_in": 100.0 + r,
                             "power_out": 900.0 + n, "mode": 3, "alarms": {"low_soc": (n + r) % 2}, "stale": False,
                             "gps": {"lat": 40 + n / 1000, "lon": -3 - n / 1000, "ts": int(time.time() * 1000)}},
                            {"system_id": f"{node}-meter", "type": "acuvim", "power_out": 300.0}],
                "events": [{"id": f"ev-{n % 25}", "name": f"Event {n % 25}"}]}
        infos.append(c.publish(f"ovr/{node}/realtime", json.dumps(body), qos=1, retain=True))
for i in infos:
    i.wait_for_publish(60)
print(json.dumps({"published": len(infos), "seconds": time.time() - t0}))
c.disconnect()
c.loop_stop()
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=10, help="realtime summaries per node")
    ap.add_argument("--requests", type=int, default=300, help="GET /api/nodes requests")
    ap.add_argument("--web-workers", type=int, default=2)
    lib.add_common_args(ap, NAME)
    return ap.parse_args(argv)


def run(args: argparse.Namespace, tmp: Path, procs: Processes, result: dict[str, Any]) -> None:
    result |= {"nodes": args.nodes, "rounds": args.rounds, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    port = free_port()
    lib.start_mosquitto(procs, port, "max_queued_messages 1000000", "max_inflight_messages 1000")
    (tmp / "pw").write_text("x\n")
    password = "bench-operator-pw"
    (tmp / "ops.json").write_text(json.dumps({"operators": [
        {"name": "bench", "role": "viewer", "hash": bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()}]}))
    env = {"OVR_FLEET_DB": str(tmp / "fleet.db"), "OVR_FLEET_OPERATORS_FILE": str(tmp / "ops.json"),
           "OVR_MQTT_PORT": str(port), "OVR_MQTT_PASSWORD_FILE": str(tmp / "pw"), "OVR_VM_URL": "http://127.0.0.1:9",
           "OVR_FLEET_VM_SYNC_SECONDS": "86400", "OVR_FLEET_LOG_LEVEL": "WARNING"}
    settings = load_settings(env)
    logging.basicConfig(level=logging.ERROR)
    worker = Worker(settings, client_id="bench-worker")
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    worker.connected.wait(10)
    time.sleep(0.5)

    # ---- ingestion --------------------------------------------------------------------
    expected = args.nodes * (1 + args.rounds)
    first_at: list[float] = []

    def watch() -> None:
        while worker.stats.handled == 0:
            time.sleep(0.001)
        first_at.append(time.perf_counter())
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    pub = subprocess.run([sys.executable, "-c", PUBLISHER, str(port), str(args.nodes), str(args.rounds)],
                         capture_output=True, text=True, timeout=600, check=True)
    published = json.loads(pub.stdout.strip().splitlines()[-1])
    deadline = time.time() + 300
    while worker.stats.handled < expected and time.time() < deadline:
        time.sleep(0.01)
    done_at = time.perf_counter()
    watcher.join(1)
    elapsed = done_at - first_at[0]
    result["ingest"] = {"messages": expected, "handled": worker.stats.handled, "dropped": worker.stats.dropped,
                        "seconds": round(elapsed, 3), "msgs_per_s": round(worker.stats.handled / elapsed),
                        "publisher_msgs_per_s": round(published["published"] / published["seconds"])}
    worker.stop.set()
    thread.join(10)

    # ---- fleet list -------------------------------------------------------------------
    web_port = free_port()
    genv = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(PYTHONPATH), "OVR_FLEET_ENV_FILE": "/nonexistent"}
    procs.start("gunicorn", [lib.tool("gunicorn"), "--bind", f"127.0.0.1:{web_port}", "--workers", str(args.web_workers),
                             "--threads", "4", "--worker-class", "gthread", "--log-level", "warning",
                             "ovr_fleet.web:create_app()"], env=genv)
    lib.wait_port(web_port, 20, "the fleet API", lambda: procs.check("gunicorn"))
    s = requests.Session()
    s.headers["Authorization"] = "Basic " + base64.b64encode(f"bench:{password}".encode()).decode()
    url = f"http://127.0.0.1:{web_port}/api/nodes"
    for _ in range(args.web_workers * 4):  # every worker verifies the password once (bcrypt), then caches
        r = s.get(url, timeout=30)
        r.raise_for_status()
    n_nodes = len(r.json()["nodes"])
    size = len(r.content)
    lat = []
    for _ in range(args.requests):
        t = time.perf_counter()
        r = s.get(url, timeout=30)
        lat.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200
    lat_dep = []
    for _ in range(max(1, args.requests // 3)):
        t = time.perf_counter()
        s.get(url + "?deployment_id=dep-3", timeout=30).raise_for_status()
        lat_dep.append((time.perf_counter() - t) * 1000)
    result["fleet_list"] = {"nodes_listed": n_nodes, "response_bytes": size, "requests": args.requests,
                            "p50_ms": round(statistics.median(lat), 1), "p90_ms": round(pct(lat, 90), 1),
                            "p99_ms": round(pct(lat, 99), 1), "max_ms": round(max(lat), 1),
                            "filtered_p50_ms": round(statistics.median(lat_dep), 1),
                            "filtered_p99_ms": round(pct(lat_dep, 99), 1)}


def print_report(result: dict[str, Any]) -> None:
    i, f = result["ingest"], result["fleet_list"]
    print(f"ovr-fleet bench ({result['machine']}), {result['nodes']} nodes, {result['rounds']} realtime rounds")
    print(f"  ingestion: {i['handled']}/{i['messages']} messages in {i['seconds']} s = {i['msgs_per_s']} msgs/s "
          f"(publisher {i['publisher_msgs_per_s']} msgs/s, dropped {i['dropped']})")
    print(f"  GET /api/nodes ({f['nodes_listed']} nodes, {f['response_bytes'] // 1024} KiB): p50 {f['p50_ms']} ms, "
          f"p90 {f['p90_ms']} ms, p99 {f['p99_ms']} ms, max {f['max_ms']} ms (goal p99 <= 200 ms)")
    print(f"  GET /api/nodes?deployment_id=… ({result['nodes'] // 10} nodes): p50 {f['filtered_p50_ms']} ms, p99 {f['filtered_p99_ms']} ms")


def main(argv: list[str] | None = None) -> int:
    return lib.main(sys.modules[__name__], parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
