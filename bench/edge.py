#!/usr/bin/env python3
"""Edge pipeline benchmark: GX MQTT -> Telegraf (+ victron Starlark processor) -> vmagent -> VictoriaMetrics.

A benchmark, not a test: it prints figures (and writes them as JSON) and never fails on them.

    .venv/bin/python bench/edge.py                 # full run, ~8-9 min (make bench-edge)
    .venv/bin/python bench/edge.py --quick         # smoke run, 3 s steps (~1 min)
    .venv/bin/python bench/edge.py --help

Everything runs on 127.0.0.1 from a temporary directory that is removed at the end; every child
process is stopped at the end (and dies with the benchmark if it is killed). Missing Debian
packages (mosquitto, victoria-metrics with vmagent) are apt-get installed; Telegraf comes from
$TELEGRAF_BIN or scripts/build-telegraf.sh; bench/lib.py renders the role's templates (as Ansible does).

- mosquitto stands in for the GX's broker (dbus-flashmq).
- GX traffic: the GX simulator's load mode (files/services/gxsim: same engine, same 63 topics
  and payloads, same cadence: one burst per 50 ms loop), pre-rendered and written by a raw-socket
  MQTT publisher in its own process. The simulator itself (paho) tops out at ~25-35k msgs/s
  with a whole core of this 2-core machine; the run measures that first and reports it.
- Telegraf runs the production configuration: telegraf.conf.j2 and victron_processor.conf.j2
  rendered with the role defaults (bench/lib.py), and the GX input rendered by ovr_gxdiscovery exactly
  as ovr-refresh-gx-mqtt-sources writes it. vmagent and VictoriaMetrics run the command lines
  of the role's (rendered) units.

Two Telegraf variants, interleaved step by step in the same run:
- pipeline: data_format value/string + the victron Starlark processor (production);
- raw: the same Telegraf without the processor, data_format json (numbers straight through).
Input configuration: "deployed", the input as rendered. The first run of this benchmark found
that Telegraf's default max_undelivered_messages (1000) capped a GX at ~1000 msgs/s with the 1 s
flush; the rendered input now sets 10000. `--tuned-undelivered N` adds a second configuration
with another value (off by default).

Each step starts a fresh Telegraf with its own portal id / system_id, so the samples it stores
are counted exactly in VictoriaMetrics (count_over_time by system_id) against what was
published. CPU is utime+stime from /proc/<pid>/stat of each process.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lib
from lib import NODE_RATE, BenchError, Processes, free_port, log, verdict

NAME = "edge"
TELEGRAF_PLUGINS = (
    "inputs.mqtt_consumer", "processors.starlark", "outputs.influxdb", "parsers.value", "parsers.json",
    "inputs.cpu", "inputs.mem", "inputs.disk", "inputs.net", "inputs.system", "inputs.internal",
)

GOAL_RATE = 20_000  # msgs/s through the pipeline with no loss
GOAL_RATIO = 0.6  # pipeline / raw Telegraf
GOAL_NODE_CPU = 5.0  # % of one core at a real node's load

# The rendered input sets max_undelivered_messages = 10000, so the deployed ladder goes high.
DEPLOYED_LADDER = (1000, 10_000, 20_000, 40_000, 60_000)
TUNED_LADDER = (10_000, 20_000, 40_000, 60_000, 80_000)
SMOOTH_TICK_S = 0.002  # the node-load comparison with evenly spread messages
TUNED_UNDELIVERED = 10_000  # 2 x metric_batch_size: a full batch is always ready to flush
DRAIN_OK_S = 5.0  # all samples visible this long after the last publish, or the step lagged
PROCS = ("telegraf", "vmagent", "vm", "mosquitto")
VARIANTS = ("pipeline", "raw")


# ---- what the pipeline keeps -----------------------------------------------------------------


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
    flush_s: float = 1.0
    tick_s: float = 0.05
    steps_done: int = 0
    deadline: float = 0.0
    notes: list[str] = field(default_factory=list)


def start_stack(work: Path, procs: Processes, telegraf: str) -> Env:
    mqtt_port, vm_port, vmagent_port = free_port(), free_port(), free_port()
    etc = work / "etc"
    (etc / "vmagent").mkdir(parents=True)
    rendered = lib.render_role("edge", ["telegraf.conf", "victron_processor.conf", "vmagent.service",
                                        "victoria-metrics-override.conf", "vmagent-relabel.yml"], {
        "edge_vm_listen_address": f"127.0.0.1:{vm_port}",
        "edge_vm_data_path": str(work / "vm"),
        "edge_vmagent_listen_address": f"127.0.0.1:{vmagent_port}",
        "edge_vmagent_data_path": str(work / "vmagent"),
        "edge_cloud_remote_write_url": "",
        "edge_deployment_id": "bench",
        "edge_node_id": "bench-edge",
        "edge_victron_processor_script_path": str(lib.STAR),
        "_edge_etc": str(etc),
    }, etc / "rendered")
    (etc / "vmagent/relabel.yml").write_text(rendered["vmagent-relabel.yml"])
    (etc / "telegraf.conf").write_text(rendered["telegraf.conf"])
    lib.start_mosquitto(procs, mqtt_port, "sys_interval 1", "log_type error", "log_type warning", "log_type notice",
                        "log_type information", "log_type subscribe", "connection_messages true")
    vm_argv = lib.exec_start(rendered["victoria-metrics-override.conf"])
    vm_argv[0] = lib.VICTORIA_METRICS
    procs.start("vm", vm_argv)
    vmagent_argv = lib.exec_start(rendered["vmagent.service"])
    vmagent_argv[0] = lib.VMAGENT
    procs.start("vmagent", vmagent_argv)

    vm_url, vmagent_url = f"http://127.0.0.1:{vm_port}", f"http://127.0.0.1:{vmagent_port}"

    def check() -> None:
        for name in ("mosquitto", "vm", "vmagent"):
            procs.check(name)

    lib.wait_health(vm_url + "/health", 30, "VictoriaMetrics", check, lib.vm_healthy)
    lib.wait_health(vmagent_url + "/health", 30, "vmagent", check, lib.vm_healthy)
    sysw = SysWatcher(mqtt_port)
    sysw.fresh(10)
    env = Env(work, procs, telegraf, mqtt_port, vm_url, vmagent_url, etc / "telegraf.conf",
              rendered["victron_processor.conf"], Allowlist.from_conf(rendered["victron_processor.conf"]), sysw)
    env.flush_s = lib.duration_s(tomllib.loads(rendered["telegraf.conf"])["agent"]["flush_interval"])
    return env


def vm_count(env: Env, selector: str) -> int:
    result = lib.vm_query(env.vm_url, f"sum(count_over_time({selector}[1h]))", timeout=10)
    return int(float(result[0]["value"][1])) if result else 0


def vmagent_pending(env: Env) -> float:
    return lib.prom_counters(env.vmagent_url + "/metrics", ("vm_persistentqueue_bytes_pending",))[
        "vm_persistentqueue_bytes_pending"]


@dataclass(frozen=True)
class Config:
    """A Telegraf input configuration under test."""

    name: str
    undelivered: int | None  # max_undelivered_messages added to the rendered input (None: as rendered)

    def describe(self) -> str:
        if self.undelivered is None:
            return "the GX input as ovr-refresh-gx-mqtt-sources renders it"
        return f"the same input + max_undelivered_messages = {self.undelivered} (nothing else changed)"


def run_step(env: Env, config: Config, variant: str, rate: int, seconds: float, *, drain_max: float,
             kind: str = "step", tick_s: float | None = None) -> dict[str, Any]:
    """One rate step: fresh Telegraf, publish, wait until VictoriaMetrics has it all (or gives up)."""
    env.steps_done += 1
    idx = env.steps_done
    portal = f"c0ffee{idx:06x}"
    system_id = f"bench-{variant}-{idx}"
    step_dir = env.work / f"step{idx:02d}-{config.name}-{variant}-{rate}"
    tdir = step_dir / "telegraf.d"
    tdir.mkdir(parents=True)
    (tdir / "gx_mqtt_sources.conf").write_text(lib.input_conf(env.mqtt_port, variant, system_id, portal,
                                                              config.undelivered))
    if variant == "pipeline":
        (tdir / "victron_processor.conf").write_text(env.processor_conf)
    cycle = lib.gx_cycle(portal)
    keep = env.allowlist.stored if variant == "pipeline" else raw_stored
    prefix = [0]
    for topic, payload in cycle:
        prefix.append(prefix[-1] + keep(topic, payload))

    def expected_for(sent: int) -> int:
        full, rest = divmod(sent, len(cycle))
        return full * prefix[-1] + prefix[rest]

    tg_name = f"telegraf-{idx}"
    tg = telegraf(env, tg_name, tdir, system_id, portal)
    pub_name = f"publisher-{idx}"
    pub = lib.start_publisher(env.procs, pub_name, step_dir / "publisher.json", host="127.0.0.1", port=env.mqtt_port,
                              client_id=f"ovr-gxsim-{portal}", rate=rate, seconds=seconds,
                              tick_s=tick_s or env.tick_s, cycle=cycle)

    pids = {"telegraf": tg.pid, "vmagent": env.procs.procs["vmagent"].pid, "vm": env.procs.procs["vm"].pid,
            "mosquitto": env.procs.procs["mosquitto"].pid, "publisher": pub.pid}
    sys0 = env.sys.fresh()
    vma0 = lib.prom_counters(env.vmagent_url + "/metrics", ("vmagent_rows_inserted_total",))
    cpu0, (busy0, steal0), t0 = lib.cpu_snapshot(pids), lib.machine_busy(), time.monotonic()
    lib.go(pub)
    line = lib.read_line(pub, seconds * 3 + 60)
    cpu_pub, (busy_pub, steal_pub), t_end = lib.cpu_snapshot(pids), lib.machine_busy(), time.monotonic()
    try:
        pub.wait(timeout=10)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"publisher hung:\n{env.procs.tail(pub_name)}") from exc
    if not line:
        raise BenchError(f"publisher failed:\n{env.procs.tail(pub_name)}")
    env.procs.procs.pop(pub_name, None)
    res = json.loads(line)
    sent = res["sent"]
    expected = expected_for(sent)
    selector = (f'{{__name__=~"victron_.+_value",system_id="{system_id}"}}' if variant == "pipeline"
                else f'mqtt_consumer_value{{system_id="{system_id}"}}')

    # Drain: until everything is there; or nothing new for 3 s (lost); or drain_max (still behind).
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
    still_arriving = drained_at is None and time.monotonic() - last_change <= 3.0
    cpu1, t_cpu = lib.cpu_snapshot(pids), time.monotonic()
    sys1 = env.sys.fresh()
    vma1 = lib.prom_counters(env.vmagent_url + "/metrics", ("vmagent_rows_inserted_total",))
    env.procs.stop(tg_name)

    pub_s = t_end - t0
    cpu = {k: max(0.0, cpu1.get(k, cpu0[k]) - cpu0[k]) for k in cpu0}  # until drained: all the work
    cpu_pub = {k: max(0.0, cpu_pub.get(k, cpu0[k]) - cpu0[k]) for k in cpu0}  # while publishing: the load
    ours_pub = sum(cpu_pub.values())
    pipeline_cpu = sum(cpu[k] for k in PROCS)
    pipeline_cpu_pub = sum(cpu_pub[k] for k in PROCS)
    achieved = sent / res["seconds"] if res["seconds"] > 0 else 0.0
    drain_s = (drained_at - t_end) if drained_at is not None else None
    missing = max(0, expected - stored)
    mosq_dropped = sys1.get("dropped", 0) - sys0.get("dropped", 0)
    if stored > expected:
        status = "EXTRA"  # would mean the expected count is wrong
    elif missing and (mosq_dropped or not still_arriving):
        status = "LOSS"
    elif missing:
        status = "BEHIND"  # still arriving when the step gave up: the pipeline cannot keep this rate
    elif achieved < 0.97 * rate:
        status = "BACKPRESSURE"  # the broker/Telegraf held the publisher back
    elif drain_s is None or drain_s > DRAIN_OK_S:
        status = "LAG"
    else:
        status = "ok"
    per_1k = sent / 1000
    step = {
        "config": config.name, "max_undelivered_messages": config.undelivered, "kind": kind, "variant": variant,
        "target_rate": rate, "seconds": round(res["seconds"], 2), "sent": sent, "achieved_rate": round(achieved, 1),
        "expected_samples": expected, "stored_samples": stored, "stored_at_publish_end": stored_at_end,
        "ingest_rate_while_publishing": round(stored_at_end / pub_s, 1) if pub_s > 0 else None,
        "missing": missing, "drain_s": None if drain_s is None else round(drain_s, 2),
        "mosquitto_received": sys1.get("received", 0) - sys0.get("received", 0), "mosquitto_dropped": mosq_dropped,
        "vmagent_rows_in": int(vma1["vmagent_rows_inserted_total"] - vma0["vmagent_rows_inserted_total"]),
        "publisher_send_s": round(res["send_s"], 2),
        "cpu_s_until_drained": {k: round(v, 3) for k, v in cpu.items()},
        "cpu_pct_per_1k": {k: round(100 * v / per_1k, 3) for k, v in cpu.items()} if sent else {},
        "pipeline_cpu_pct_per_1k": round(100 * pipeline_cpu / per_1k, 3) if sent else None,
        "cpu_pct_of_core_while_publishing": {k: round(100 * v / pub_s, 2) for k, v in cpu_pub.items()},
        "pipeline_cpu_pct_of_core_while_publishing": round(100 * pipeline_cpu_pub / pub_s, 2),
        "other_cpu_pct_of_core": round(100 * max(0.0, busy_pub - busy0 - ours_pub) / pub_s, 1),
        "machine_busy_pct": round(100 * (busy_pub - busy0) / (pub_s * (os.cpu_count() or 1)), 1),
        "tick_ms": round(1000 * (tick_s or env.tick_s), 1),
        "steal_pct_of_core": round(100 * (steal_pub - steal0) / pub_s, 1),
        "cpu_window_until_drained_s": round(t_cpu - t0, 2),
        "status": status, "system_id": system_id,
    }
    log(f"{config.name:8s} {variant:8s} {rate:6d}/s: sent {sent} ({achieved:.0f}/s), stored {stored}/{expected}, "
        f"drain {step['drain_s']} s, mosquitto dropped {mosq_dropped}, telegraf "
        f"{step['cpu_pct_of_core_while_publishing']['telegraf']:.0f}% of a core, other load "
        f"{step['other_cpu_pct_of_core']:.0f}% -> {status}")
    settle(env)
    return step


def telegraf(env: Env, name: str, confdir: Path, system_id: str, portal: str) -> subprocess.Popen[Any]:
    """A fresh Telegraf (production main config + `confdir`), subscribed to the portal's topics."""
    mosq_log = env.work / "mosquitto.log"
    return lib.start_telegraf(env.procs, name, env.telegraf, env.telegraf_conf, confdir, "bench-edge", mosq_log,
                              f"ovr-bench-edge-{system_id} 0 N/{portal}/#", mosq_log.stat().st_size)


def settle(env: Env, timeout: float = 30.0) -> None:
    """Let vmagent empty its queue before the next step (a lossy step can leave a backlog)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if vmagent_pending(env) == 0:
                break
        time.sleep(0.5)
    time.sleep(0.5)


def idle_baseline(env: Env, config: Config, seconds: float) -> dict[str, Any]:
    """CPU of the pipeline processes with Telegraf (pipeline variant) running and no GX traffic."""
    env.steps_done += 1
    idx = env.steps_done
    portal, system_id = f"c0ffee{idx:06x}", f"bench-idle-{idx}"
    tdir = env.work / f"step{idx:02d}-idle" / "telegraf.d"
    tdir.mkdir(parents=True)
    (tdir / "gx_mqtt_sources.conf").write_text(lib.input_conf(env.mqtt_port, "pipeline", system_id, portal,
                                                              config.undelivered))
    (tdir / "victron_processor.conf").write_text(env.processor_conf)
    name = f"telegraf-{idx}"
    tg = telegraf(env, name, tdir, system_id, portal)
    time.sleep(1.0)
    pids = {"telegraf": tg.pid, "vmagent": env.procs.procs["vmagent"].pid, "vm": env.procs.procs["vm"].pid,
            "mosquitto": env.procs.procs["mosquitto"].pid}
    c0, (b0, _), t0 = lib.cpu_snapshot(pids), lib.machine_busy(), time.monotonic()
    time.sleep(seconds)
    c1, (b1, _), t1 = lib.cpu_snapshot(pids), lib.machine_busy(), time.monotonic()
    env.procs.stop(name)
    pct = {k: round(100 * (c1[k] - c0[k]) / (t1 - t0), 2) for k in c0}
    ours = sum(c1[k] - c0[k] for k in c0)
    out = {"seconds": round(t1 - t0, 1), "cpu_pct_of_core": pct, "pipeline_cpu_pct_of_core": round(sum(pct.values()), 2),
           "other_cpu_pct_of_core": round(100 * max(0.0, b1 - b0 - ours) / (t1 - t0), 1)}
    log(f"idle (Telegraf with the processor, no traffic): {out['pipeline_cpu_pct_of_core']}% of a core")
    return out


def gxsim_capacity(env: Env, seconds: float) -> dict[str, Any]:
    """How fast the real GX simulator (paho) goes in load mode on this machine."""
    portal = "c0ffeeffff01"
    target = 40_000
    proc = env.procs.start("gxsim", [sys.executable, "-m", "ovr_gxsim", "--broker-port", str(env.mqtt_port),
                                     "--portal-id", portal, "--load-rate", str(target), "--log-level", "WARNING"],
                           env=dict(os.environ, PYTHONPATH=str(lib.GXSIM)))
    try:
        mosq_log = env.work / "mosquitto.log"
        lib.wait_for(lambda: f"ovr-gxsim-{portal} 0 R/{portal}/#" in mosq_log.read_text(errors="replace"), 30,
                 "the GX simulator to connect", lambda: env.procs.check("gxsim"))
        env.sys.publish(f"R/{portal}/keepalive", '{"keepalive-options":["suppress-republish"]}')
        time.sleep(1.5)
        s0, c0, t0 = env.sys.fresh(), lib.cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        s1, c1, t1 = env.sys.fresh(), lib.cpu_seconds(proc.pid), time.monotonic()
    finally:
        env.procs.stop("gxsim")
    rate = (s1["received"] - s0["received"]) / (t1 - t0)
    out = {"target_rate": target, "achieved_rate": round(rate), "cpu_pct_of_core": round(100 * (c1 - c0) / (t1 - t0), 1)}
    log(f"GX simulator load mode: {rate:.0f} msgs/s of {target} asked, {out['cpu_pct_of_core']}% of a core")
    return out


def run_ladder(env: Env, config: Config, ladder: list[int], seconds: float, drain_max: float,
               refine: int) -> list[dict[str, Any]]:
    """Step both variants up the ladder, interleaved; a variant stops at its first failed step."""
    steps: list[dict[str, Any]] = []
    best: dict[str, int] = {}
    failed: dict[str, int] = {}
    budget = seconds + drain_max + 12.0

    def one(variant: str, rate: int, kind: str) -> None:
        if time.monotonic() + budget > env.deadline:
            env.notes.append(f"time limit: skipped {config.name} {variant} at {rate} msgs/s")
            return
        step = run_step(env, config, variant, rate, seconds, drain_max=drain_max, kind=kind)
        steps.append(step)
        if step["status"] == "ok":
            best[variant] = max(rate, best.get(variant, 0))
        else:
            failed[variant] = min(rate, failed.get(variant, rate))

    for i, rate in enumerate(ladder):
        for variant in (VARIANTS if i % 2 == 0 else VARIANTS[::-1]):  # alternate who goes first
            if variant not in failed:
                one(variant, rate, "ladder")
    for _ in range(refine):  # bisection between the last ok and the first failed rate, 1000 msgs/s resolution
        for variant in VARIANTS:
            lo, hi = best.get(variant, 0), failed.get(variant)
            if hi is None or lo == 0:
                continue
            mid = int(round((lo + hi) / 2000) * 1000)
            if lo < mid < hi:
                one(variant, mid, "refine")
    return steps


# ---- report --------------------------------------------------------------------------------


def summarise(steps: list[dict[str, Any]], config: str, flush_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    mine_all = [s for s in steps if s["config"] == config and s["kind"] != "node"]
    for variant in VARIANTS:
        mine = [s for s in mine_all if s["variant"] == variant]
        ok = [s["target_rate"] for s in mine if s["status"] == "ok"]
        bad = [s for s in mine if s["status"] != "ok"]
        best = max(ok, default=0)
        first_bad = min((s for s in bad if s["target_rate"] > best), key=lambda s: s["target_rate"], default=None)
        out[variant] = {
            "max_no_loss_rate": best,
            "first_failed_rate": first_bad["target_rate"] if first_bad else None,
            "lower_bound": bool(mine) and first_bad is None,  # never failed: the real maximum is higher
            "tested": bool(mine),
        }
        if first_bad:
            out[variant]["limit"], out[variant]["flow_control_capped"] = diagnose(first_bad, flush_s)
    p, r = out["pipeline"], out["raw"]
    ratio = p["max_no_loss_rate"] / r["max_no_loss_rate"] if r["max_no_loss_rate"] else None
    kind = ("exact" if not (p["lower_bound"] or r["lower_bound"]) else
            "upper bound" if r["lower_bound"] and not p["lower_bound"] else
            "lower bound" if p["lower_bound"] and not r["lower_bound"] else "unknown")
    out["ratio"] = None if ratio is None else round(ratio, 3)
    out["ratio_kind"] = kind
    same_cap = all(out[v].get("flow_control_capped") for v in VARIANTS)
    if ratio is not None and kind == "exact" and not same_cap and p["first_failed_rate"] and r["first_failed_rate"]:
        # the true maxima lie between the last ok and the first failed rate
        out["ratio_range"] = [round(p["max_no_loss_rate"] / r["first_failed_rate"], 3),
                              round(p["first_failed_rate"] / r["max_no_loss_rate"], 3)]
    okrates = {v: {s["target_rate"] for s in mine_all if s["variant"] == v and s["status"] == "ok"} for v in VARIANTS}
    common = sorted(okrates["pipeline"] & okrates["raw"])
    if common:
        rate = common[-1]
        pick = {v: next(s for s in mine_all if s["variant"] == v and s["target_rate"] == rate and s["status"] == "ok")
                for v in VARIANTS}
        out["cpu_compare_rate"] = rate
        out["cpu_per_1k"] = {v: pick[v]["cpu_pct_per_1k"] | {"total": pick[v]["pipeline_cpu_pct_per_1k"]}
                             for v in VARIANTS}
        pc = pick["pipeline"]["pipeline_cpu_pct_per_1k"]
        out["cpu_cost_ratio_raw_over_pipeline"] = round(pick["raw"]["pipeline_cpu_pct_per_1k"] / pc, 3) if pc else None
    return out


def diagnose(step: dict[str, Any], flush_s: float) -> tuple[str, bool]:
    """What held a failed step back, from the counters of each stage; and whether it was the
    input's flow control (max_undelivered_messages per flush_interval)."""
    tg = step["cpu_pct_of_core_while_publishing"].get("telegraf", 0.0)
    ingest = step["ingest_rate_while_publishing"] or 0.0
    undelivered = step["max_undelivered_messages"] or 1000  # Telegraf's default
    cap = undelivered / flush_s
    parts = []
    if step["achieved_rate"] < 0.97 * step["target_rate"]:
        parts.append(f"the publisher was held back ({step['achieved_rate']:.0f}/s)")
    if step["mosquitto_dropped"]:
        parts.append(f"mosquitto dropped {step['mosquitto_dropped']} messages (its queue to Telegraf overflowed: "
                     "Telegraf did not read fast enough)")
    if step["status"] == "BEHIND":
        parts.append("samples were still arriving when the step gave up")
    flow = ingest <= 1.15 * cap and tg < 50 and step["machine_busy_pct"] < 90
    if flow:
        parts.append(f"ingest {ingest:.0f} samples/s = the input's flow-control cap: max_undelivered_messages "
                     f"{undelivered} per flush_interval {flush_s:g} s (Telegraf only {tg:.0f}% of a core)")
    else:
        parts.append(f"ingest {ingest:.0f} samples/s; Telegraf {tg:.0f}% of a core"
                     f"{' (CPU-bound)' if tg >= 90 else ''}; machine {step['machine_busy_pct']:.0f}% busy, of which "
                     f"other processes {step['other_cpu_pct_of_core']:.0f}% of a core"
                     f"{' (CPUs saturated)' if step['machine_busy_pct'] >= 90 else ''}")
    return "; ".join(parts), flow


def rate_txt(v: dict[str, Any]) -> str:
    if not v["tested"]:
        return "-"
    return f"{'>=' if v['lower_bound'] else ''}{v['max_no_loss_rate']}"


def rate_verdict(v: dict[str, Any]) -> str:
    if not v["tested"]:
        return "n/a"
    if v["max_no_loss_rate"] >= GOAL_RATE:
        return "MET"
    return "n/a (top of ladder)" if v["lower_bound"] else "NOT MET"


def ratio_txt(s: dict[str, Any]) -> tuple[str, str]:
    ratio, kind = s["ratio"], s["ratio_kind"]
    if ratio is None:
        return "-", "n/a"
    if all(s[v].get("flow_control_capped") for v in VARIANTS):
        return f"{ratio:.2f}", "n/a (same cap)"
    prefix = {"upper bound": "<=", "lower bound": ">="}.get(kind, "")
    if kind == "exact":
        ok: bool | None = ratio >= GOAL_RATIO
    elif kind == "upper bound":
        ok = False if ratio < GOAL_RATIO else None
    elif kind == "lower bound":
        ok = True if ratio >= GOAL_RATIO else None
    else:
        ok = None
    return f"{prefix}{ratio:.2f}", verdict(ok)


def print_report(result: dict[str, Any]) -> None:
    w = print
    meta, steps, summ = result["meta"], result["steps"], result["summary"]
    configs = meta["configs"]
    lib.print_header("Edge pipeline benchmark: GX MQTT -> Telegraf -> vmagent -> VictoriaMetrics", meta)
    v = meta["versions"]
    w(f"Telegraf {v['telegraf']}, {v['victoria-metrics']} (vmagent + VM), {v['mosquitto']}")
    gx = result.get("gxsim")
    if gx:
        w(f"GX simulator load mode alone (paho): {gx['achieved_rate']} msgs/s of {gx['target_rate']} asked, "
          f"{gx['cpu_pct_of_core']}% of a core; the steps replay its messages from a raw-socket publisher")
    w(f"Traffic: ovr_gxsim load-mode messages (63 topics); the pipeline stores {meta['stored_fraction']:.0%} of them "
      f"(role allowlist), raw Telegraf all")
    w("Variants: pipeline = data_format value/string + victron Starlark processor (production); "
      "raw = same Telegraf, data_format json, no processor")
    for name, desc in configs.items():
        w(f"Config {name:8s}: {desc}")
    w("")
    w(f"-- Throughput steps ({meta['step_seconds']:g} s each; ok = nothing lost, publisher kept its rate, all stored "
      f"within {DRAIN_OK_S:g} s of the end) --")
    w(f"{'config':9s}{'variant':9s}{'target/s':>9s}{'sent/s':>8s}{'in VM/s':>8s}{'expected':>9s}{'stored':>9s}"
      f"{'missing':>8s}{'drain':>6s}{'mq drop':>8s}{'other%':>7s} | {'CPU % of a core per 1k msgs/s':^38s} | result")
    w(f"{'':95s} | {'telegraf':>8s}{'vmagent':>8s}{'vm':>6s}{'mosq':>6s}{'total':>7s}{'':3s} |")
    for s in steps:
        if s["kind"] == "node":
            continue
        c = s["cpu_pct_per_1k"]
        drain = "-" if s["drain_s"] is None else f"{s['drain_s']:.1f}"
        w(f"{s['config']:9s}{s['variant']:9s}{s['target_rate']:9d}{s['achieved_rate']:8.0f}"
          f"{s['ingest_rate_while_publishing'] or 0:8.0f}{s['expected_samples']:9d}{s['stored_samples']:9d}"
          f"{s['missing']:8d}{drain:>6s}{s['mosquitto_dropped']:8d}{s['other_cpu_pct_of_core']:7.0f} | "
          f"{c.get('telegraf', 0):8.2f}{c.get('vmagent', 0):8.2f}{c.get('vm', 0):6.2f}{c.get('mosquitto', 0):6.2f}"
          f"{s['pipeline_cpu_pct_per_1k'] or 0:7.2f}{'':3s} | {s['status']}{' (bisect)' if s['kind'] == 'refine' else ''}")
    w("(in VM/s: samples visible in VictoriaMetrics by the end of publishing / publishing time; other%: CPU used by "
      "everything else on the machine meanwhile)")
    w("")
    w("-- CPU per 1,000 msgs/s (% of one core; both variants at the same rate, all work until stored) --")
    any_cpu = False
    for name in configs:
        s = summ[name]
        if "cpu_compare_rate" not in s:
            continue
        any_cpu = True
        w(f"{name} config at {s['cpu_compare_rate']} msgs/s:{'':6s}{'telegraf':>9s}{'vmagent':>9s}{'vm':>7s}"
          f"{'mosquitto':>10s}{'total':>8s}")
        for variant in VARIANTS:
            c = s["cpu_per_1k"][variant]
            w(f"  {variant:33s}{c.get('telegraf', 0):9.2f}{c.get('vmagent', 0):9.2f}{c.get('vm', 0):7.2f}"
              f"{c.get('mosquitto', 0):10.2f}{c['total']:8.2f}")
        w(f"  CPU cost raw/pipeline: {s['cpu_cost_ratio_raw_over_pipeline']} (the ratio's estimate if CPU-bound)")
    if not any_cpu:
        w("  (no rate where both variants were ok)")
    nodes = [s for s in steps if s["kind"] == "node"]
    if nodes:
        w("")
        w(f"-- Real node load: {NODE_RATE} msgs/s, {nodes[0]['config']} config, CPU while publishing (% of one core) --")
        w(f"{'variant':9s}{'cadence':>14s}{'time':>6s}{'telegraf':>9s}{'vmagent':>9s}{'vm':>7s}{'mosquitto':>10s}"
          f"{'total':>8s}{'other%':>8s}  stored")
        for s in nodes:
            c = s["cpu_pct_of_core_while_publishing"]
            cadence = f"burst/{s['tick_ms']:g} ms"
            w(f"{s['variant']:9s}{cadence:>14s}{s['seconds']:5.0f}s{c.get('telegraf', 0):9.2f}{c.get('vmagent', 0):9.2f}"
              f"{c.get('vm', 0):7.2f}{c.get('mosquitto', 0):10.2f}{s['pipeline_cpu_pct_of_core_while_publishing']:8.2f}"
              f"{s['other_cpu_pct_of_core']:8.0f}  {s['stored_samples']}/{s['expected_samples']} {s['status']}")
        idle = result.get("idle")
        if idle:
            c = idle["cpu_pct_of_core"]
            w(f"{'idle':9s}{'no traffic':>14s}{idle['seconds']:5.0f}s{c.get('telegraf', 0):9.2f}{c.get('vmagent', 0):9.2f}"
              f"{c.get('vm', 0):7.2f}{c.get('mosquitto', 0):10.2f}{idle['pipeline_cpu_pct_of_core']:8.2f}"
              f"{idle['other_cpu_pct_of_core']:8.0f}  (Telegraf with the processor, host inputs every 10 s)")
        p_, r_ = nodes[0], next((s for s in nodes if s["variant"] == "raw"), None)
        if r_ and r_["pipeline_cpu_pct_of_core_while_publishing"]:
            ratio = p_["pipeline_cpu_pct_of_core_while_publishing"] / r_["pipeline_cpu_pct_of_core_while_publishing"]
            w(f"pipeline/raw CPU at this load (same cadence): {ratio:.2f}")
    w("")
    w("-- Summary vs goals --")
    names = list(configs)
    w(f"{'figure':42s}" + "".join(f"{n:>28s}" for n in names) + f"{'goal':>10s}")
    rows = [("max no-loss rate, pipeline (msgs/s)", [
        f"{rate_txt(summ[n]['pipeline'])} {rate_verdict(summ[n]['pipeline'])}" for n in names], f">={GOAL_RATE}")]
    rows.append(("max no-loss rate, raw Telegraf (msgs/s)", [rate_txt(summ[n]["raw"]) for n in names], ""))
    rows.append(("ratio pipeline / raw", [" ".join(ratio_txt(summ[n])) for n in names], f">={GOAL_RATIO}"))
    if any("ratio_range" in summ[n] for n in names):
        rows.append(("  (range from the step resolution)",
                     [("{:.2f}-{:.2f}".format(*summ[n]["ratio_range"]) if "ratio_range" in summ[n] else "")
                      for n in names], ""))
    node = nodes[0] if nodes else None
    if node:
        pct = node["pipeline_cpu_pct_of_core_while_publishing"]
        cells = [f"{pct:.1f} {verdict(pct <= GOAL_NODE_CPU)}" if n == node["config"] else "-" for n in names]
        rows.append((f"pipeline CPU at {NODE_RATE} msgs/s (% of a core)", cells, f"<={GOAL_NODE_CPU:g}"))
    for label, cells, goal in rows:
        w(f"{label:42s}" + "".join(f"{c:>28s}" for c in cells) + f"{goal:>10s}")
    for n in names:
        for variant in VARIANTS:
            lim = summ[n][variant].get("limit")
            if lim:
                w(f"limit {n}/{variant} at {summ[n][variant]['first_failed_rate']} msgs/s: {lim}")
        if all(summ[n][v].get("flow_control_capped") for v in VARIANTS):
            w(f"note: in the {n} config both variants stop at the same input flow-control cap, so its ratio says "
              "nothing about the processor's cost")
    lib.print_footer(result)


# ---- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 3 s steps, 5 s node-load run, no bisection")
    ap.add_argument("--max-rate", type=int, default=80_000, help="highest step rate (msgs/s), default %(default)s")
    ap.add_argument("--rates", help="comma-separated step rates for both configs instead of the ladders "
                    f"(deployed {','.join(map(str, DEPLOYED_LADDER))}; tuned {','.join(map(str, TUNED_LADDER))})")
    ap.add_argument("--step-seconds", type=float, help="seconds per step (default 15, --quick 3)")
    ap.add_argument("--node-seconds", type=float,
                    help=f"seconds of the {NODE_RATE} msgs/s pipeline run (default 60, --quick 5; raw: half)")
    ap.add_argument("--refine", type=int, help="bisection rounds after the ladder (default 2, --quick 0)")
    ap.add_argument("--tick-ms", type=float, help="publisher cadence: due messages are sent in a burst every "
                    "TICK ms (default: the GX simulator's loop, 50 ms)")
    ap.add_argument("--tuned-undelivered", type=int, default=0,
                    help="max_undelivered_messages of the tuned config (0: skip it), default %(default)s")
    ap.add_argument("--time-limit", type=float, default=570.0,
                    help="start no step that could end after this many seconds (default %(default)s)")
    lib.add_common_args(ap, NAME)
    return ap.parse_args(argv)


def run(args: argparse.Namespace, work: Path, procs: Processes, result: dict[str, Any]) -> None:
    quick = args.quick
    seconds = args.step_seconds or (3.0 if quick else 15.0)
    node_seconds = args.node_seconds or (5.0 if quick else 60.0)
    refine = args.refine if args.refine is not None else (0 if quick else 2)
    tick_s = args.tick_ms / 1000 if args.tick_ms else lib.gxsim_tick()
    drain_max = 10.0
    configs = [Config("deployed", None)]
    if args.tuned_undelivered:
        configs.append(Config("tuned", args.tuned_undelivered))

    def ladder_for(default: tuple[int, ...]) -> list[int]:
        rates = [int(x) for x in args.rates.split(",")] if args.rates else list(default)
        return sorted({r for r in rates if 0 < r <= args.max_rate}) or [args.max_rate]

    ladders = {"deployed": ladder_for(DEPLOYED_LADDER), "tuned": ladder_for(TUNED_LADDER)}
    t_start = time.monotonic()
    lib.ensure_packages()
    telegraf = lib.locate_telegraf(TELEGRAF_PLUGINS)
    result["meta"] |= {
        "step_seconds": seconds, "node_seconds": node_seconds, "tick_ms": tick_s * 1000,
        "ladders": {c.name: ladders[c.name] for c in configs},
        "configs": {c.name: c.describe() for c in configs},
        "versions": {"telegraf": lib.telegraf_version(telegraf), "victoria-metrics": lib.package_version("victoria-metrics"),
                     "mosquitto": lib.package_version("mosquitto"), "python": result["meta"]["python"]},
        "goals": {"pipeline_max_rate": GOAL_RATE, "ratio": GOAL_RATIO, "node_cpu_pct": GOAL_NODE_CPU},
    }
    meta = result["meta"]
    log(f"work dir {work}; starting mosquitto, VictoriaMetrics, vmagent (configs rendered from roles/edge)")
    env = start_stack(work, procs, telegraf)
    try:
        env.deadline = t_start + args.time_limit
        cycle = lib.gx_cycle("c0ffee000000")
        meta["stored_fraction"] = sum(env.allowlist.stored(t, p) for t, p in cycle) / len(cycle)
        result["gxsim"] = gxsim_capacity(env, 2.0 if quick else 5.0)
        steps: list[dict[str, Any]] = []
        env.tick_s = tick_s
        result["idle"] = idle_baseline(env, configs[0], 3.0 if quick else 20.0)
        # The node load: pipeline, raw (side by side), and the pipeline with smooth traffic (2 ms ticks)
        # to show how much the cadence matters at low rates.
        for variant, secs, tick in (("pipeline", node_seconds, None), ("raw", node_seconds / 2, None),
                                    ("pipeline", node_seconds / 2, SMOOTH_TICK_S)):
            steps.append(run_step(env, configs[0], variant, NODE_RATE, secs, drain_max=drain_max, kind="node",
                                  tick_s=tick))
        for config in configs:
            steps += run_ladder(env, config, ladders[config.name], seconds, drain_max, refine)
        result["steps"] = steps
        result["summary"] = {c.name: summarise(steps, c.name, env.flush_s) for c in configs}
        result["notes"] = env.notes
    finally:
        env.sys.close()


def main(argv: list[str] | None = None) -> int:
    return lib.main(sys.modules[__name__], parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
