#!/usr/bin/env python3
"""Edge pipeline benchmark: GX MQTT -> Telegraf (+ victron Starlark processor) -> vmagent -> VictoriaMetrics.

A benchmark, not a test: it prints figures (and writes them as JSON) and never fails on them.

    .venv/bin/python bench/edge.py                 # full run, ~7-9 min
    .venv/bin/python bench/edge.py --quick         # smoke run, short steps (~1 min)
    .venv/bin/python bench/edge.py --help

What runs (all on 127.0.0.1, in a temporary directory removed at the end):
- mosquitto stands in for the GX's broker (dbus-flashmq);
- the GX traffic is the GX simulator's load mode (files/services/gxsim, same engine, same topics
  and payloads), pre-rendered and written by a small raw-socket MQTT publisher in its own
  process, because the simulator itself (paho) tops out at ~25k msgs/s using a whole core of
  this 2-core machine; the run measures that first and reports it;
- Telegraf with the production configuration: telegraf.conf.j2 and victron_processor.conf.j2
  rendered by Ansible with the role defaults (ansible-playbook from the venv) and the GX input
  rendered by ovr_gxdiscovery exactly as ovr-refresh-gx-mqtt-sources writes it;
- vmagent and VictoriaMetrics with the command lines of the role's units (rendered too).

Two Telegraf variants run side by side, interleaved step by step in the same run:
- pipeline: data_format value/string + the victron Starlark processor (production);
- raw: the same Telegraf without the processor, data_format json (numbers straight through).

Per step each variant gets a fresh Telegraf and its own portal id / system_id, so samples are
counted exactly in VictoriaMetrics (count_over_time by system_id) against what was published.
CPU comes from /proc/<pid>/stat (utime+stime) of each process.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import pwd
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GXSIM = REPO / "files/services/gxsim"
GXDISCOVERY = REPO / "files/services/gxdiscovery"
STAR = REPO / "files/services/telegraf/victron_mqtt.star"
ROLE = REPO / "roles/edge"
BUILD_TELEGRAF = REPO / "scripts/build-telegraf.sh"
RESULTS_DIR = REPO / "bench/results"

MOSQUITTO = "/usr/sbin/mosquitto"
VICTORIA_METRICS = "/usr/bin/victoria-metrics"
VMAGENT = "/usr/bin/vmagent"
TELEGRAF_PLUGINS = (
    "inputs.mqtt_consumer", "processors.starlark", "outputs.influxdb", "parsers.value", "parsers.json",
    "inputs.cpu", "inputs.mem", "inputs.disk", "inputs.net", "inputs.system", "inputs.internal",
)

GOAL_RATE = 20_000  # msgs/s through the pipeline with no loss
GOAL_RATIO = 0.6  # pipeline / raw Telegraf
GOAL_NODE_CPU = 5.0  # % of one core at a real node's load
NODE_RATE = 700  # msgs/s of a real node

FULL_LADDER = (1000, 2000, 5000, 10_000, 20_000, 40_000)
DRAIN_OK_S = 5.0  # all samples visible this long after the last publish, or the step lagged
PROCS = ("telegraf", "vmagent", "vm", "mosquitto")
VARIANTS = ("pipeline", "raw")

CLK_TCK = os.sysconf("SC_CLK_TCK")
_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# ---- MQTT on a raw socket (the publisher's hot path costs next to nothing) ------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mqtt_str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return len(b).to_bytes(2, "big") + b


def mqtt_publish_frame(topic: str, payload: bytes) -> bytes:
    body = _mqtt_str(topic) + payload
    return b"\x30" + _varint(len(body)) + body  # PUBLISH, QoS 0, no retain


def mqtt_connect(host: str, port: int, client_id: str, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    body = _mqtt_str("MQTT") + b"\x04\x02\x00\x00" + _mqtt_str(client_id)  # 3.1.1, clean, keepalive off
    sock.sendall(b"\x10" + _varint(len(body)) + body)
    ack = b""
    while len(ack) < 4:
        chunk = sock.recv(4 - len(ack))
        if not chunk:
            raise BenchError("broker closed the connection before CONNACK")
        ack += chunk
    if ack[0] != 0x20 or ack[3] != 0:
        raise BenchError(f"broker refused the connection: {ack!r}")
    sock.settimeout(None)
    return sock


def publisher_child(spec_path: str) -> int:
    """Child process: publish the cycle at `rate` msgs/s for `seconds`, after 'go' on stdin."""
    spec = json.loads(Path(spec_path).read_text())
    frames = [mqtt_publish_frame(t, p.encode()) for t, p in spec["cycle"]]
    n = len(frames)
    buf = memoryview(b"".join(frames * 2))
    offsets = [0]
    for f in frames * 2:
        offsets.append(offsets[-1] + len(f))
    rate, total = float(spec["rate"]), int(spec["rate"] * spec["seconds"])
    sock = mqtt_connect(spec["host"], spec["port"], spec["client_id"])
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    start = time.monotonic()
    sent = pos = 0
    blocked = 0.0
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate)) - sent
        if due <= 0:
            time.sleep(0.002)
            continue
        while due > 0:
            k = min(due, n)
            t0 = time.monotonic()
            sock.sendall(buf[offsets[pos]:offsets[pos + k]])
            blocked += time.monotonic() - t0
            pos = (pos + k) % n
            sent += k
            due -= k
    elapsed = time.monotonic() - start
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()
    print(json.dumps({"sent": sent, "seconds": elapsed, "send_s": blocked}), flush=True)
    return 0


# ---- GX traffic: the simulator's own load mode, pre-rendered ----------------------------------


def gx_cycle(portal: str, n: int = 4096) -> list[tuple[str, str]]:
    """`n` consecutive messages of ovr_gxsim's load mode (63 measured values, round-robin)."""
    if str(GXSIM) not in sys.path:
        sys.path.insert(0, str(GXSIM))
    from ovr_gxsim.engine import Simulator
    from ovr_gxsim.profile import load_profile

    clock = [1_700_000_000.0]
    sim = Simulator(load_profile(GXSIM / "profiles/default.json", portal), portal, lambda: clock[0],
                    load_rate=1000.0)
    assert sim.load is not None
    sim.start()
    sim.handle(f"R/{portal}/keepalive", b'{"keepalive-options":["suppress-republish"]}')
    load_topics = {sim.state.topic(key) for key, _ in sim.load.keys}
    out: list[tuple[str, str]] = []
    while len(out) < n:
        clock[0] += 0.05
        out += [(m.topic, m.payload.decode()) for m in sim.poll() if m.topic in load_topics]
    return out[:n]


@dataclass(frozen=True)
class Allowlist:
    """The processor's keep/drop decision for a numeric payload (mirrors victron_mqtt.star)."""

    global_prefixes: tuple[str, ...]
    service_prefixes: dict[str, tuple[str, ...]]

    @classmethod
    def from_conf(cls, text: str) -> Allowlist:
        (proc,) = tomllib.loads(text)["processors"]["starlark"]
        c = proc["constants"]
        return cls(tuple(c["path_allowlist"]), {k: tuple(v) for k, v in c["service_path_allowlist"].items()})

    def stored(self, topic: str, payload: str) -> bool:
        parts = topic.split("/", 4)
        if len(parts) < 5 or parts[0] != "N" or "" in parts[1:]:
            return False
        service, path = parts[2], parts[4]
        if not path.startswith(self.global_prefixes) and not path.startswith(self.service_prefixes.get(service, ())):
            return False
        if not any(seg not in ("", "L1", "L2", "L3") for seg in path.split("/")):
            return False
        value = json.loads(payload).get("value")
        return isinstance(value, int | float)


def raw_stored(topic: str, payload: str) -> bool:
    value = json.loads(payload).get("value")
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---- processes -----------------------------------------------------------------------------


def _child_setup() -> None:
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # never outlive the benchmark


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen[Any]] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None,
              pipes: bool = False) -> subprocess.Popen[Any]:
        logf = self.workdir / f"{name}.log"
        self.logs[name] = logf
        with open(logf, "ab") as out:
            proc = subprocess.Popen(
                argv, cwd=self.workdir, env=env, start_new_session=True, preexec_fn=_child_setup,
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else out, stderr=out, text=pipes,
            )
        self.procs[name] = proc
        return proc

    def check(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise BenchError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, n: int = 3000) -> str:
        p = self.logs.get(name)
        return p.read_text(errors="replace")[-n:] if p and p.exists() else ""

    def stop(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            with contextlib.suppress(Exception):
                self.stop(name)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred: Callable[[], bool], timeout: float, what: str, check: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check:
            check()
        with contextlib.suppress(OSError):
            if pred():
                return
        time.sleep(0.1)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_get(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def prom_counters(url: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum of each metric family (all label sets) from a /metrics page."""
    out = dict.fromkeys(names, 0.0)
    for line in http_get(url).splitlines():
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        if name in out:
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


class SysWatcher:
    """mosquitto's $SYS counters (published every second, sys_interval 1)."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.values: dict[str, int] = {}
        self.seq = 0
        self.cond = threading.Condition()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="ovr-bench-sys")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(
            [("$SYS/broker/publish/messages/+", 0), ("$SYS/broker/uptime", 0)])
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        key = msg.topic.rsplit("/", 1)[1]
        with self.cond:
            if key == "uptime":  # the one $SYS topic sent every interval, after the counters
                self.seq += 1
                self.cond.notify_all()
                return
            with contextlib.suppress(ValueError):
                self.values[key] = int(msg.payload)

    def fresh(self, timeout: float = 5.0) -> dict[str, int]:
        """Counters of the next $SYS update (so they include everything until now).

        mosquitto sends uptime first, then the counters that changed, in one burst."""
        with self.cond:
            seq = self.seq
            if not self.cond.wait_for(lambda: self.seq > seq, timeout):
                raise BenchError("no $SYS update from mosquitto")
        time.sleep(0.2)
        with self.cond:
            return dict(self.values)

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload).wait_for_publish(5)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.disconnect()
            self.client.loop_stop()


# ---- set-up --------------------------------------------------------------------------------


def ensure_packages() -> None:
    """mosquitto and victoria-metrics (with vmagent) from Debian, installed when missing."""
    need = {"mosquitto": [MOSQUITTO], "victoria-metrics": [VICTORIA_METRICS, VMAGENT]}
    missing = [pkg for pkg, paths in need.items() if not all(os.access(p, os.X_OK) for p in paths)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise BenchError(f"need root to apt-get install {' '.join(missing)}")
    log(f"installing {' '.join(missing)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, timeout=300)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                   env=env, check=True, timeout=600, stdout=subprocess.DEVNULL)


def locate_telegraf() -> str:
    path = os.environ.get("TELEGRAF_BIN")
    if not path:
        log("locating Telegraf with scripts/build-telegraf.sh (builds it once if not cached)")
        proc = subprocess.run([str(BUILD_TELEGRAF)], capture_output=True, text=True, timeout=1500, check=False)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise BenchError(f"scripts/build-telegraf.sh failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
        path = lines[-1]
    plugins = subprocess.run([path, "plugins"], capture_output=True, text=True, timeout=60, check=False).stdout.split()
    missing = [p for p in TELEGRAF_PLUGINS if p not in plugins]
    if missing:
        raise BenchError(f"Telegraf at {path} lacks plugins {missing}")
    return path


def telegraf_version(path: str) -> str:
    info = Path(path).parent / "BUILD_INFO"
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1]
    return subprocess.run([path, "version"], capture_output=True, text=True, timeout=30).stdout.strip()


def package_version(pkg: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True, timeout=30)
    return f"{pkg} {out.stdout.strip() or '?'}"


def render_role_templates(etc: Path, overrides: dict[str, Any]) -> dict[str, str]:
    """The role's templates rendered by Ansible itself with the role defaults (+ bench paths)."""
    names = ["telegraf.conf", "victron_processor.conf", "vmagent.service", "victoria-metrics-override.conf",
             "vmagent-relabel.yml"]
    out = etc / "rendered"
    out.mkdir(parents=True)
    play = [{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars_files": [str(ROLE / "defaults/main.yml"), str(ROLE / "vars/main.yml")],
        "tasks": [{"name": n, "ansible.builtin.template": {"src": str(ROLE / "templates" / f"{n}.j2"),
                                                           "dest": str(out / n), "mode": "0644"}}
                  for n in names],
    }]
    (etc / "render.yml").write_text(json.dumps(play))
    (etc / "render-vars.json").write_text(json.dumps(overrides | {"ansible_python_interpreter": sys.executable}))
    exe = Path(sys.executable).parent / "ansible-playbook"
    playbook = str(exe) if exe.exists() else shutil.which("ansible-playbook")
    if not playbook:
        raise BenchError("ansible-playbook not found (run from the project venv: make deps)")
    proc = subprocess.run([playbook, "-i", "localhost,", str(etc / "render.yml"), "-e", f"@{etc / 'render-vars.json'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    if proc.returncode != 0:
        raise BenchError(f"rendering the role templates failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return {n: (out / n).read_text() for n in names}


def exec_start(unit: str) -> list[str]:
    """argv of the last non-empty ExecStart= of a (rendered) unit file."""
    text = re.sub(r"\\\n", " ", unit)
    cmds = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ExecStart=")]
    cmds = [c for c in cmds if c.strip()]
    if not cmds:
        raise BenchError("no ExecStart in rendered unit")
    return shlex.split(cmds[-1])


# ---- the benchmark -------------------------------------------------------------------------


@dataclass
class Env:
    work: Path
    procs: Processes
    telegraf: str
    mqtt_port: int
    vm_url: str
    vmagent_url: str
    telegraf_conf: Path
    processor_conf: str
    allowlist: Allowlist
    sys: SysWatcher
    steps_done: int = 0
    deadline: float = 0.0
    notes: list[str] = field(default_factory=list)


def start_stack(work: Path, procs: Processes, telegraf: str) -> Env:
    mqtt_port, vm_port, vmagent_port = free_port(), free_port(), free_port()
    etc = work / "etc"
    (etc / "vmagent").mkdir(parents=True)
    rendered = render_role_templates(etc, {
        "edge_vm_listen_address": f"127.0.0.1:{vm_port}",
        "edge_vm_data_path": str(work / "vm"),
        "edge_vmagent_listen_address": f"127.0.0.1:{vmagent_port}",
        "edge_vmagent_data_path": str(work / "vmagent"),
        "edge_cloud_remote_write_url": "",
        "edge_deployment_id": "bench",
        "edge_node_id": "bench-edge",
        "edge_victron_processor_script_path": str(STAR),
        "_edge_etc": str(etc),
    })
    (etc / "vmagent/relabel.yml").write_text(rendered["vmagent-relabel.yml"])
    (etc / "telegraf.conf").write_text(rendered["telegraf.conf"])

    user = pwd.getpwuid(os.getuid()).pw_name  # mosquitto would drop root to "mosquitto" otherwise
    (etc / "mosquitto.conf").write_text("\n".join([
        f"listener {mqtt_port} 127.0.0.1", "allow_anonymous true", "persistence false", "sys_interval 1",
        f"user {user}", f"log_dest file {work / 'mosquitto.log'}", "log_type error", "log_type warning",
        "log_type notice", "log_type information", "log_type subscribe", "connection_messages true", "",
    ]))
    procs.start("mosquitto", [MOSQUITTO, "-c", str(etc / "mosquitto.conf")])
    procs.logs["mosquitto"] = work / "mosquitto.log"

    vm_argv = exec_start(rendered["victoria-metrics-override.conf"])
    vm_argv[0] = VICTORIA_METRICS
    procs.start("vm", vm_argv)
    vmagent_argv = exec_start(rendered["vmagent.service"])
    vmagent_argv[0] = VMAGENT
    procs.start("vmagent", vmagent_argv)

    vm_url, vmagent_url = f"http://127.0.0.1:{vm_port}", f"http://127.0.0.1:{vmagent_port}"

    def check() -> None:
        for name in ("mosquitto", "vm", "vmagent"):
            procs.check(name)

    wait_for(lambda: socket.create_connection(("127.0.0.1", mqtt_port), 1).close() is None, 20, "mosquitto", check)
    wait_for(lambda: http_get(vm_url + "/health", 2).strip() == "OK", 30, "VictoriaMetrics", check)
    wait_for(lambda: http_get(vmagent_url + "/health", 2).strip() == "OK", 30, "vmagent", check)
    sysw = SysWatcher(mqtt_port)
    sysw.fresh(10)
    return Env(work, procs, telegraf, mqtt_port, vm_url, vmagent_url, etc / "telegraf.conf",
               rendered["victron_processor.conf"], Allowlist.from_conf(rendered["victron_processor.conf"]), sysw)


def input_conf(env: Env, variant: str, system_id: str, portal: str) -> str:
    """The GX input exactly as ovr-refresh-gx-mqtt-sources renders it (raw: json instead of value)."""
    if str(GXDISCOVERY) not in sys.path:
        sys.path.insert(0, str(GXDISCOVERY))
    from ovr_gxdiscovery.inventory import GxConfig
    from ovr_gxdiscovery.render import InputView, render_input

    text = render_input("bench-edge", InputView(GxConfig(name=system_id, host="127.0.0.1", port=env.mqtt_port),
                                                system_id, portal, None))
    if variant == "raw":
        text = text.replace('  data_format = "value"\n  data_type = "string"\n', '  data_format = "json"\n')
        if 'data_format = "json"' not in text:
            raise BenchError("could not switch the rendered input to data_format json")
    return text


def vm_count(env: Env, selector: str) -> int:
    q = urllib.parse.urlencode({"query": f"sum(count_over_time({selector}[1h]))", "nocache": "1"})
    doc = json.loads(http_get(f"{env.vm_url}/api/v1/query?{q}"))
    result = doc["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


def vmagent_pending(env: Env) -> float:
    return prom_counters(env.vmagent_url + "/metrics", ("vm_persistentqueue_bytes_pending",))[
        "vm_persistentqueue_bytes_pending"]


def read_line(proc: subprocess.Popen[Any], timeout: float) -> str:
    """One line from a child's stdout, or "" after `timeout` s (the child is then left to cleanup)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else ""


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            out[name] = cpu_seconds(pid)
    return out


def run_step(env: Env, variant: str, rate: int, seconds: float, *, drain_max: float,
             cpu_until_drained: bool = True) -> dict[str, Any]:
    """One rate step: fresh Telegraf, publish, wait until VictoriaMetrics has it all (or gives up)."""
    env.steps_done += 1
    idx = env.steps_done
    portal = f"c0ffee{idx:06x}"
    system_id = f"bench-{variant}-{idx}"
    step_dir = env.work / f"step{idx:02d}-{variant}-{rate}"
    tdir = step_dir / "telegraf.d"
    tdir.mkdir(parents=True)
    (tdir / "gx_mqtt_sources.conf").write_text(input_conf(env, variant, system_id, portal))
    if variant == "pipeline":
        (tdir / "victron_processor.conf").write_text(env.processor_conf)
    cycle = gx_cycle(portal)
    keep = env.allowlist.stored if variant == "pipeline" else raw_stored
    prefix = [0]
    for topic, payload in cycle:
        prefix.append(prefix[-1] + keep(topic, payload))

    def expected_for(sent: int) -> int:
        full, rest = divmod(sent, len(cycle))
        return full * prefix[-1] + prefix[rest]

    tg_name = f"telegraf-{idx}"
    tg_env = dict(os.environ, OVR_DEPLOYMENT_ID="bench", OVR_NODE_ID="bench-edge")
    mosq_log = env.work / "mosquitto.log"
    log_mark = mosq_log.stat().st_size
    tg = env.procs.start(tg_name, [env.telegraf, "--config", str(env.telegraf_conf), "--config-directory", str(tdir)],
                         env=tg_env)
    client_id = f"ovr-bench-edge-{system_id}"
    wait_for(lambda: f"{client_id} 0 N/{portal}/#" in mosq_log.read_text(errors="replace")[log_mark:], 60,
             f"Telegraf ({variant}) to subscribe", lambda: env.procs.check(tg_name))

    spec = step_dir / "publisher.json"
    spec.write_text(json.dumps({"host": "127.0.0.1", "port": env.mqtt_port, "client_id": f"ovr-gxsim-{portal}",
                                "rate": rate, "seconds": seconds, "cycle": cycle}))
    pub = env.procs.start(f"publisher-{idx}", [sys.executable, str(Path(__file__).resolve()), "--publisher-child",
                                               str(spec)], pipes=True)
    assert pub.stdout is not None and pub.stdin is not None
    if read_line(pub, 30) != "ready":
        raise BenchError(f"publisher did not start:\n{env.procs.tail(f'publisher-{idx}')}")

    pids = {"telegraf": tg.pid, "vmagent": env.procs.procs["vmagent"].pid, "vm": env.procs.procs["vm"].pid,
            "mosquitto": env.procs.procs["mosquitto"].pid, "publisher": pub.pid}
    sys0 = env.sys.fresh()
    vma0 = prom_counters(env.vmagent_url + "/metrics", ("vmagent_rows_inserted_total",))
    cpu0 = cpu_snapshot(pids)
    t0 = time.monotonic()
    pub.stdin.write("go\n")
    pub.stdin.flush()
    cpu_pub_end: dict[str, float] = {}
    line = read_line(pub, seconds * 3 + 60)
    cpu_pub_end = cpu_snapshot(pids)
    t_end = time.monotonic()
    try:
        pub.wait(timeout=10)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"publisher hung:\n{env.procs.tail(f'publisher-{idx}')}") from exc
    if not line:
        raise BenchError(f"publisher failed:\n{env.procs.tail(f'publisher-{idx}')}")
    res = json.loads(line)
    env.procs.procs.pop(f"publisher-{idx}", None)
    sent = res["sent"]
    expected = expected_for(sent)
    selector = (f'{{__name__=~"victron_.+_value",system_id="{system_id}"}}' if variant == "pipeline"
                else f'mqtt_consumer_value{{system_id="{system_id}"}}')

    # Drain: until everything is there, or nothing changed for 3 s (then it is lost), or drain_max.
    stored_at_end = vm_count(env, selector)
    stored, last_change, drained_at = stored_at_end, time.monotonic(), None
    while True:
        now = time.monotonic()
        if stored >= expected:
            drained_at = now
            break
        if now - t_end > drain_max or (now - last_change > 3.0 and now - t_end > DRAIN_OK_S):
            break
        env.procs.check(tg_name)
        time.sleep(0.25)
        n = vm_count(env, selector)
        if n != stored:
            stored, last_change = n, time.monotonic()
    cpu1 = cpu_snapshot(pids)
    t_cpu = time.monotonic()
    sys1 = env.sys.fresh()
    vma1 = prom_counters(env.vmagent_url + "/metrics", ("vmagent_rows_inserted_total",))
    env.procs.stop(tg_name)

    if cpu_until_drained:
        window, cpu_end = t_cpu - t0, cpu1
    else:
        window, cpu_end = t_end - t0, cpu_pub_end
    cpu = {k: max(0.0, cpu_end.get(k, cpu0[k]) - cpu0[k]) for k in cpu0}
    pipeline_cpu = sum(cpu[k] for k in PROCS)
    achieved = sent / res["seconds"] if res["seconds"] > 0 else 0.0
    drain_s = (drained_at - t_end) if drained_at is not None else None
    lost = max(0, expected - stored)
    mosq_dropped = sys1.get("dropped", 0) - sys0.get("dropped", 0)
    if lost:
        status = "LOSS"
    elif stored > expected:
        status = "EXTRA"
    elif achieved < 0.97 * rate:
        status = "BACKPRESSURE"  # the broker/Telegraf could not take the rate: the publisher was held back
    elif drain_s is None or drain_s > DRAIN_OK_S:
        status = "LAG"
    else:
        status = "ok"
    step = {
        "variant": variant, "target_rate": rate, "seconds": round(res["seconds"], 2), "sent": sent,
        "achieved_rate": round(achieved, 1), "expected_samples": expected, "stored_samples": stored,
        "stored_at_publish_end": stored_at_end, "lost": lost, "drain_s": None if drain_s is None else round(drain_s, 2),
        "mosquitto_received": sys1.get("received", 0) - sys0.get("received", 0), "mosquitto_dropped": mosq_dropped,
        "vmagent_rows_in": int(vma1["vmagent_rows_inserted_total"] - vma0["vmagent_rows_inserted_total"]),
        "publisher_send_s": round(res["send_s"], 2),
        "cpu_window_s": round(window, 2), "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_pct_per_1k": {k: round(100 * v / (sent / 1000), 3) for k, v in cpu.items()} if sent else {},
        "cpu_pct_of_core": {k: round(100 * v / window, 2) for k, v in cpu.items()},
        "pipeline_cpu_pct_per_1k": round(100 * pipeline_cpu / (sent / 1000), 3) if sent else None,
        "pipeline_cpu_pct_of_core": round(100 * pipeline_cpu / window, 2),
        "status": status, "system_id": system_id,
    }
    log(f"{variant:8s} {rate:6d}/s: sent {sent} ({achieved:.0f}/s), stored {stored}/{expected}, "
        f"drain {step['drain_s']} s, mosquitto dropped {mosq_dropped}, "
        f"CPU {step['pipeline_cpu_pct_of_core']:.0f}% of a core -> {status}")
    settle(env)
    return step


def settle(env: Env, timeout: float = 30.0) -> None:
    """Let vmagent empty its queue before the next step (a lossy step can leave a backlog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if vmagent_pending(env) == 0:
                break
        time.sleep(0.5)
    time.sleep(1.0)


def gxsim_capacity(env: Env, seconds: float) -> dict[str, Any]:
    """How fast the real GX simulator (paho) goes in load mode on this machine."""
    portal = "c0ffeeffff01"
    target = 40_000
    proc = env.procs.start("gxsim", [sys.executable, "-m", "ovr_gxsim", "--broker-port", str(env.mqtt_port),
                                     "--portal-id", portal, "--load-rate", str(target), "--log-level", "WARNING"],
                           env=dict(os.environ, PYTHONPATH=str(GXSIM)))
    try:
        mosq_log = env.work / "mosquitto.log"
        wait_for(lambda: f"ovr-gxsim-{portal} 0 R/{portal}/#" in mosq_log.read_text(errors="replace"), 30,
                 "the GX simulator to connect", lambda: env.procs.check("gxsim"))
        env.sys.publish(f"R/{portal}/keepalive", '{"keepalive-options":["suppress-republish"]}')
        time.sleep(1.5)
        s0, c0, t0 = env.sys.fresh(), cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        s1, c1, t1 = env.sys.fresh(), cpu_seconds(proc.pid), time.monotonic()
    finally:
        env.procs.stop("gxsim")
    rate = (s1["received"] - s0["received"]) / (t1 - t0)
    out = {"target_rate": target, "achieved_rate": round(rate), "cpu_pct_of_core": round(100 * (c1 - c0) / (t1 - t0), 1)}
    log(f"GX simulator load mode: {rate:.0f} msgs/s of {target} asked, {out['cpu_pct_of_core']}% of a core")
    return out


def step_budget(seconds: float, drain_max: float) -> float:
    return seconds + drain_max + 15.0


def run_ladder(env: Env, ladder: list[int], seconds: float, drain_max: float, refine: int) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    best: dict[str, int] = {}
    failed: dict[str, int] = {}
    for i, rate in enumerate(ladder):
        order = VARIANTS if i % 2 == 0 else VARIANTS[::-1]  # alternate who goes first
        for variant in order:
            if variant in failed:
                continue
            if time.monotonic() + step_budget(seconds, drain_max) > env.deadline:
                env.notes.append(f"time limit: skipped {variant} at {rate}/s")
                continue
            step = run_step(env, variant, rate, seconds, drain_max=drain_max)
            steps.append(step)
            if step["status"] == "ok":
                best[variant] = rate
            else:
                failed[variant] = rate
    # Refine between the last good and the first bad rate (bisection, 1000 msgs/s resolution).
    for _ in range(refine):
        for variant in VARIANTS:
            lo, hi = best.get(variant, 0), failed.get(variant)
            if hi is None or hi - lo <= 1000:
                continue
            mid = int(round((lo + hi) / 2 / 1000) * 1000)
            if mid in (lo, hi):
                continue
            if time.monotonic() + step_budget(seconds, drain_max) > env.deadline:
                env.notes.append(f"time limit: no refinement step for {variant}")
                continue
            step = run_step(env, variant, mid, seconds, drain_max=drain_max)
            step["refinement"] = True
            steps.append(step)
            if step["status"] == "ok":
                best[variant] = mid
            else:
                failed[variant] = mid
    return steps


# ---- report --------------------------------------------------------------------------------


def summarise(steps: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in VARIANTS:
        mine = [s for s in steps if s["variant"] == variant]
        ok = [s["target_rate"] for s in mine if s["status"] == "ok"]
        bad = [s["target_rate"] for s in mine if s["status"] != "ok"]
        best = max(ok) if ok else 0
        out[variant] = {
            "max_no_loss_rate": best,
            "first_failed_rate": min((r for r in bad if r > best), default=None),
            # never failed up to the top of the ladder: the real maximum is higher
            "lower_bound": bool(ok) and not [r for r in bad if r > best],
        }
    p, r = out["pipeline"], out["raw"]
    out["ratio"] = round(p["max_no_loss_rate"] / r["max_no_loss_rate"], 3) if r["max_no_loss_rate"] else None
    # ratio exactness: raw at the ladder's top -> ratio is an upper bound; pipeline at the top too -> lower bound
    out["ratio_kind"] = ("exact" if not r["lower_bound"] and not p["lower_bound"]
                         else "upper bound" if r["lower_bound"] and not p["lower_bound"]
                         else "lower bound" if p["lower_bound"] and not r["lower_bound"] else "unknown (both at top)")
    # Side-by-side CPU at the highest rate where both variants were ok.
    both = sorted({s["target_rate"] for s in steps if s["status"] == "ok" and s["variant"] == "pipeline"}
                  & {s["target_rate"] for s in steps if s["status"] == "ok" and s["variant"] == "raw"})
    if both:
        rate = both[-1]
        ps = next(s for s in steps if s["variant"] == "pipeline" and s["target_rate"] == rate and s["status"] == "ok")
        rs = next(s for s in steps if s["variant"] == "raw" and s["target_rate"] == rate and s["status"] == "ok")
        out["cpu_compare_rate"] = rate
        out["cpu_per_1k"] = {"pipeline": ps["cpu_pct_per_1k"], "raw": rs["cpu_pct_per_1k"]}
        out["cpu_ratio_raw_over_pipeline"] = (round(rs["pipeline_cpu_pct_per_1k"] / ps["pipeline_cpu_pct_per_1k"], 3)
                                              if ps["pipeline_cpu_pct_per_1k"] else None)
    return out


def fmt_goal(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def print_report(result: dict[str, Any]) -> None:
    w = print
    meta, steps, summ, node = result["meta"], result["steps"], result["summary"], result.get("node_load")
    w("")
    w("== Edge pipeline benchmark: GX MQTT -> Telegraf -> vmagent -> VictoriaMetrics ==")
    w(f"{meta['date']}  {meta['cpus']} CPUs  load avg before {meta['loadavg_before']}  "
      f"{'QUICK (smoke) run' if meta['quick'] else 'full run'}  git {meta['git']}")
    w(f"Telegraf {meta['versions']['telegraf']}, {meta['versions']['victoria-metrics']}, {meta['versions']['mosquitto']}")
    gx = result.get("gxsim")
    if gx:
        w(f"GX simulator load mode alone (paho): {gx['achieved_rate']} msgs/s of {gx['target_rate']} asked, "
          f"{gx['cpu_pct_of_core']}% of a core -> traffic comes from a raw-socket publisher replaying its messages")
    w(f"Traffic: ovr_gxsim load-mode messages (63 topics); pipeline stores {meta['stored_fraction']:.0%} of them "
      f"(role allowlist), raw stores all")
    w("")
    w(f"-- Throughput steps ({meta['step_seconds']:g} s each; ok = nothing lost, publisher held its rate, "
      f"drained within {DRAIN_OK_S:g} s) --")
    hdr = (f"{'variant':9s}{'target/s':>9s}{'sent/s':>9s}{'expected':>10s}{'stored':>10s}{'lost':>8s}{'drain s':>8s}"
           f"{'mq drop':>8s}  {'CPU %core per 1k msgs/s: telegraf vmagent    vm mosq total':>56s}{'pub':>6s}  result")
    w(hdr)
    for s in steps:
        c = s["cpu_pct_per_1k"]
        drain = "-" if s["drain_s"] is None else f"{s['drain_s']:.1f}"
        w(f"{s['variant']:9s}{s['target_rate']:9d}{s['achieved_rate']:9.0f}{s['expected_samples']:10d}"
          f"{s['stored_samples']:10d}{s['lost']:8d}{drain:>8s}{s['mosquitto_dropped']:8d}  "
          f"{'':24s}{c.get('telegraf', 0):8.2f}{c.get('vmagent', 0):8.2f}{c.get('vm', 0):6.2f}"
          f"{c.get('mosquitto', 0):5.2f}{s['pipeline_cpu_pct_per_1k']:6.2f}{c.get('publisher', 0):6.2f}  "
          f"{s['status']}{' (refine)' if s.get('refinement') else ''}")
    w("")
    w("-- CPU per 1,000 msgs/s (% of one core, side by side at the same rate) --")
    if "cpu_compare_rate" in summ:
        w(f"at {summ['cpu_compare_rate']} msgs/s{'':8s}{'telegraf':>9s}{'vmagent':>9s}{'vm':>7s}{'mosquitto':>10s}{'total':>7s}")
        for variant in VARIANTS:
            c = summ["cpu_per_1k"][variant]
            total = sum(c.get(k, 0) for k in PROCS)
            w(f"  {variant:21s}{c.get('telegraf', 0):9.2f}{c.get('vmagent', 0):9.2f}{c.get('vm', 0):7.2f}"
              f"{c.get('mosquitto', 0):10.2f}{total:7.2f}")
        w(f"  raw/pipeline CPU cost ratio (a capacity estimate if CPU-bound): {summ['cpu_ratio_raw_over_pipeline']}")
    else:
        w("  (no rate where both variants were ok)")
    if node:
        w("")
        w(f"-- Real node load: {node['target_rate']} msgs/s for {node['seconds']:g} s, pipeline (% of one core) --")
        c = node["cpu_pct_of_core"]
        w(f"  telegraf {c.get('telegraf', 0):.2f}  vmagent {c.get('vmagent', 0):.2f}  vm {c.get('vm', 0):.2f}  "
          f"mosquitto {c.get('mosquitto', 0):.2f}  total {node['pipeline_cpu_pct_of_core']:.2f}  "
          f"(publisher {c.get('publisher', 0):.2f}; stored {node['stored_samples']}/{node['expected_samples']}, {node['status']})")
    w("")
    w("-- Summary vs goals --")
    p, r = summ["pipeline"], summ["raw"]

    def rate_txt(v: dict[str, Any]) -> str:
        return f"{'>= ' if v['lower_bound'] else ''}{v['max_no_loss_rate']}"

    ratio = summ["ratio"]
    ratio_txt = "-" if ratio is None else (
        f"{'<= ' if summ['ratio_kind'] == 'upper bound' else '>= ' if summ['ratio_kind'] == 'lower bound' else ''}{ratio:.2f}")
    ratio_ok = None if ratio is None or summ["ratio_kind"].startswith("unknown") else (
        ratio >= GOAL_RATIO if summ["ratio_kind"] in ("exact", "lower bound") else (None if ratio >= GOAL_RATIO else False))
    rows = [
        ("max no-loss rate, pipeline (msgs/s)", rate_txt(p), f">= {GOAL_RATE}",
         fmt_goal(p["max_no_loss_rate"] >= GOAL_RATE if p["max_no_loss_rate"] >= GOAL_RATE or not p["lower_bound"]
                  else None)),
        ("max no-loss rate, raw Telegraf (msgs/s)", rate_txt(r), "-", ""),
        ("ratio pipeline / raw", ratio_txt, f">= {GOAL_RATIO}", fmt_goal(ratio_ok)),
    ]
    if node:
        rows.append((f"pipeline CPU at {node['target_rate']} msgs/s (% of a core)",
                     f"{node['pipeline_cpu_pct_of_core']:.2f}", f"<= {GOAL_NODE_CPU:g}",
                     fmt_goal(node["pipeline_cpu_pct_of_core"] <= GOAL_NODE_CPU)))
    w(f"{'figure':44s}{'measured':>12s}{'goal':>12s}  verdict")
    for name, val, goal, verdict in rows:
        w(f"{name:44s}{val:>12s}{goal:>12s}  {verdict}")
    for note in result.get("notes", []):
        w(f"note: {note}")
    if result.get("json_path"):
        w(f"JSON: {result['json_path']}")


# ---- main ----------------------------------------------------------------------------------


def git_describe() -> str:
    with contextlib.suppress(Exception):
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    return "?"


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: short steps, short node-load run")
    ap.add_argument("--max-rate", type=int, default=FULL_LADDER[-1], help="highest step (msgs/s), default %(default)s")
    ap.add_argument("--rates", help="comma-separated step rates instead of the default ladder "
                    f"{','.join(map(str, FULL_LADDER))}")
    ap.add_argument("--step-seconds", type=float, help="seconds per step (default 15, --quick 3)")
    ap.add_argument("--node-seconds", type=float, help=f"seconds of the {NODE_RATE} msgs/s run (default 60, --quick 5)")
    ap.add_argument("--refine", type=int, help="bisection steps between the last ok and first failed rate "
                    "(default 2, --quick 0)")
    ap.add_argument("--time-limit", type=float, default=540.0, help="stop starting steps after this many seconds "
                    "(default %(default)s)")
    ap.add_argument("--json", type=Path, help="where to write the results (default bench/results/edge-<date>.json)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, configs)")
    ap.add_argument("--publisher-child", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.publisher_child:
        return publisher_child(args.publisher_child)

    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    quick = args.quick
    seconds = args.step_seconds or (3.0 if quick else 15.0)
    node_seconds = args.node_seconds or (5.0 if quick else 60.0)
    refine = args.refine if args.refine is not None else (0 if quick else 2)
    drain_max = 15.0 if quick else 25.0
    ladder = [int(x) for x in args.rates.split(",")] if args.rates else list(FULL_LADDER)
    ladder = sorted({r for r in ladder if 0 < r <= args.max_rate}) or [args.max_rate]

    t_start = time.monotonic()
    ensure_packages()
    telegraf = locate_telegraf()
    started = datetime.now().astimezone()
    meta = {
        "date": started.isoformat(timespec="seconds"), "quick": quick, "cpus": os.cpu_count(),
        "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()), "kernel": platform.release(),
        "git": git_describe(), "step_seconds": seconds, "node_seconds": node_seconds, "ladder": ladder,
        "versions": {"telegraf": telegraf_version(telegraf), "victoria-metrics": package_version("victoria-metrics"),
                     "mosquitto": package_version("mosquitto"), "python": platform.python_version()},
        "goals": {"pipeline_max_rate": GOAL_RATE, "ratio": GOAL_RATIO, "node_cpu_pct": GOAL_NODE_CPU},
    }
    work = Path(tempfile.mkdtemp(prefix="ovr-bench-edge-"))
    procs = Processes(work)
    result: dict[str, Any] = {"meta": meta}
    env: Env | None = None
    rc = 0
    try:
        log(f"work dir {work}; starting mosquitto, VictoriaMetrics, vmagent (configs rendered from roles/edge)")
        env = start_stack(work, procs, telegraf)
        env.deadline = t_start + args.time_limit
        cycle = gx_cycle("c0ffee000000")
        meta["stored_fraction"] = sum(env.allowlist.stored(t, p) for t, p in cycle) / len(cycle)
        result["gxsim"] = gxsim_capacity(env, 2.0 if quick else 5.0)
        node = run_step(env, "pipeline", NODE_RATE, node_seconds, drain_max=drain_max, cpu_until_drained=False)
        node["target_rate"] = NODE_RATE
        result["node_load"] = node
        result["steps"] = run_ladder(env, ladder, seconds, drain_max, refine)
        result["summary"] = summarise(result["steps"])
        result["notes"] = env.notes
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc}); cleaning up")
        rc = 130
    except BenchError as exc:
        log(f"benchmark error: {exc}")
        rc = 1
    finally:
        if env is not None:
            env.sys.close()
        procs.stop_all()
        if args.keep_tmp:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if rc:
        return rc
    meta["duration_s"] = round(time.monotonic() - t_start, 1)
    path = args.json or RESULTS_DIR / f"edge-{started.strftime('%Y-%m-%dT%H%M%S')}{'-quick' if quick else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result["json_path"] = str(path)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
