#!/usr/bin/env python3
"""Cloud benchmark: remote-write ingest through Caddy (TLS + per-node basic auth) vs straight into
VictoriaMetrics, and the bytes one edge node sends to the cloud per day.

A benchmark, not a test: it prints figures (and writes them as JSON) and never fails on them.

    .venv/bin/python bench/cloud.py            # full run, ~10 min (make bench-cloud)
    .venv/bin/python bench/cloud.py --quick    # smoke run (~35 s, no edge leg unless --edge-seconds N)
    .venv/bin/python bench/cloud.py --help

Everything runs on 127.0.0.1 from a temporary directory that is removed at the end; every child
process is stopped at the end (and dies with the benchmark if it is killed).

Cloud side, as roles/cloud deploys it: VictoriaMetrics with the command line of the role's unit,
Caddy with the role's Caddyfile.j2 rendered as Ansible does (role defaults, `cloud_bcrypt_hash` at the
role's cost) for N bench nodes, TLS with an ECDSA P-256 certificate from a CA made with openssl
(what roles/cloud/tasks/tls.yml makes with community.crypto). Bench-only changes to the rendered
Caddyfile: admin, HTTP and HTTPS ports (free ports instead of 2019/80/443). VictoriaMetrics gets one
query-only flag (-search.maxUniqueTimeseries) so the bench can count every node's samples.
Between Caddy's write routes and VictoriaMetrics the write gate (files/services/writegate, one
gunicorn worker, ADR 0014) with the limits the role renders, so the Caddy path pays for it.

The vmagent of the edge leg needs stream aggregation, which this host's Debian 12 vmagent (1.79) lacks:
$VMAGENT_BIN points at another (Debian 13's, as in production); without one that leg is skipped and
the report says so. $VICTORIA_METRICS_BIN likewise replaces the VictoriaMetrics binary.

1. Edge cloud leg (bytes per node per day): bench/lib.py's edge pieces (GX traffic at a real node's
   700 msgs/s -> Telegraf with the production config -> vmagent) with the edge role's vmagent unit
   rendered WITH a cloud URL: stream aggregation (vmagent-cloud-aggregation.yml.j2) and basic auth
   toward the Caddy above, through a TCP byte counter (TLS and HTTP included). While it runs,
   the big Caddyfile renders (bcrypt of every bench node) in the background.
2. Ingest: N simulated nodes, one client each (own credentials, own keep-alive connection, like
   vmagent). Each node sends one Prometheus remote-write body (snappy protobuf) every
   INTERVAL s = the edge's stream-aggregation interval (role default 10 s): that is what a node's
   vmagent sends to the cloud, all its series once per interval. Batch size = 67 samples/s x
   INTERVAL, with the label sets the edge leg really produced (repeated as more systems when the
   node has fewer series). Caddy and direct run interleaved at each N; the direct path sends
   extra_label=node_id itself, so VictoriaMetrics does the same work. After each step every node's
   sample count in VictoriaMetrics is checked against what it sent, by node_id.
   The load generator runs in several processes (asyncio, bodies pre-encoded, only the timestamp
   and snappy per request); its CPU is measured and reported.
3. Max throughput of each path: a fixed number of nodes sending back to back (closed loop).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import random
import re
import resource
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lib
import yaml
from lib import CADDY, BenchError, log, verdict

NAME = "cloud"

GOAL_RATIO = 0.8  # caddy / direct max throughput
GOAL_NODES = 1000  # nodes at 67 samples/s on one 2-core box
GOAL_BYTES_DAY = 10_000_000  # per node to the cloud
NODE_SAMPLES_S = 67.0
CADDY_HASH_CACHE_CAP = 1000  # hard-coded in caddyauth (basicauth.go) up to at least 2.6
FULL_LADDER = (100, 300, 1000, 1200, 2000)
NODE_PH = b"\x01NODE\x01"  # node_id placeholder in the encoded template (replaced, same length as names)
TS_MARK = b"\xfe\xfe\xfe\xfe\xfe\x7f"  # 6-byte timestamp placeholder
NAME_LEN = 6  # n00001 ...


# ---- Prometheus remote write, by hand -------------------------------------------------------


def _field(num: int, payload: bytes) -> bytes:
    return bytes([num << 3 | 2]) + lib.varint(len(payload)) + payload


def encode_series(labels: list[tuple[str, str]], value: float, ts: bytes) -> bytes:
    """prometheus.TimeSeries{labels, samples: [Sample{value, timestamp}]} with a raw 6-byte ts varint."""
    body = b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in sorted(labels))
    sample = b"\x09" + struct.pack("<d", value) + b"\x10" + ts
    return body + _field(2, sample)


def ts_varint(ms: int) -> bytes:
    out = lib.varint(ms)
    if len(out) != len(TS_MARK):
        raise BenchError(f"timestamp {ms} does not encode in {len(TS_MARK)} bytes")
    return out


def write_request(series: list[tuple[list[tuple[str, str]], float]], ts: bytes) -> bytes:
    return b"".join(_field(1, encode_series(labels, value, ts)) for labels, value in series)


# ---- load generator (child processes) -------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    low = head.lower()
    m = re.search(rb"\r\ncontent-length:\s*(\d+)", low)
    if m:
        await reader.readexactly(int(m[1]))
    elif b"\r\ntransfer-encoding: chunked" in low:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif status not in (204, 304):
        return status, False
    return status, b"\r\nconnection: close" not in low


class Node:
    def __init__(self, spec: dict[str, Any], parts: list[bytes], head: bytes) -> None:
        self.name = spec["name"]
        self.phase = spec["phase"]
        self.parts = parts
        self.head = head
        self.last_ts = 0
        self.conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.ok_samples = 0


async def _gen(spec: dict[str, Any]) -> dict[str, Any]:
    import cramjam

    host, port = spec["host"], spec["port"]
    ctx = ssl.create_default_context(cafile=spec["ca"]) if spec["tls"] else None
    template = base64.b64decode(spec["template"])
    nseries = spec["series"]
    nodes: list[Node] = []
    for n in spec["nodes"]:
        name = n["name"].encode()
        parts = template.replace(NODE_PH, name).split(TS_MARK)
        path = spec["path"] if not spec["direct"] else f"{spec['path']}?extra_label=node_id={n['name']}"
        auth = ""
        if n.get("password"):
            auth = "Authorization: Basic " + base64.b64encode(f"{n['name']}:{n['password']}".encode()).decode() + "\r\n"
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: ovr-bench-cloud\r\n{auth}"
                "Content-Encoding: snappy\r\nContent-Type: application/x-protobuf\r\n"
                "X-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: ").encode()
        nodes.append(Node(n, parts, head))
    stats: dict[str, Any] = {"requests": 0, "ok": 0, "status": {}, "exc": {}, "late": 0, "max_late_s": 0.0, "retries": 0,
                             "lat": [], "connect_s": 0.0}
    timeout = spec["timeout"]

    async def connect(node: Node) -> None:
        node.conn = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname=host if ctx else None), timeout)

    def drop(node: Node) -> None:
        if node.conn:
            with contextlib.suppress(Exception):
                node.conn[1].close()
        node.conn = None

    async def send(node: Node) -> None:
        now_ms = int(time.time() * 1000)
        node.last_ts = ts = max(now_ms, node.last_ts + 1)
        body = bytes(cramjam.snappy.compress_raw(ts_varint(ts).join(node.parts)))
        t0 = time.monotonic()
        stats["requests"] += 1
        for attempt in (1, 2):
            reused = node.conn is not None
            try:
                if node.conn is None:
                    await connect(node)
                assert node.conn is not None
                reader, writer = node.conn
                writer.write(node.head + str(len(body)).encode() + b"\r\n\r\n" + body)
                status, keep = await asyncio.wait_for(_read_response(reader), timeout)
                break
            except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError,
                    ValueError) as exc:
                drop(node)
                closed = isinstance(exc, ConnectionError | ssl.SSLError) or (
                    isinstance(exc, asyncio.IncompleteReadError) and not exc.partial)
                if reused and closed and attempt == 1:
                    # The server closed the kept-alive connection before answering (VictoriaMetrics
                    # does after -http.* timeouts): a new connection and the same request once more,
                    # as Go's http.Transport in vmagent does. Counted, not an error.
                    stats["retries"] += 1
                    continue
                key = type(exc).__name__
                stats["exc"][key] = stats["exc"].get(key, 0) + 1
                return
        stats["lat"].append(round(time.monotonic() - t0, 4))
        stats["status"][str(status)] = stats["status"].get(str(status), 0) + 1
        if 200 <= status < 300:
            stats["ok"] += 1
            node.ok_samples += nseries
        if not keep or status >= 300:
            drop(node)

    # connect every node first (vmagent keeps its connection), a bounded number at a time
    sem = asyncio.Semaphore(64)

    async def connect_one(node: Node) -> None:
        async with sem:
            with contextlib.suppress(Exception):
                await connect(node)

    t0 = time.monotonic()
    await asyncio.gather(*(connect_one(n) for n in nodes))
    stats["connect_s"] = round(time.monotonic() - t0, 2)
    stats["connected"] = sum(1 for n in nodes if n.conn)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    line = await loop.run_in_executor(None, sys.stdin.readline)
    start = float(line.split()[1])
    duration, interval, mode = spec["duration"], spec["interval"], spec["mode"]
    end = start + duration
    await asyncio.sleep(max(0.0, start - time.time()))
    cpu0 = time.process_time()
    late_s = spec.get("late_s", 1.0)

    async def paced(node: Node) -> None:
        due = start + node.phase
        while due < end:
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > late_s:
                stats["late"] += 1
            stats["max_late_s"] = max(stats["max_late_s"], -delay)
            await send(node)
            due += interval

    async def closed(node: Node) -> None:
        while time.time() < end:
            await send(node)

    async def once(node: Node) -> None:
        async with sem:
            await send(node)

    if mode == "once":
        sem = asyncio.Semaphore(spec.get("concurrency", 32))
    runner = {"paced": paced, "closed": closed, "once": once}[mode]
    await asyncio.gather(*(runner(n) for n in nodes))
    stats["elapsed_s"] = round(time.time() - start, 3)
    stats["cpu_s"] = round(time.process_time() - cpu0, 3)
    stats["ok_samples"] = {n.name: n.ok_samples for n in nodes}
    for n in nodes:
        drop(n)
    return stats


def gen_child(spec_path: str) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    spec = json.loads(Path(spec_path).read_text())
    stats = asyncio.run(_gen(spec))
    print(json.dumps(stats), flush=True)
    return 0


# ---- set-up ------------------------------------------------------------------------------


def node_name(i: int) -> str:
    return f"n{i:05d}"


def node_password(name: str) -> str:
    return hashlib.sha256(f"ovr-bench-cloud:{name}".encode()).hexdigest()[:32]


def cloud_overrides(work: Path, vm_port: int, https_port: int, nodes: list[str], gate_port: int) -> dict[str, Any]:
    return {
        # the write gate (ovr-writegate, ADR 0014) between Caddy and VictoriaMetrics, as on a cloud;
        # the names the edges send: the edge role's own list, as the cloud role's preflight finds it
        "_cloud_writegate_listen": f"127.0.0.1:{gate_port}",
        "__cloud_write_metric_names": lib.role_vars("edge")["edge_vmagent_cloud_metrics"],
        "cloud_nodes": nodes,
        "__cloud_secrets": {n: {"remote_write": node_password(n)} for n in nodes},
        "cloud_domain": "127.0.0.1",
        "cloud_tls_mode": "internal",
        "cloud_operators": [],
        "cloud_vm_data_path": str(work / "cloud-vm"),
        "_cloud_vm_listen_address": f"127.0.0.1:{vm_port}",
        "_cloud_caddy_tls_dir": str(work / "tls"),
        "__cloud_vm_version": vm_version(),
    }


def bench_caddyfile(text: str, admin_port: int, http_port: int, https_port: int) -> str:
    """The rendered Caddyfile on free ports: admin, http_port, https_port and the site's port.
    (The role's Caddyfile passes vmagent's get_vm_proto_version handshake since the first run of
    this benchmark, so vmagent speaks VictoriaMetrics' zstd protocol through it.)"""
    text, n = re.subn(r"(?m)^\tadmin unix//run/caddy/admin\.sock$",
                      f"\tadmin 127.0.0.1:{admin_port}\n\thttp_port {http_port}\n\thttps_port {https_port}", text)
    text, m = re.subn(r"(?m)^127\.0\.0\.1 \{$", f"127.0.0.1:{https_port} {{", text)
    if n != 1 or m != 1:
        raise BenchError("the rendered Caddyfile does not have the expected admin line / site address")
    return text


def make_tls(tls: Path) -> None:
    """A CA (P-384) and a server certificate (P-256) for 127.0.0.1, as roles/cloud/tasks/tls.yml makes them."""
    tls.mkdir(parents=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=tls, check=True, capture_output=True, timeout=60)

    run("ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "ca.key")
    run("req", "-x509", "-new", "-key", "ca.key", "-days", "30", "-subj", "/CN=ovr-tele bench cloud CA",
        "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.crt")
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "server.key")
    run("req", "-new", "-key", "server.key", "-subj", "/CN=127.0.0.1", "-out", "server.csr")
    (tls / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "30",
        "-extfile", "ext.cnf", "-out", "server.crt")


def caddy_version() -> str:
    out = subprocess.run([CADDY, "version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return f"caddy {out.split()[0] if out else '?'} ({lib.package_version('caddy')})"


class ByteCounter:
    """TCP relay that counts the bytes each way (what vmagent puts on the wire, TLS included)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.up = self.down = 0
        self.conns = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += 1
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                with self.lock:
                    if up:
                        self.up += len(data)
                    else:
                        self.down += len(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def snapshot(self) -> tuple[int, int]:
        with self.lock:
            return self.up, self.down

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Cloud:
    work: Path
    procs: lib.Processes
    vm_url: str
    https_port: int
    admin_port: int
    http_port: int
    ca: Path
    caddyfile: Path
    notes: list[str] = field(default_factory=list)
    hash_cache: bool | None = None

    @property
    def write_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/api/v1/write"


def vm_version() -> str:
    """The cloud VictoriaMetrics' version as the role reads it (dpkg), or from the VERSION file
    beside $VICTORIA_METRICS_BIN; "0" when unknown (Caddy then keeps vmagent on Prometheus' protocol)."""
    path = lib.binary("VICTORIA_METRICS_BIN", lib.VICTORIA_METRICS)
    info = Path(path).parent / "VERSION"
    text = lib.package_version("victoria-metrics") if path == lib.VICTORIA_METRICS else \
        (info.read_text() if info.exists() else "")
    found = re.search(r"(\d+\.\d+(\.\d+)?)", text.replace("victoria-metrics", ""))
    return found.group(1) if found else "0"


def describe_binary(env: str, default: str, pkg: str = "victoria-metrics") -> str:
    path = lib.binary(env, default)
    if path == default:
        return f"{path} ({lib.package_version(pkg)}, this host's package)"
    info = Path(path).parent / "VERSION"  # written next to a copied binary, Debian builds print no version
    return f"{path} (${env}: {info.read_text().strip() if info.exists() else 'version unknown'})"


def start_vm(work: Path, procs: lib.Processes, rendered: str) -> str:
    argv = lib.exec_start(rendered)
    argv[0] = lib.binary("VICTORIA_METRICS_BIN", lib.VICTORIA_METRICS)
    # query-only: the bench counts samples of up to N x series per step in one query
    argv.append("-search.maxUniqueTimeseries=10000000")
    procs.start("cloud-vm", argv)
    port = int(next(a for a in argv if a.startswith("-httpListenAddr=")).rsplit(":", 1)[1])
    url = f"http://127.0.0.1:{port}"
    lib.wait_health(url + "/health", 30, "cloud VictoriaMetrics", lambda: procs.check("cloud-vm"), lib.vm_healthy)
    return url


def start_gate(work: Path, procs: lib.Processes, limits: str, port: int) -> None:
    """ovr-writegate from files/services/writegate, as its unit runs it (one worker, threads)."""
    conf = work / "writegate.json"
    conf.write_text(limits)
    env = dict(os.environ, PYTHONPATH=str(lib.REPO / "files/services/writegate"), PYTHONDONTWRITEBYTECODE="1")
    procs.start("writegate", [lib.tool("gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "16",
                              "--worker-class", "gthread", f'ovr_writegate.web:create_app("{conf}")'], env=env)
    lib.wait_health(f"http://127.0.0.1:{port}/health", 30, "the write gate", lambda: procs.check("writegate"))


def start_caddy(cloud: Cloud, text: str) -> None:
    cloud.procs.stop("caddy")
    cloud.caddyfile.write_text(bench_caddyfile(text, cloud.admin_port, cloud.http_port, cloud.https_port))
    adapted = subprocess.run([CADDY, "adapt", "--config", str(cloud.caddyfile), "--adapter", "caddyfile"],
                             capture_output=True, text=True, timeout=60, check=False)
    if adapted.returncode != 0:
        raise BenchError(f"caddy adapt failed:\n{adapted.stderr[-3000:]}")
    cloud.hash_cache = '"hash_cache"' in adapted.stdout
    home = cloud.work / "caddy-home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"))
    cloud.procs.start("caddy", [CADDY, "run", "--config", str(cloud.caddyfile), "--adapter", "caddyfile"], env=env)

    def up() -> bool:
        return probe(cloud, None) == 401

    lib.wait_for(up, 30, "Caddy", lambda: cloud.procs.check("caddy"))


def probe(cloud: Cloud, auth: tuple[str, str] | None, body: bytes = b"", timeout: float = 10.0, query: str = "") -> int:
    """One POST to the write path through Caddy (with `query`, e.g. "?get_vm_proto_version=1"); its status."""
    ctx = ssl.create_default_context(cafile=str(cloud.ca))
    req = urllib.request.Request(cloud.write_url + query, data=body, method="POST",
                                 headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"})
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


# ---- edge cloud leg ----------------------------------------------------------------------------


def stream_aggr_vmagent() -> tuple[str | None, str]:
    """A vmagent with stream aggregation (the edge role's cloud leg needs it): $VMAGENT_BIN or the host's."""
    path = lib.binary("VMAGENT_BIN", lib.VMAGENT)
    desc = describe_binary("VMAGENT_BIN", lib.VMAGENT)
    if not os.access(path, os.X_OK):
        return None, f"{path} not found"
    out = subprocess.run([path, "-help"], capture_output=True, text=True, timeout=30)
    if "-remoteWrite.streamAggr.config" not in out.stdout + out.stderr:
        return None, f"{desc} has no stream aggregation (-remoteWrite.streamAggr.config)"
    return path, desc


def edge_leg(cloud: Cloud, telegraf: str, vmagent: str, seconds: float, warm: float) -> dict[str, Any]:
    """vmagent as the edge role deploys it with a cloud URL, fed by a default GX through Telegraf."""
    work = cloud.work / "edge"
    etc = work / "etc"
    (etc / "vmagent").mkdir(parents=True)
    procs = cloud.procs
    mqtt_port, vm_port, vmagent_port = lib.free_port(), lib.free_port(), lib.free_port()
    counter = ByteCounter(cloud.https_port)
    node = "bench-edge"
    pw_file = etc / "cloud.password"
    pw_file.write_text(node_password(node))
    (etc / "cloud-ca.pem").write_text(cloud.ca.read_text())
    rendered = lib.render_role("edge", [
        "telegraf.conf", "victron_processor.conf", "vmagent.service", "victoria-metrics-override.conf",
        "vmagent-relabel.yml", "vmagent-cloud-aggregation.yml", "vmagent-cloud-relabel.yml"], {
        "edge_vm_listen_address": f"127.0.0.1:{vm_port}",
        "edge_vm_data_path": str(work / "vm"),
        "edge_vmagent_listen_address": f"127.0.0.1:{vmagent_port}",
        "edge_vmagent_data_path": str(work / "vmagent"),
        "edge_cloud_host": "127.0.0.1",
        "edge_cloud_remote_write_url": f"https://127.0.0.1:{counter.port}/api/v1/write",
        "edge_cloud_username": node,
        "__edge_cloud": {"remote_write": node_password(node), "mqtt": "", "ca_pem": cloud.ca.read_text()},
        "_edge_cloud_password_file": str(pw_file),
        "edge_deployment_id": "bench",
        "edge_node_id": node,
        "edge_victron_processor_script_path": str(lib.STAR),
        "_edge_etc": str(etc),
    }, etc / "rendered")
    (etc / "vmagent/relabel.yml").write_text(rendered["vmagent-relabel.yml"])
    (etc / "vmagent/cloud-aggregation.yml").write_text(rendered["vmagent-cloud-aggregation.yml"])
    (etc / "vmagent/cloud-relabel.yml").write_text(rendered["vmagent-cloud-relabel.yml"])
    (etc / "telegraf.conf").write_text(rendered["telegraf.conf"])
    interval = lib.duration_s(yaml.safe_load(rendered["vmagent-cloud-aggregation.yml"])[0]["interval"])
    mosq_log = lib.start_mosquitto(procs, mqtt_port, "log_type all")
    vm_argv = lib.exec_start(rendered["victoria-metrics-override.conf"])
    vm_argv[0] = lib.binary("VICTORIA_METRICS_BIN", lib.VICTORIA_METRICS)
    procs.start("edge-vm", vm_argv)
    # vmagent asks each URL once at start whether it speaks VictoriaMetrics' protocol: VM must be up
    lib.wait_health(f"http://127.0.0.1:{vm_port}/health", 30, "edge VM", lambda: procs.check("edge-vm"), lib.vm_healthy)
    vmagent_argv = lib.exec_start(rendered["vmagent.service"])
    vmagent_argv[0] = vmagent
    procs.start("vmagent", vmagent_argv)
    vmagent_url = f"http://127.0.0.1:{vmagent_port}"
    lib.wait_health(vmagent_url + "/health", 30, "vmagent", lambda: procs.check("vmagent"), lib.vm_healthy)

    portal, system_id = "c0ffee0c10ad", "gx-default"
    tdir = work / "telegraf.d"
    tdir.mkdir()
    (tdir / "gx_mqtt_sources.conf").write_text(lib.input_conf(mqtt_port, "pipeline", system_id, portal))
    (tdir / "victron_processor.conf").write_text(rendered["victron_processor.conf"])
    lib.start_telegraf(procs, "telegraf", telegraf, etc / "telegraf.conf", tdir, node, mosq_log, f"N/{portal}/#")
    pub = lib.start_publisher(procs, "publisher", work / "publisher.json", host="127.0.0.1", port=mqtt_port,
                              client_id=f"ovr-gxsim-{portal}", rate=lib.NODE_RATE, seconds=warm + seconds + 5,
                              tick_s=lib.gxsim_tick(), cycle=lib.gx_cycle(portal))
    lib.go(pub)
    names = ("vmagent_remotewrite_bytes_sent_total", "vmagent_remotewrite_blocks_sent_total",
             "vmagent_remotewrite_rows_pushed_after_relabel_total", "vmagent_remotewrite_requests_total",
             "vmagent_remotewrite_conn_bytes_written_total", "vm_streamaggr_output_samples_total")

    def cloud_counters() -> dict[str, float]:
        """vmagent's counters for the cloud URL (the second -remoteWrite.url: label 2:secret-url / queue 2_...)."""
        return lib.prom_counters(vmagent_url + "/metrics", names, lambda line: 'url="2:' in line or line.startswith(
            ("vmagent_remotewrite_conn_bytes_written_total", "vm_streamaggr_output_samples_total")))

    time.sleep(warm)
    c0, w0, t0, e0 = cloud_counters(), counter.snapshot(), time.monotonic(), time.time()
    time.sleep(seconds)
    c1, w1, t1, e1 = cloud_counters(), counter.snapshot(), time.monotonic(), time.time()
    span = t1 - t0
    time.sleep(2.0)  # the last flush of the window reaches the cloud
    protocol = [ln for ln in procs.tail("vmagent", 200_000).splitlines() if "remote write protocol" in ln.lower()]
    for name in ("publisher", "telegraf", "vmagent", "edge-vm", "mosquitto"):
        procs.stop(name)
    counter.close()
    d = {k: c1[k] - c0[k] for k in names}
    day = 86400 / span
    # samples that reached the cloud with timestamps in the window (aggregated samples carry the flush time)
    found = lib.vm_query(cloud.vm_url, f'sum(count_over_time({{node_id="bench-edge"}}[{int(1000 * (e1 - e0))}ms]))', e1)
    rows = int(float(found[0]["value"][1])) if found else 0
    # uncompressed size of what reached the cloud: the same series re-encoded as remote write
    series = export_series(cloud.vm_url, '{node_id="bench-edge"}')
    raw_per_sample = uncompressed_bytes_per_sample(series)
    out = {
        "vmagent_protocol_log": [log_msg(ln)[:200] for ln in protocol[:3]],
        "seconds": round(span, 1), "warm_s": warm, "aggregation_interval_s": interval, "gx_msgs_s": lib.NODE_RATE,
        "counters_delta": {k: round(v) for k, v in d.items()},
        "wire_bytes_up": w1[0] - w0[0], "wire_bytes_down": w1[1] - w0[1],
        "body_bytes_per_day": round(d["vmagent_remotewrite_bytes_sent_total"] * day),
        "wire_bytes_per_day": round((w1[0] - w0[0]) * day),
        "wire_bytes_down_per_day": round((w1[1] - w0[1]) * day),
        "samples_per_day": round(rows * day),
        "requests_per_day": round(d["vmagent_remotewrite_requests_total"] * day),
        "series_in_cloud": len(series),
        "samples_in_cloud": rows, "samples_per_s": round(rows / span, 2) if span else 0,
        "compressed_bytes_per_sample": round(d["vmagent_remotewrite_bytes_sent_total"] / rows, 2) if rows else None,
        "uncompressed_bytes_per_sample": round(raw_per_sample, 1) if raw_per_sample else None,
        "tcp_connections": counter.conns,
    }
    out["compression_ratio"] = (round(raw_per_sample / out["compressed_bytes_per_sample"], 1)
                                if raw_per_sample and out["compressed_bytes_per_sample"] else None)
    log(f"edge cloud leg: {out['samples_per_s']} samples/s to the cloud, {out['series_in_cloud']} series, "
        f"{out['wire_bytes_per_day'] / 1e6:.2f} MB/day on the wire, {out['body_bytes_per_day'] / 1e6:.2f} MB/day bodies")
    return out


def log_msg(line: str) -> str:
    with contextlib.suppress(ValueError, TypeError, KeyError):
        return str(json.loads(line)["msg"])
    return line


def export_series(vm_url: str, selector: str) -> list[dict[str, Any]]:
    q = urllib.parse.urlencode({"match[]": selector})
    text = lib.http_get(f"{vm_url}/api/v1/export?{q}", timeout=60)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def uncompressed_bytes_per_sample(series: list[dict[str, Any]]) -> float | None:
    by_ts: dict[int, list[tuple[list[tuple[str, str]], float]]] = {}
    for s in series:
        labels = list(s["metric"].items())
        for v, ts in zip(s["values"], s["timestamps"], strict=False):
            by_ts.setdefault(ts, []).append((labels, float(v if v is not None else 0)))
    total = n = 0
    for ts, group in by_ts.items():
        total += len(write_request(group, lib.varint(ts)))
        n += len(group)
    return total / n if n else None


# ---- ingest steps ----------------------------------------------------------------------------


@dataclass
class Gen:
    cloud: Cloud
    templates: dict[str, bytes]  # path -> encoded body with placeholders
    series: int
    interval: float
    workers: int
    warm: dict[str, set[str]] = field(default_factory=dict)
    cold_auth: list[dict[str, Any]] = field(default_factory=list)


def build_templates(real: list[dict[str, Any]], series: int) -> tuple[dict[str, bytes], str]:
    """One encoded WriteRequest per path: `series` label sets with node/timestamp placeholders."""
    label_sets = [dict(s["metric"]) for s in real]
    source = f"the edge leg's {len(label_sets)} real series"
    if not label_sets:
        source = "synthetic series (the edge leg produced none)"
        label_sets = [{"__name__": f"victron_bench_m{i:03d}_value", "system_id": "gx", "portal_id": "c0ffee000000",
                       "service": "battery", "instance": "0"} for i in range(67)]
    out: list[dict[str, str]] = []
    rep = 0
    while len(out) < series:
        for ls in label_sets:
            ls = dict(ls)
            if rep:
                ls["system_id"] = f"{ls.get('system_id', 'gx')}-{rep + 1}"
            out.append(ls)
            if len(out) == series:
                break
        rep += 1
    templates = {}
    for path in ("caddy", "direct"):
        items = []
        for i, ls in enumerate(out):
            ls = {k: v for k, v in ls.items() if k not in ("node_id", "deployment_id")}
            ls["node_id"] = NODE_PH.decode()
            ls["deployment_id"] = f"bench-{path}"
            items.append((list(ls.items()), 10.0 + (i % 97) * 0.5))
        body = write_request(items, TS_MARK)
        if body.count(TS_MARK) != series or body.count(NODE_PH) != series:
            raise BenchError("placeholder collision in the encoded template")
        templates[path] = body
    reps = f", repeated as {rep} systems" if rep > 1 else ""
    return templates, source + reps


def run_gen(gen: Gen, path: str, nodes: list[str], mode: str, duration: float, tag: str,
            concurrency: int = 32) -> dict[str, Any]:
    """Start the generator processes, measure CPU of everything while they run."""
    cloud = gen.cloud
    direct = path == "direct"
    rng = random.Random(len(nodes))
    specs = []
    chunks = [nodes[i::gen.workers] for i in range(gen.workers)] if len(nodes) >= gen.workers else [nodes]
    for w, chunk in enumerate(chunks):
        spec = {
            "host": "127.0.0.1", "port": int(cloud.vm_url.rsplit(":", 1)[1]) if direct else cloud.https_port,
            "tls": not direct, "ca": str(cloud.ca), "path": "/api/v1/write", "direct": direct,
            "template": base64.b64encode(gen.templates[path]).decode(), "series": gen.series,
            "nodes": [{"name": n, "password": None if direct else node_password(n),
                       "phase": rng.uniform(0, gen.interval)} for n in chunk],
            "duration": duration, "interval": gen.interval, "mode": mode, "timeout": max(30.0, gen.interval * 3),
            "late_s": min(1.0, gen.interval / 2), "concurrency": max(1, concurrency // len(chunks)),
        }
        f = cloud.work / f"gen-{tag}-{w}.json"
        f.write_text(json.dumps(spec))
        specs.append(f)
    names = [f"gen-{tag}-{w}" for w in range(len(specs))]
    procs = [cloud.procs.start(n, [sys.executable, str(Path(__file__).resolve()), "--gen-child", str(f)], pipes=True)
             for n, f in zip(names, specs, strict=True)]
    for n, p in zip(names, procs, strict=True):
        if lib.read_line(p, 120) != "ready":
            raise BenchError(f"generator {n} did not connect:\n{cloud.procs.tail(n)}")
    pids = {"caddy": cloud.procs.procs["caddy"].pid, "vm": cloud.procs.procs["cloud-vm"].pid}
    pids |= {n: p.pid for n, p in zip(names, procs, strict=True)}
    vm0 = lib.prom_counters(cloud.vm_url + "/metrics", ("vm_rows_inserted_total",))
    start = time.time() + 0.3
    cpu0, (busy0, _), t0 = lib.cpu_snapshot(pids), lib.machine_busy(), time.monotonic()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"go {start:.6f}\n")
        p.stdin.flush()
    results = []
    for n, p in zip(names, procs, strict=True):
        line = lib.read_line(p, duration + 240)
        if not line:
            raise BenchError(f"generator {n} failed:\n{cloud.procs.tail(n)}")
        results.append(json.loads(line))
    # CPU until the last generator reported, before the processes exit
    cpu1, (busy1, _), t1 = lib.cpu_snapshot(pids), lib.machine_busy(), time.monotonic()
    for n in names:
        cloud.procs.stop(n)
    end = time.time()
    wall = t1 - t0
    cpu = {k: cpu1.get(k, cpu0[k]) - cpu0[k] for k in cpu0}
    gen_cpu = sum(v for k, v in cpu.items() if k.startswith("gen-"))
    ours = cpu["caddy"] * (not direct) + cpu["vm"] + gen_cpu
    lat = sorted(x for r in results for x in r["lat"])

    def pct(q: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 3) if lat else None

    status: dict[str, int] = {}
    exc: dict[str, int] = {}
    ok_samples: dict[str, int] = {}
    for r in results:
        for k, v in r["status"].items():
            status[k] = status.get(k, 0) + v
        for k, v in r["exc"].items():
            exc[k] = exc.get(k, 0) + v
        ok_samples |= r["ok_samples"]
    elapsed = max(r["elapsed_s"] for r in results)
    requests = sum(r["requests"] for r in results)
    ok = sum(r["ok"] for r in results)
    vm1 = lib.prom_counters(cloud.vm_url + "/metrics", ("vm_rows_inserted_total",))
    return {
        "path": path, "mode": mode, "nodes": len(nodes), "start": start, "end": end, "elapsed_s": elapsed,
        "requests": requests, "ok_requests": ok, "errors": requests - ok, "status": status, "exceptions": exc,
        "retries_on_closed_conn": sum(r["retries"] for r in results),
        "late": sum(r["late"] for r in results), "max_late_s": round(max(r["max_late_s"] for r in results), 2),
        "connected": sum(r["connected"] for r in results), "connect_s": max(r["connect_s"] for r in results),
        "lat_p50_s": pct(0.5), "lat_p99_s": pct(0.99), "lat_max_s": lat[-1] if lat else None,
        "ok_samples": ok_samples, "sent_ok_samples": sum(ok_samples.values()),
        "samples_per_s": round(sum(ok_samples.values()) / elapsed, 1) if elapsed else 0,
        "vm_rows_inserted": int(vm1["vm_rows_inserted_total"] - vm0["vm_rows_inserted_total"]),
        "cpu_pct_of_core": {"caddy": round(100 * cpu["caddy"] / wall, 1) if not direct else 0.0,
                            "vm": round(100 * cpu["vm"] / wall, 1), "generator": round(100 * gen_cpu / wall, 1)},
        "generator_processes": len(specs),
        "other_cpu_pct_of_core": round(100 * max(0.0, busy1 - busy0 - ours) / wall, 1),
        "machine_busy_pct": round(100 * (busy1 - busy0) / (wall * (os.cpu_count() or 1)), 1),
    }


def verify(gen: Gen, res: dict[str, Any]) -> dict[str, Any]:
    """Every node's samples in VictoriaMetrics, by node_id, against what it sent (2xx)."""
    url = gen.cloud.vm_url
    at = res["end"] + 0.2
    window_ms = int(1000 * (at - res["start"] + 0.2))  # from just before the first send: not the warm-up's
    q = f'sum by (node_id) (count_over_time({{deployment_id="bench-{res["path"]}"}}[{window_ms}ms]))'
    expected = res["ok_samples"]
    deadline = time.monotonic() + 15
    while True:
        got = {r["metric"].get("node_id", ""): int(float(r["value"][1])) for r in lib.vm_query(url, q, at)}
        bad = {n: (got.get(n, 0), e) for n, e in expected.items() if got.get(n, 0) != e}
        strangers = sorted(set(got) - set(expected))
        if (not bad and not strangers) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return {"stored": sum(got.values()), "nodes_mismatched": len(bad), "unexpected_node_ids": strangers[:5],
            "mismatch_examples": dict(list(bad.items())[:3])}


def warm_up(gen: Gen, path: str, nodes: list[str]) -> dict[str, Any] | None:
    """First request of each new node, on both paths, before a measured run: VictoriaMetrics registers
    the node's series (a one-off cost per node) and, through Caddy, bcrypt runs once per node (then
    cached, up to 1000 entries). Run #2 of this bench warmed only the Caddy path, so the direct path
    paid the series registration inside its steps."""
    warm = gen.warm.setdefault(path, set())
    cold = [n for n in nodes if n not in warm]
    if not cold:
        return None
    res = run_gen(gen, path, cold, "once", 0.0, f"warm-{path}{len(warm)}", concurrency=32)
    warm |= set(cold)
    if path != "caddy":
        log(f"warm-up direct: {len(cold)} nodes' first request in {res['elapsed_s']:.1f} s")
        return None
    caddy_cpu_s = res["cpu_pct_of_core"]["caddy"] * res["elapsed_s"] / 100
    out = {"nodes": len(cold), "seconds": res["elapsed_s"], "errors": res["errors"],
           "caddy_cpu_s": round(caddy_cpu_s, 2), "caddy_cpu_ms_per_node": round(1000 * caddy_cpu_s / len(cold), 1),
           "lat_p50_s": res["lat_p50_s"], "lat_max_s": res["lat_max_s"]}
    gen.cold_auth.append(out)
    log(f"warm-up: {len(cold)} nodes' first authenticated request in {res['elapsed_s']:.1f} s, Caddy "
        f"{out['caddy_cpu_ms_per_node']} ms CPU per node")
    return out


def step(gen: Gen, path: str, n: int, seconds: float) -> dict[str, Any]:
    nodes = [node_name(i) for i in range(1, n + 1)]
    warm_up(gen, path, nodes)
    res = run_gen(gen, path, nodes, "paced", seconds, f"{path}{n}")
    res |= verify(gen, res)
    target = n * gen.series / gen.interval
    res["target_samples_per_s"] = round(target, 1)
    p99 = res["lat_p99_s"] or 0.0
    if res["errors"] or res["connected"] < n:
        status = "ERRORS"
    elif res["nodes_mismatched"] or res["unexpected_node_ids"]:
        status = "MISMATCH"
    elif res["late"] or p99 > gen.interval / 2:
        status = "LAG"
    else:
        status = "ok"
    res["status"] = status
    res["limit"] = diagnose(res) if status != "ok" else ""
    for k in ("ok_samples",):
        res.pop(k)
    c = res["cpu_pct_of_core"]
    log(f"{path:6s} N={n:5d}: {res['samples_per_s']:.0f}/{target:.0f} samples/s, {res['errors']} errors, "
        f"late {res['late']}, p99 {p99:.3f} s, stored {res['stored']}/{res['sent_ok_samples']}, caddy {c['caddy']:.0f}% "
        f"vm {c['vm']:.0f}% gen {c['generator']:.0f}% other {res['other_cpu_pct_of_core']:.0f}% -> {status}")
    return res


def diagnose(res: dict[str, Any]) -> str:
    c = res["cpu_pct_of_core"]
    parts = []
    if res["path"] == "caddy" and res["nodes"] > CADDY_HASH_CACHE_CAP:
        parts.append(f"{res['nodes']} nodes > Caddy's basicauth cache of {CADDY_HASH_CACHE_CAP} entries: "
                     "evicted nodes pay bcrypt again on each request")
    if res["errors"]:
        parts.append(f"errors: status {res['status']} exceptions {res['exceptions']}")
    parts.append(f"caddy {c['caddy']:.0f}% / vm {c['vm']:.0f}% / generator {c['generator']:.0f}% of a core "
                 f"({res['generator_processes']} procs), other {res['other_cpu_pct_of_core']:.0f}%, machine "
                 f"{res['machine_busy_pct']:.0f}% busy{' (CPUs saturated)' if res['machine_busy_pct'] >= 90 else ''}")
    return "; ".join(parts)


def throughput(gen: Gen, path: str, conc: int, seconds: float, rnd: int) -> dict[str, Any]:
    nodes = [node_name(i) for i in range(1, conc + 1)]
    warm_up(gen, path, nodes)
    res = run_gen(gen, path, nodes, "closed", seconds, f"max-{path}-{rnd}")
    res |= verify(gen, res)
    res.pop("ok_samples")
    res["round"] = rnd
    c = res["cpu_pct_of_core"]
    log(f"max {path:6s} round {rnd}: {res['samples_per_s']:.0f} samples/s ({res['ok_requests']} requests, "
        f"{res['errors']} errors), stored {res['stored']}/{res['sent_ok_samples']}, caddy {c['caddy']:.0f}% "
        f"vm {c['vm']:.0f}% gen {c['generator']:.0f}% other {res['other_cpu_pct_of_core']:.0f}%")
    return res


def identity_check(gen: Gen) -> dict[str, Any]:
    """n00001 writes a series labelled node_id=n00002 through Caddy; it must land as n00001."""
    cloud = gen.cloud
    ts = int(time.time() * 1000)
    labels = [("__name__", "ovr_bench_identity_probe"), ("node_id", node_name(2)), ("deployment_id", "bench-identity")]
    import cramjam

    body = bytes(cramjam.snappy.compress_raw(write_request([(labels, 1.0)], ts_varint(ts))))
    own = (node_name(1), node_password(node_name(1)))
    out = {
        "no_credentials": probe(cloud, None, body),
        "wrong_password": probe(cloud, (node_name(1), "x" * 32), body),
        # vmagent's protocol handshake carries no body, but a node could send one: VictoriaMetrics
        # 1.79 (Debian 12) ingests it, so it must never reach VictoriaMetrics without extra_label.
        "handshake_with_body": probe(cloud, own, body, query="?get_vm_proto_version=1"),
        "own_credentials": probe(cloud, own, body),
    }
    deadline = time.monotonic() + 20
    q = 'count_over_time(ovr_bench_identity_probe{deployment_id="bench-identity"}[5m])'
    while not (found := lib.vm_query(cloud.vm_url, q, time.time())) and time.monotonic() < deadline:
        time.sleep(0.5)
    out["stored_as"] = sorted(r["metric"].get("node_id", "") for r in found)
    out["ok"] = (out["no_credentials"] == 401 and out["wrong_password"] == 401 and out["own_credentials"] == 204
                 and out["stored_as"] == [node_name(1)])
    log(f"identity: {out}")
    return out


# ---- report --------------------------------------------------------------------------------


def print_report(result: dict[str, Any]) -> None:
    w = print
    meta = result["meta"]
    lib.print_header("Cloud benchmark: remote write through Caddy (TLS + per-node basic auth) vs straight into "
                     "VictoriaMetrics", meta, meta.get("mode"))
    v = meta["versions"]
    w(f"{v['caddy']}; VictoriaMetrics {v['victoria-metrics']}; vmagent (edge leg) {v.get('vmagent_edge_leg', '-')}; "
      f"Telegraf {v['telegraf']}; {v['mosquitto']}. This host is Debian {meta.get('debian', '?')}; production runs "
      "Debian 13 (trixie) packages, other minor versions")
    w("Machine shared with other developers (Molecule containers): figures are noisy; 'other' = CPU of everything "
      "else meanwhile")
    ing = result.get("ingest")
    if ing:
        w(f"Caddy path: {ing['caddy_url']} -- TLS (ECDSA P-256 certificate from an openssl CA, as roles/cloud), "
          f"roles/cloud Caddyfile.j2 rendered for {ing['configured_nodes']} nodes, basicauth bcrypt cost "
          f"{ing['bcrypt_cost']}, hash_cache {'on' if ing['hash_cache'] else 'OFF'} (Caddyfile default; "
          f"capped at {CADDY_HASH_CACHE_CAP} entries in Caddy's code)")
        w(f"Direct path: {ing['direct_url']}?extra_label=node_id=<node> (plain HTTP, no auth)")
        w(f"Payload: Prometheus remote write (snappy protobuf), one body of {ing['series_per_node']} samples per node "
          f"every {ing['interval_s']:g} s (the edge's stream-aggregation interval: what a node's vmagent sends) = "
          f"{ing['series_per_node'] / ing['interval_s']:g} samples/s per node; label sets: {ing['series_source']}; "
          f"one keep-alive connection per node; generator: {ing['workers']} processes")
        w("")
        w(f"-- Max throughput (closed loop: {ing['max_concurrency']} nodes sending back to back, "
          f"{ing['max_seconds']:g} s each, interleaved) --")
        w(f"{'round':6s}{'path':8s}{'samples/s':>11s}{'req/s':>8s}{'errors':>7s}{'p50 s':>7s}{'p99 s':>7s}"
          f"{'stored':>10s} | {'caddy%':>6s}{'vm%':>6s}{'gen%':>6s}{'other%':>7s}")
        for r in ing["max"]:
            c = r["cpu_pct_of_core"]
            w(f"{r['round']:<6d}{r['path']:8s}{r['samples_per_s']:11.0f}{r['ok_requests'] / r['elapsed_s']:8.0f}"
              f"{r['errors']:7d}{r['lat_p50_s'] or 0:7.3f}{r['lat_p99_s'] or 0:7.3f}"
              f"{'ok' if r['stored'] == r['sent_ok_samples'] else str(r['stored']) + '/' + str(r['sent_ok_samples']):>10s}"
              f" | {c['caddy']:6.0f}{c['vm']:6.0f}{c['generator']:6.0f}{r['other_cpu_pct_of_core']:7.0f}")
        w("")
        w(f"-- Nodes at {ing['series_per_node'] / ing['interval_s']:g} samples/s each ({ing['step_seconds']:g} s per "
          "step, interleaved; ok = no error, no batch late, p99 < interval/2, every node's samples stored under its "
          "own node_id) --")
        w(f"{'N':>6s}{'target/s':>10s} | {'caddy: samples/s':>16s}{'err':>5s}{'late':>5s}{'p99 s':>7s}{'caddy%':>7s}"
          f"{'vm%':>5s}{'gen%':>5s}{'oth%':>5s}{'':2s}{'result':8s} | {'direct: samples/s':>17s}{'err':>5s}{'late':>5s}"
          f"{'p99 s':>7s}{'vm%':>5s}{'gen%':>5s}{'oth%':>5s}{'':2s}{'result':8s} | ratio")
        for n in ing["ladder"]:
            row = {s["path"]: s for s in ing["steps"] if s["nodes"] == n}
            if not row:
                continue
            target = next(iter(row.values()))["target_samples_per_s"]

            def cells(s: dict[str, Any] | None, caddy: bool) -> str:
                if not s:
                    return f"{'-':>16s}{'':42s}" if caddy else f"{'-':>17s}{'':35s}"
                c = s["cpu_pct_of_core"]
                txt = f"{s['samples_per_s']:{16 if caddy else 17}.0f}{s['errors']:5d}{s['late']:5d}{s['lat_p99_s'] or 0:7.3f}"
                if caddy:
                    txt += f"{c['caddy']:7.0f}"
                return txt + f"{c['vm']:5.0f}{c['generator']:5.0f}{s['other_cpu_pct_of_core']:5.0f}  {s['status']:8s}"

            ratio = ""
            if "caddy" in row and "direct" in row and row["direct"]["samples_per_s"] \
                    and row["caddy"]["status"] == row["direct"]["status"] == "ok":
                ratio = f"{row['caddy']['samples_per_s'] / row['direct']['samples_per_s']:.2f}"
            w(f"{n:6d}{target:10.0f} | {cells(row.get('caddy'), True)} | {cells(row.get('direct'), False)} | {ratio}")
        for s in ing["steps"]:
            if s["status"] != "ok":
                w(f"limit {s['path']} N={s['nodes']}: {s['status']}: {s['limit']}")
        if ing["cold_auth"]:
            tot_n = sum(c["nodes"] for c in ing["cold_auth"])
            tot_cpu = sum(c["caddy_cpu_s"] for c in ing["cold_auth"])
            w(f"Cold auth (first request of each node after a Caddy start/reload; bcrypt cost {ing['bcrypt_cost']}): "
              f"{tot_n} nodes, Caddy {tot_cpu:.1f} CPU-s = {1000 * tot_cpu / tot_n:.0f} ms per node "
              f"-> {GOAL_NODES} nodes reconnecting after a reload cost ~{tot_cpu / tot_n * GOAL_NODES:.0f} CPU-s")
        ident = ing.get("identity")
        if ident:
            w(f"Identity through Caddy: no credentials -> {ident['no_credentials']}, wrong password -> "
              f"{ident['wrong_password']}, n00001 writing node_id=n00002 -> {ident['own_credentials']}, stored as "
              f"node_id={ident['stored_as']} {'(as it must)' if ident['ok'] else '(WRONG)'}")
    el = result.get("edge_leg")
    if el:
        w("")
        w(f"-- Edge cloud leg: default GX ({el['gx_msgs_s']} msgs/s) -> Telegraf (production config) -> vmagent (role "
          f"unit with cloud URL, stream aggregation {el['aggregation_interval_s']:g} s) -> Caddy (TLS, auth) -> VM; "
          f"{el['seconds']:g} s measured after {el['warm_s']:g} s --")
        w(f"series to the cloud: {el['series_in_cloud']}   samples/s: {el['samples_per_s']}   samples/day: "
          f"{el['samples_per_day']:,}   requests/day: {el['requests_per_day']:,}")
        w(f"bytes/day on the wire (TCP payload vmagent -> Caddy: TLS + HTTP + bodies): {el['wire_bytes_per_day']:,} "
          f"({el['wire_bytes_per_day'] / 1e6:.2f} MB); responses back: {el['wire_bytes_down_per_day'] / 1e6:.2f} MB")
        w(f"bytes/day of remote-write bodies (vmagent_remotewrite_bytes_sent_total): {el['body_bytes_per_day']:,} "
          f"({el['body_bytes_per_day'] / 1e6:.2f} MB)")
        w(f"per sample: {el['compressed_bytes_per_sample']} B compressed vs {el['uncompressed_bytes_per_sample']} B "
          f"Prometheus remote-write protobuf -> compression {el['compression_ratio']}x")
        w(f"vmagent's protocol choice (its log): {'; '.join(el['vmagent_protocol_log']) or 'nothing logged'}")
    w("")
    w("-- Summary vs goals --")
    s = result.get("summary", {})
    for label, value, goal in s.get("rows", []):
        w(f"{label:58s}{value:>30s}   goal {goal}")
    lib.print_footer(result)


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    rows = []
    out: dict[str, Any] = {}
    ing = result.get("ingest")
    if ing:
        best = {}
        for path in ("caddy", "direct"):
            steps = [st for st in ing["steps"] if st["path"] == path]
            ok = [st["nodes"] for st in steps if st["status"] == "ok"]
            failed = [st["nodes"] for st in steps if st["status"] != "ok"]
            best[path] = max(ok, default=0)
            top = "" if failed else " (top of ladder)"
            out[f"max_nodes_{path}"] = best[path]
            rows.append((f"largest N sustained, {path} (at {ing['series_per_node'] / ing['interval_s']:g} samples/s)",
                         f">={best[path]}{top}" if not failed else str(best[path]) +
                         f" (failed at {min(failed)})", ""))
        rows[-2] = (rows[-2][0], rows[-2][1] + f" {verdict(best['caddy'] >= GOAL_NODES)}", f">={GOAL_NODES}")
        mx = {p: max((r["samples_per_s"] for r in ing["max"] if r["path"] == p), default=0) for p in ("caddy", "direct")}
        out["max_samples_per_s"] = mx
        rows.append(("max throughput caddy (samples/s)", f"{mx['caddy']:.0f}", ""))
        rows.append(("max throughput direct (samples/s)", f"{mx['direct']:.0f}", ""))
        if mx["direct"]:
            ratio = mx["caddy"] / mx["direct"]
            out["ratio"] = round(ratio, 3)
            rows.append(("ratio caddy / direct (max throughput)", f"{ratio:.2f} {verdict(ratio >= GOAL_RATIO)}",
                         f">={GOAL_RATIO}"))
    el = result.get("edge_leg")
    if el:
        mb = el["wire_bytes_per_day"] / 1e6
        rows.append(("bytes/day per node to the cloud (wire, TLS incl.)",
                     f"{mb:.2f} MB {verdict(el['wire_bytes_per_day'] <= GOAL_BYTES_DAY)}",
                     f"<={GOAL_BYTES_DAY / 1e6:g} MB"))
        rows.append(("samples/day per node to the cloud", f"{el['samples_per_day']:,}", ""))
    out["rows"] = rows
    return out


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run (<45 s): 16 nodes, 2 s interval, short steps, "
                    "no edge leg unless --edge-seconds is given")
    ap.add_argument("--nodes", help=f"comma-separated N ladder (default {','.join(map(str, FULL_LADDER))}; quick 16)")
    ap.add_argument("--interval", type=float, help="seconds between a node's batches (default: the edge role's "
                    "stream-aggregation interval, 10 s; quick 2 s)")
    ap.add_argument("--samples-per-node", type=float, default=NODE_SAMPLES_S,
                    help="samples/s per node (default %(default)s); batch = this x interval")
    ap.add_argument("--step-seconds", type=float, help="seconds per ladder step (default 2 x interval; quick 4)")
    ap.add_argument("--max-concurrency", type=int, help="nodes in the closed-loop max-throughput runs (default 64)")
    ap.add_argument("--max-seconds", type=float, help="seconds per max-throughput run (default 10, quick 3)")
    ap.add_argument("--edge-seconds", type=float, help="measured seconds of the edge cloud leg (default 150, quick 8)")
    ap.add_argument("--workers", type=int, default=2, help="load-generator processes (default %(default)s)")
    ap.add_argument("--skip-edge", action="store_true", help="no edge cloud leg")
    ap.add_argument("--edge-only", action="store_true", help="only the edge cloud leg (bytes/day), no ingest runs")
    lib.add_common_args(ap, NAME)
    ap.add_argument("--gen-child", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def run(args: argparse.Namespace, work: Path, procs: lib.Processes, result: dict[str, Any]) -> None:
    quick = args.quick
    role_interval = lib.duration_s(lib.role_vars("edge")["edge_vmagent_cloud_aggregation_interval"])
    interval = args.interval or (2.0 if quick else role_interval)
    ladder = sorted({int(x) for x in args.nodes.split(",")}) if args.nodes else ([16] if quick else list(FULL_LADDER))
    step_s = args.step_seconds or (3.0 if quick else 2 * interval)
    max_conc = args.max_concurrency or (16 if quick else 64)
    max_s = args.max_seconds or (2.0 if quick else 10.0)
    edge_s = args.edge_seconds or (4.0 if quick else 150.0)
    edge_warm = 1.0 if quick else 2 * role_interval
    series = round(args.samples_per_node * interval)
    configured = 0 if args.edge_only else max([*ladder, max_conc])

    lib.ensure_packages()
    if not os.access(CADDY, os.X_OK):
        raise BenchError(f"{CADDY} is missing: make host (apt-get install caddy)")
    telegraf = lib.locate_telegraf() if not args.skip_edge else ""
    cloud_vars = lib.role_vars("cloud")
    bcrypt_cost = int(cloud_vars["_cloud_bcrypt_cost_nodes"])
    meta = result["meta"]
    meta |= {
        "mode": "edge-only run" if args.edge_only else "QUICK (smoke) run" if quick else "full run",
        "debian": Path("/etc/debian_version").read_text().strip() if Path("/etc/debian_version").exists() else "?",
        "versions": {"caddy": caddy_version(),
                     "victoria-metrics": describe_binary("VICTORIA_METRICS_BIN", lib.VICTORIA_METRICS),
                     "telegraf": lib.telegraf_version(telegraf) if telegraf else "-",
                     "mosquitto": lib.package_version("mosquitto"), "python": meta["python"]},
        "goals": {"ratio": GOAL_RATIO, "nodes": GOAL_NODES, "bytes_per_day": GOAL_BYTES_DAY},
    }
    result["notes"] = []
    log(f"work dir {work}; rendering roles/cloud (Caddyfile, VM unit)")
    vm_port, https_port = lib.free_port(), lib.free_port()
    cloud = Cloud(work, procs, "", https_port, lib.free_port(), lib.free_port(), work / "tls/ca.crt", work / "Caddyfile")
    make_tls(work / "tls")
    etc = work / "etc"
    etc.mkdir()
    templates = ["Caddyfile", "victoria-metrics-override.conf", "writegate.json"]
    gate_port = lib.free_port()
    # --quick stays within the smoke test's 45 s: no edge leg unless --edge-seconds asks for it
    skip = "--skip-edge" if args.skip_edge else "--quick without --edge-seconds" if quick and not args.edge_seconds else ""
    vmagent, vmagent_desc = (None, skip) if skip else stream_aggr_vmagent()
    result["meta"]["versions"]["vmagent_edge_leg"] = vmagent_desc
    all_nodes = ["bench-edge"] + [node_name(i) for i in range(1, configured + 1)]
    # Full run with the edge leg: a Caddyfile for the edge node first; the one for every bench node
    # (a bcrypt per node, minutes) renders in the background while the edge leg runs.
    two_stage = vmagent is not None and not quick and not args.edge_only
    t0 = time.monotonic()
    first = lib.render_role("cloud", templates,
                            cloud_overrides(work, vm_port, https_port, ["bench-edge"] if two_stage else all_nodes,
                                            gate_port),
                            etc / "rendered-first")
    big: dict[str, Any] = {"seconds": round(time.monotonic() - t0, 1), "r": first}
    cloud.vm_url = start_vm(work, procs, first["victoria-metrics-override.conf"])
    start_gate(work, procs, first["writegate.json"], gate_port)
    start_caddy(cloud, first["Caddyfile"])

    def render_big() -> None:
        try:
            t0 = time.monotonic()
            big["r"] = lib.render_role("cloud", ["Caddyfile"], cloud_overrides(work, vm_port, https_port, all_nodes, gate_port),
                                       etc / "rendered-big")
            big["seconds"] = round(time.monotonic() - t0, 1)
        except Exception as exc:
            big["error"] = exc

    th = threading.Thread(target=render_big, daemon=True)
    if two_stage:
        log(f"rendering the Caddyfile for {len(all_nodes)} nodes (bcrypt cost {bcrypt_cost}) in the background")
        th.start()
    if vmagent:
        result["edge_leg"] = edge_leg(cloud, telegraf, vmagent, edge_s, edge_warm)
        result["edge_leg"]["vmagent"] = vmagent_desc
    else:
        result["notes"].append(f"edge cloud leg skipped: {vmagent_desc}" + ("" if skip else
                               "; Debian 13's vmagent (production) has it: run with VMAGENT_BIN=<that vmagent>"))
        log(result["notes"][-1])
    if two_stage:
        th.join()
        if "error" in big:
            raise BenchError(f"Caddyfile render failed: {big['error']}")
        log(f"Caddyfile for {len(all_nodes)} nodes rendered in {big['seconds']} s; restarting Caddy with it")
        start_caddy(cloud, big["r"]["Caddyfile"])
    if args.edge_only:
        result["summary"] = summarise(result)
        return
    real = export_series(cloud.vm_url, '{node_id="bench-edge"}') if "edge_leg" in result else []
    tmpl, source = build_templates(real, series)
    gen = Gen(cloud, tmpl, series, interval, max(1, args.workers))
    ing: dict[str, Any] = {
        "caddy_url": cloud.write_url, "direct_url": f"{cloud.vm_url}/api/v1/write", "configured_nodes": len(all_nodes),
        "bcrypt_cost": bcrypt_cost, "hash_cache": cloud.hash_cache, "caddyfile_render_s": big["seconds"],
        "series_per_node": series, "series_source": source, "interval_s": interval, "workers": gen.workers,
        "step_seconds": step_s, "max_concurrency": max_conc, "max_seconds": max_s, "ladder": ladder,
        "max": [], "steps": [],
    }
    result["ingest"] = ing
    for rnd in range(1 if quick else 2):
        for path in (("caddy", "direct") if rnd % 2 == 0 else ("direct", "caddy")):
            ing["max"].append(throughput(gen, path, max_conc, max_s, rnd + 1))
            time.sleep(0.3 if quick else 1.0)
    failed: set[str] = set()
    for i, n in enumerate(ladder):
        for path in (("caddy", "direct") if i % 2 == 0 else ("direct", "caddy")):
            if path in failed:
                continue
            st = step(gen, path, n, step_s)
            ing["steps"].append(st)
            if st["status"] != "ok":
                failed.add(path)
            time.sleep(0.3 if quick else 1.0)
    ing["cold_auth"] = gen.cold_auth
    # Last: its wrong password is one more entry in Caddy's 1000-entry cache (run #1 of this bench
    # had it first, and 1000 nodes + 1 wrong password thrashed the cache).
    ing["identity"] = identity_check(gen)
    result["notes"] += cloud.notes
    result["summary"] = summarise(result)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.gen_child:
        return gen_child(args.gen_child)
    return lib.main(sys.modules[__name__], args)


if __name__ == "__main__":
    sys.exit(main())
