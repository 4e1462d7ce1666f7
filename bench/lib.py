#!/usr/bin/env python3
"""What every benchmark in bench/ shares: child processes, ports, waits, the roles' templates
rendered as the roles render them, the JSON results and the report printed from them.

    .venv/bin/python bench/lib.py report bench/results/edge-2026-...json   # print a result again

A benchmark is a module with `NAME`, a `run(args, work, procs, result)` that measures into
`result` (a JSON-able dict with `meta` already in it) and a `print_report(result)` that prints
only from that dict; its `main()` is `lib.main(sys.modules[__name__], args)`. The results go to
bench/results/<name>-<date>.json (or --json) and the report is printed from the file written,
so what is printed and what is kept are the same figures.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib
import importlib.util
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
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "bench/results"
GXSIM = REPO / "files/services/gxsim"
GXDISCOVERY = REPO / "files/services/gxdiscovery"
COMMON = REPO / "files/services/common"  # ovr_common, bundled into every service's release


def service_path(*services: str) -> list[str]:
    """What a service's release holds, as a PYTHONPATH: its own package(s) and ovr_common."""
    return [str(REPO / "files/services" / s) for s in services] + [str(COMMON)]
STAR = REPO / "files/services/telegraf/victron_mqtt.star"
BUILD_TELEGRAF = REPO / "scripts/build-telegraf.sh"

MOSQUITTO = "/usr/sbin/mosquitto"
VICTORIA_METRICS = "/usr/bin/victoria-metrics"
VMAGENT = "/usr/bin/vmagent"
CADDY = "/usr/bin/caddy"

sys.path.insert(0, str(REPO / "tests/unit"))
from peers import free_port  # noqa: E402  (one free-port helper for the tests and the benchmarks)

__all__ = ["free_port"]

CLK_TCK = os.sysconf("SC_CLK_TCK")
_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# ---- processes -----------------------------------------------------------------------------


def _child_setup() -> None:
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # never outlive the benchmark


class Processes:
    """Named child processes, each logging to <workdir>/<name>.log, all stopped by stop_all()."""

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

    def pid(self, name: str) -> int:
        return self.procs[name].pid

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


def start_mosquitto(procs: Processes, port: int, *extra: str, name: str = "mosquitto") -> Path:
    """Debian's mosquitto on 127.0.0.1:`port` (anonymous, no persistence, logging to
    <workdir>/<name>.log), `extra` config lines added; returns once it listens."""
    logf = procs.workdir / f"{name}.log"
    conf = procs.workdir / f"{name}.conf"
    user = pwd.getpwuid(os.getuid()).pw_name  # mosquitto would drop root to "mosquitto" otherwise
    conf.write_text("\n".join([f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
                               f"user {user}", f"log_dest file {logf}", *extra, ""]))
    procs.start(name, [MOSQUITTO, "-c", str(conf)])
    procs.logs[name] = logf
    wait_port(port, 20, name, lambda: procs.check(name))
    return logf


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError):
            out[name] = cpu_seconds(pid)
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK, (v[7] if len(v) > 7 else 0) / CLK_TCK


def read_line(proc: subprocess.Popen[Any], timeout: float) -> str:
    """One line from a child's stdout, or "" after `timeout` s (the child is then left to cleanup)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().strip() if ready else ""


# ---- waits and HTTP ------------------------------------------------------------------------


def wait_for(pred: Callable[[], bool], timeout: float, what: str, check: Callable[[], None] | None = None,
             interval: float = 0.1) -> None:
    """Until pred() is true (OSError counts as not yet), calling check() (raises if a child died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check:
            check()
        with contextlib.suppress(OSError):
            if pred():
                return
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


def wait_port(port: int, timeout: float = 20, what: str = "", check: Callable[[], None] | None = None) -> None:
    wait_for(lambda: socket.create_connection(("127.0.0.1", port), 1).close() is None, timeout,
             what or f"127.0.0.1:{port}", check, interval=0.05)


def wait_health(url: str, timeout: float = 30, what: str = "", check: Callable[[], None] | None = None,
                ok: Callable[[int, str], bool] = lambda status, body: status == 200) -> None:
    """Until GET `url` answers as `ok` wants (default: 200)."""
    def pred() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return ok(resp.status, resp.read().decode(errors="replace"))
        except urllib.error.HTTPError as exc:
            return ok(exc.code, "")
    wait_for(pred, timeout, what or url, check)


def vm_healthy(status: int, body: str) -> bool:
    """VictoriaMetrics' and vmagent's /health."""
    return status == 200 and body.strip() == "OK"


def http_get(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def prom_counters(url: str, names: tuple[str, ...], keep: Callable[[str], bool] | None = None) -> dict[str, float]:
    """Sum of each metric family (the label sets `keep` accepts, default all) from a /metrics page."""
    out = dict.fromkeys(names, 0.0)
    for line in http_get(url).splitlines():
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        if name in out and (keep is None or keep(line)):
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


def vm_query(url: str, query: str, at: float | None = None, timeout: float = 120) -> list[dict[str, Any]]:
    """An instant query to VictoriaMetrics at `url` (uncached); its result list."""
    params = {"query": query, "nocache": "1"} | ({"time": f"{at:.3f}"} if at is not None else {})
    doc = json.loads(http_get(f"{url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=timeout))
    return doc["data"]["result"]


# ---- statistics ----------------------------------------------------------------------------


def pct(values: Iterable[float], p: float) -> float:
    """The p-th percentile (nearest rank on the sorted values)."""
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def duration_s(text: str) -> float:
    """A Go/Telegraf/VictoriaMetrics duration such as 500ms, 10s, 1m."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", str(text).strip())
    if not m:
        raise BenchError(f"cannot read duration {text!r}")
    return float(m[1]) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m[2]]


# ---- what is installed ---------------------------------------------------------------------


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


def locate_telegraf(plugins: Iterable[str] = ()) -> str:
    """$TELEGRAF_BIN, else what scripts/build-telegraf.sh prints (built once); it must have `plugins`."""
    path = os.environ.get("TELEGRAF_BIN")
    if not path:
        log("locating Telegraf with scripts/build-telegraf.sh (builds it once if not cached)")
        proc = subprocess.run([str(BUILD_TELEGRAF)], capture_output=True, text=True, timeout=1500, check=False)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise BenchError(f"scripts/build-telegraf.sh failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
        path = lines[-1]
    have = subprocess.run([path, "plugins"], capture_output=True, text=True, timeout=60, check=False).stdout.split()
    missing = [p for p in plugins if p not in have]
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


def binary(env: str, default: str) -> str:
    """$<env> (e.g. Debian 13's build, production's) or this host's Debian package."""
    return os.environ.get(env) or default


def tool(name: str) -> str:
    """A tool of the venv this runs in (ansible-playbook, gunicorn), else from $PATH."""
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        raise BenchError(f"{name} not found (run from the project venv: make deps)")
    return found


def git_describe() -> str:
    with contextlib.suppress(Exception):
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain"], capture_output=True, text=True,
                               timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "")
    return "?"


# ---- the roles' variables and templates ----------------------------------------------------


def role_vars(role: str) -> dict[str, Any]:
    """roles/<role>/defaults/main.yml, then vars/main.yml over it, as YAML (values not templated)."""
    out: dict[str, Any] = {}
    for part in ("defaults", "vars"):
        f = REPO / "roles" / role / part / "main.yml"
        if f.exists():
            out |= yaml.safe_load(f.read_text()) or {}
    return out


def _filters(role: str) -> dict[str, Callable[..., Any]]:
    """Ansible's core filters, the project's plugins/filter and the role's filter_plugins."""
    from ansible.plugins.filter.core import FilterModule as Core
    from ansible.plugins.filter.mathstuff import FilterModule as Math

    out = Core().filters() | Math().filters()
    for d in (REPO / "plugins/filter", REPO / "roles" / role / "filter_plugins"):
        for f in sorted(d.glob("*.py")):
            spec = importlib.util.spec_from_file_location(f"ovr_bench_filter_{role}_{f.stem}", f)
            assert spec and spec.loader
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            out |= mod.FilterModule().filters()
    return out


class _Vars(Mapping[str, Any]):
    """Variables whose values are templated when first read, in terms of each other (as Ansible's
    lazy variables are); one that cannot be (e.g. needs a fact) is Undefined, an error only if used."""

    def __init__(self, raw: dict[str, Any], env: Any) -> None:
        self.raw, self.env, self.done, self.busy = raw, env, {}, set()

    def __getitem__(self, key: str) -> Any:
        if key in self.done:
            return self.done[key]
        if key not in self.raw:
            if key in self.env.globals:
                return self.env.globals[key]
            raise KeyError(key)
        if key in self.busy:
            return self.env.undefined(f"{key} refers to itself")
        self.busy.add(key)
        try:
            value = self._template(self.raw[key])
        except Exception as exc:  # as Ansible: an unusable variable fails where it is used)
            value = self.env.undefined(f"{key}: {exc}")
        finally:
            self.busy.discard(key)
        self.done[key] = value
        return value

    def _template(self, value: Any) -> Any:
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            t = self.env.from_string(value)
            return self.env.concat(t.root_render_func(t.new_context(self, shared=True)))
        if isinstance(value, list):
            return [self._template(v) for v in value]
        if isinstance(value, dict):
            return {k: self._template(v) for k, v in value.items()}
        return value

    def __contains__(self, key: object) -> bool:
        return key in self.raw or key in self.env.globals

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


def render_role(role: str, names: Iterable[str], overrides: dict[str, Any], out: Path | None = None) -> dict[str, str]:
    """roles/<role>/templates/<name>.j2 rendered as the template module renders them on a host
    (jinja2 with trim_blocks, Ansible's trailing newlines, Ansible's and our filters and tests), with the
    role's defaults and vars, then `overrides` (the bench's paths and ports) over them.
    `out`: also write each rendered file there (kept with --keep-tmp)."""
    import jinja2
    from ansible.plugins.test.core import TestModule
    from jinja2.nativetypes import NativeEnvironment

    filters, tests = _filters(role), TestModule().tests()
    tdir = REPO / "roles" / role / "templates"
    files = jinja2.Environment(loader=jinja2.FileSystemLoader(str(tdir)), trim_blocks=True,
                               undefined=jinja2.StrictUndefined, autoescape=False)
    native = NativeEnvironment(undefined=jinja2.StrictUndefined)
    for env in (files, native):  # Jinja's own where Ansible has its twin (default, map, ...): same for these templates
        env.filters |= {k: f for k, f in filters.items() if k not in env.filters}
        env.tests |= {k: t for k, t in tests.items() if k not in env.tests}
    raw = {"inventory_hostname": "localhost", "ansible_managed": "Ansible managed", "groups": {},
           "role_path": str(REPO / "roles" / role), "inventory_dir": str(REPO / "inventory")}
    raw |= role_vars(role) | overrides
    lazy = _Vars(raw, native)
    variables = {k: lazy[k] for k in raw}
    rendered = {}
    for n in names:
        try:
            text = files.get_template(f"{n}.j2").render(variables)
        except jinja2.TemplateError as exc:
            raise BenchError(f"rendering roles/{role}/templates/{n}.j2 failed: {exc}") from exc
        # Ansible keeps a template's trailing newlines (not an included one's): as many as the source has
        want = len(src := (tdir / f"{n}.j2").read_text()) - len(src.rstrip("\n"))
        rendered[n] = text + "\n" * max(0, want - (len(text) - len(text.rstrip("\n"))))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        for n, text in rendered.items():
            (out / n).write_text(text)
    return rendered


def exec_start(unit: str) -> list[str]:
    """argv of the last non-empty ExecStart= of a (rendered) unit file."""
    text = re.sub(r"\\\n", " ", unit)
    cmds = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ExecStart=")]
    cmds = [c for c in cmds if c.strip()]
    if not cmds:
        raise BenchError("no ExecStart in rendered unit")
    return shlex.split(cmds[-1])


# ---- GX traffic: the simulator's load mode, replayed by a raw-socket MQTT publisher ------------

NODE_RATE = 700  # msgs/s of a real node


def varint(n: int) -> bytes:
    """MQTT's remaining length and protobuf's varint: 7 bits a byte, low first."""
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
    return b"\x30" + varint(len(body)) + body  # PUBLISH, QoS 0, no retain


def mqtt_connect(host: str, port: int, client_id: str, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    body = _mqtt_str("MQTT") + b"\x04\x02\x00\x00" + _mqtt_str(client_id)  # 3.1.1, clean, keepalive off
    sock.sendall(b"\x10" + varint(len(body)) + body)
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
    """Child process (`lib.py publisher SPEC`): publish the cycle at `rate` msgs/s for `seconds`,
    after 'go' on stdin; print what it sent as JSON."""
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
    tick = float(spec["tick_s"])
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate)) - sent
        if due <= 0:  # wait for the next tick, or for the last message if that comes first
            time.sleep(max(0.0005, min(tick, total / rate - (time.monotonic() - start))))
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


def start_publisher(procs: Processes, name: str, spec: Path, **fields: Any) -> subprocess.Popen[Any]:
    """The publisher child with `fields` (host, port, client_id, rate, seconds, tick_s, cycle) in
    `spec`; returns once it is connected and waits for "go"."""
    spec.write_text(json.dumps(fields))
    pub = procs.start(name, [sys.executable, str(Path(__file__).resolve()), "publisher", str(spec)], pipes=True)
    if read_line(pub, 30) != "ready":
        raise BenchError(f"publisher did not start:\n{procs.tail(name)}")
    return pub


def go(proc: subprocess.Popen[Any], line: str = "go") -> None:
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


def _gxsim_path() -> None:
    if str(GXSIM) not in sys.path:
        sys.path.insert(0, str(GXSIM))


def gx_cycle(portal: str, n: int = 4096) -> list[tuple[str, str]]:
    """`n` consecutive messages of ovr_gxsim's load mode (63 measured values, round-robin)."""
    _gxsim_path()
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


def gxsim_tick() -> float:
    """The simulator's loop period: load-mode messages leave in a burst once per loop."""
    _gxsim_path()
    from ovr_gxsim.mqtt import POLL_INTERVAL

    return float(POLL_INTERVAL)


def input_conf(mqtt_port: int, variant: str, system_id: str, portal: str, undelivered: int | None = None) -> str:
    """The GX input exactly as ovr-refresh-gx-mqtt-sources renders it (raw: json instead of value;
    `undelivered`: max_undelivered_messages set, the only other change)."""
    for path in service_path("gxdiscovery"):
        if path not in sys.path:
            sys.path.insert(0, path)
    from ovr_gxdiscovery.inventory import GxConfig
    from ovr_gxdiscovery.render import InputView, render_input

    text = render_input("bench-edge", InputView(GxConfig(name=system_id, host="127.0.0.1", port=mqtt_port),
                                                system_id, portal, None))
    if variant == "raw":
        text = text.replace('  data_format = "value"\n  data_type = "string"\n', '  data_format = "json"\n')
        if 'data_format = "json"' not in text:
            raise BenchError("could not switch the rendered input to data_format json")
    if undelivered is not None:
        head, sep, tags = text.partition("  [inputs.mqtt_consumer.tags]\n")
        if not sep:
            raise BenchError("could not set max_undelivered_messages in the rendered input")
        head = re.sub(r"(?m)^  max_undelivered_messages = \d+\n", "", head)
        text = f"{head}  max_undelivered_messages = {undelivered}\n{sep}{tags}"
    return text


def start_telegraf(procs: Processes, name: str, telegraf: str, conf: Path, confdir: Path, node_id: str,
                   mosquitto_log: Path, subscription: str, log_mark: int = 0) -> subprocess.Popen[Any]:
    """Telegraf with the rendered main config and a config directory; returns once mosquitto's
    log (from `log_mark`) shows the `subscription` (e.g. "<client id> 0 N/<portal>/#")."""
    proc = procs.start(name, [telegraf, "--config", str(conf), "--config-directory", str(confdir)],
                       env=dict(os.environ, OVR_DEPLOYMENT_ID="bench", OVR_NODE_ID=node_id))
    wait_for(lambda: subscription in mosquitto_log.read_text(errors="replace")[log_mark:], 60,
             f"{name} to subscribe", lambda: procs.check(name))
    return proc


# ---- results and the report ----------------------------------------------------------------


def base_meta(quick: bool) -> dict[str, Any]:
    return {"date": datetime.now().astimezone().isoformat(timespec="seconds"), "quick": quick, "cpus": os.cpu_count(),
            "loadavg_before": loadavg(), "kernel": platform.release(), "git": git_describe(),
            "python": platform.python_version()}


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_header(title: str, meta: dict[str, Any], mode: str | None = None) -> None:
    """The first lines of every report: the title and when, where and how it ran."""
    mode = mode or ("QUICK (smoke) run" if meta.get("quick") else "full run")
    print(f"\n== {title} ==")
    print(f"{meta['date']}  {meta['cpus']} CPUs  load avg start {meta['loadavg_before']} end {meta.get('loadavg_after')}  "
          f"{mode}  git {meta['git']}  took {meta.get('duration_s', '?')} s")


def print_footer(result: dict[str, Any]) -> None:
    """The last lines of every report: its notes and where its JSON is."""
    for note in result.get("notes", []):
        print(f"note: {note}")
    if result.get("json_path"):
        print(f"JSON: {result['json_path']}")


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def add_common_args(ap: argparse.ArgumentParser, name: str) -> None:
    ap.add_argument("--json", type=Path, help=f"where to write the results (default bench/results/{name}-<date>.json)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory (logs, configs, data)")


def main(bench: ModuleType, args: argparse.Namespace) -> int:
    """The run of one benchmark: a work dir and its processes, bench.run() filling the result,
    everything stopped and removed after (also on SIGTERM/SIGHUP/^C), the JSON written, the
    report printed from it. rc 0; 1 on a BenchError or when result["failures"] lists anything
    (said on stderr); 130 when interrupted."""
    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    name = bench.NAME
    quick = bool(getattr(args, "quick", False))
    t_start = time.monotonic()
    started = datetime.now().astimezone()
    result: dict[str, Any] = {"meta": {"bench": name, **base_meta(quick)}}
    work = Path(tempfile.mkdtemp(prefix=f"ovr-bench-{name}-"))
    procs = Processes(work)
    rc = 0
    try:
        bench.run(args, work, procs, result)
    except KeyboardInterrupt as exc:
        log(f"interrupted ({exc}); cleaning up")
        rc = 130
    except BenchError as exc:
        log(f"benchmark error: {exc}")
        rc = 1
    finally:
        procs.stop_all()
        if getattr(args, "keep_tmp", False):
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if rc:
        return rc
    meta = result["meta"]
    meta["loadavg_after"] = loadavg()
    meta["duration_s"] = round(time.monotonic() - t_start, 1)
    suffix = getattr(bench, "JSON_SUFFIX", "-quick" if quick else "")
    path = args.json or RESULTS_DIR / f"{name}-{started.strftime('%Y-%m-%dT%H%M%S')}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result["json_path"] = str(path)
    path.write_text(json.dumps(result, indent=2) + "\n")
    bench.print_report(json.loads(path.read_text()))  # from the file: the figures kept are the ones printed
    for failure in result.get("failures", []):  # what a benchmark asserts (bench/converge.py: changed=0)
        log(f"FAILED: {failure}")
    return 1 if result.get("failures") else 0


def report(path: Path) -> None:
    """Print a result file with the report of the benchmark that wrote it (meta.bench)."""
    result = json.loads(Path(path).read_text())
    name = result.get("meta", {}).get("bench")
    if not name:
        raise SystemExit(f"{path}: no meta.bench, not a result of bench/")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    importlib.import_module(name).print_report(result)


def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("report", help="print result files again").add_argument("json", type=Path, nargs="+")
    sub.add_parser("publisher", help=argparse.SUPPRESS).add_argument("spec")
    args = ap.parse_args(argv)
    if args.cmd == "publisher":
        return publisher_child(args.spec)
    for p in args.json:
        report(p)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
