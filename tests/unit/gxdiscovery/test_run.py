"""run_once with a scripted probe and a fake clock: grace periods, write-if-changed, reload only
on change, failures. (test_e2e.py does the same against real brokers and the simulator.)"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ovr_gxdiscovery import run
from ovr_gxdiscovery.probe import Decide, ProbeRequest, ProbeResult
from ovr_gxdiscovery.settings import Settings, load_settings
from ovr_gxdiscovery.state import Names
from peers import FakeClock

PA, PB = "c0619ab68e54", "be300d83ff04"


class FakeGx:
    """What a GX answers: ok with a portal and names, unreachable, or refused."""

    def __init__(self, portal: str, names: Names | None = None) -> None:
        self.portal = portal
        self.names = names or Names(vebus={276: "Pro 6005-1"}, complete=True)
        self.outcome = "ok"
        self.modes: list[str] = []
        self.requests: list[ProbeRequest] = []

    def __call__(self, req: ProbeRequest, decide: Decide) -> ProbeResult:
        self.requests.append(req)
        if self.outcome != "ok":
            return ProbeResult(outcome=self.outcome, reason=f"{self.outcome} (test)")  # type: ignore[arg-type]
        mode, why = decide(self.portal)
        self.modes.append(mode)
        names = self.names if mode == "full" and req.want_names else None
        return ProbeResult(outcome="ok", portal_id=self.portal, mode=mode, mode_why=why, names=names)


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        (tmp / "telegraf.d").mkdir()
        self.calls = tmp / "calls.log"
        self.check_rc = tmp / "check_rc"
        self.check_rc.write_text("0")
        self.reload_rc = tmp / "reload_rc"
        self.reload_rc.write_text("0")
        fake_tg = tmp / "telegraf"
        fake_tg.write_text(f'#!/bin/sh\necho "check $*" >> "{self.calls}"\necho "E! bad plugin" >&2\nexit $(cat "{self.check_rc}")\n')
        fake_tg.chmod(0o755)
        reload = tmp / "reload.sh"
        reload.write_text(f'#!/bin/sh\necho "reload $*" >> "{self.calls}"\nexit $(cat "{self.reload_rc}")\n')
        reload.chmod(0o755)
        self.gx: dict[str, FakeGx] = {}
        self.clock = FakeClock(1_800_000_000.0)
        self.inventory: list[dict[str, Any]] = []

    def settings(self, **env: str) -> Settings:
        base = {
            "OVR_NODE_ID": "node-04",
            "OVR_DEPLOYMENT_ID": "demo",
            "OVR_GX_INVENTORY": str(self.tmp / "gx_inventory.json"),
            "OVR_GX_SYSTEMS": str(self.tmp / "gx_systems.json"),
            "OVR_TELEGRAF_CONFIG": str(self.tmp / "telegraf.conf"),
            "OVR_TELEGRAF_CONFIG_DIR": str(self.tmp / "telegraf.d"),
            "OVR_GX_STATE_DIR": str(self.tmp / "state"),
            "OVR_TELEGRAF_BIN": str(self.tmp / "telegraf"),
            "OVR_TELEGRAF_CONF_GROUP": "",
            "OVR_GX_RELOAD_COMMAND": f"{self.tmp / 'reload.sh'} telegraf.service",
            "OVR_GX_RUN_TIMEOUT": "2",
        }
        return load_settings({**base, **env})

    def add(self, name: str, portal: str, names: Names | None = None, **entry: Any) -> FakeGx:
        self.gx[name] = FakeGx(portal, names)
        self.inventory.append({"name": name, "host": f"{name}.local", **entry})
        return self.gx[name]

    def run(self, **env: str) -> int:
        (self.tmp / "gx_inventory.json").write_text(json.dumps({"systems": self.inventory}))
        return run.run_once(self.settings(**env), now=self.clock, probe_fn=lambda req, d: self.gx[req.gx.name](req, d))

    def log(self) -> list[str]:
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def reloads(self) -> int:
        return sum(1 for line in self.log() if line.startswith("reload"))

    def checks(self) -> int:
        return sum(1 for line in self.log() if line.startswith("check"))

    def systems(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in json.loads((self.tmp / "gx_systems.json").read_text())["systems"]}

    @property
    def conf(self) -> Path:
        return self.tmp / "telegraf.d" / "gx_mqtt_sources.conf"


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def mtimes(e: Env) -> tuple[int, int]:
    return e.conf.stat().st_mtime_ns, (e.tmp / "gx_systems.json").stat().st_mtime_ns


def test_first_run_then_nothing_changes(env: Env) -> None:
    gx = env.add("main", PA)
    assert env.run() == 0
    assert gx.modes == ["full"] and env.checks() == 1 and env.reloads() == 1
    assert env.log()[-1] == "reload telegraf.service"
    assert env.systems()["main"]["system_id"] == "pro6005-1"
    before = mtimes(env)
    for _ in range(3):
        env.clock.advance(20)
        time.sleep(0.01)
        assert env.run() == 0
    # The run after the reload asks for one more full republish (Telegraf subscribed after the first).
    assert gx.modes == ["full", "full", "suppress", "suppress"]
    assert mtimes(env) == before and env.checks() == 1 and env.reloads() == 1
    req = gx.requests[-1]
    assert req.client_id == "ovr-disc-node-04-main" and req.known_portal == PA and req.want_names


def test_periodic_full_republish(env: Env) -> None:
    gx = env.add("main", PA)
    env.run(OVR_GX_FULL_REPUBLISH_SECONDS="60")
    for _ in range(4):
        env.clock.advance(20)
        env.run(OVR_GX_FULL_REPUBLISH_SECONDS="60")
    # full at 0 s (first contact), 20 s (after Telegraf's reload), then every 60 s from there: 80 s.
    assert gx.modes == ["full", "full", "suppress", "suppress", "full"]


def test_lost_then_grace_then_back(env: Env) -> None:
    gx = env.add("main", PA)
    env.add("other", PB, Names(system_name="Other boat", complete=True))
    env.run()
    conf = env.conf.read_text()
    gx.outcome = "unreachable"
    env.clock.advance(20)
    assert env.run() == 0
    assert env.systems()["main"]["status"] == "online"  # 20 s < OVR_GX_LOST_AFTER_SECONDS (30)
    env.clock.advance(20)
    assert env.run() == 0
    main = env.systems()["main"]
    assert main["status"] == "lost" and main["last_seen"] == main["since"] and main["drops_at"]
    assert env.conf.read_text() == conf and env.reloads() == 1  # still an input, no reload
    before = mtimes(env)
    env.clock.advance(20)
    env.run()
    assert mtimes(env) == before  # lost and still lost: nothing to write
    env.clock.advance(600 - 60 + 1)  # last seen 601 s ago
    assert env.run() == 0
    assert "main" not in env.systems() and "gx-main" not in env.conf.read_text()
    assert 'alias = "gx-other"' in env.conf.read_text()
    assert env.reloads() == 2
    gx.outcome = "ok"
    env.clock.advance(20)
    assert env.run() == 0
    assert gx.modes[-1] == "full" and env.systems()["main"]["status"] == "online"
    assert env.conf.read_text() == conf and env.reloads() == 3


def test_removed_from_inventory_drops_at_once(env: Env) -> None:
    env.add("main", PA)
    env.add("other", PB)
    env.run()
    env.inventory = [e for e in env.inventory if e["name"] != "other"]
    env.clock.advance(20)
    env.run()
    assert set(env.systems()) == {"main"} and "gx-other" not in env.conf.read_text() and env.reloads() == 2
    state = json.loads((env.tmp / "state" / "state.json").read_text())
    assert set(state["systems"]) == {"main"}


def test_refused_login_leaves_telegraf_at_once(env: Env) -> None:
    gx = env.add("main", PA, username="ovr")
    env.run()
    gx.outcome = "refused"
    env.clock.advance(20)
    assert env.run() == 0
    assert env.systems()["main"]["status"] == "refused"
    assert "[[inputs.mqtt_consumer]]" not in env.conf.read_text() and env.reloads() == 2


def test_same_custom_name_on_two_gx(env: Env) -> None:
    env.add("fore", PA)
    env.add("aft", PB)
    env.run()
    ids = {n: s["system_id"] for n, s in env.systems().items()}
    assert ids == {"fore": f"pro6005-1-{PA}", "aft": f"pro6005-1-{PB}"}
    assert f'client_id = "ovr-node-04-pro6005-1-{PA}"' in env.conf.read_text()


def test_a_dropped_gx_does_not_rename_the_others(env: Env) -> None:
    fore = env.add("fore", PA)
    env.add("aft", PB)
    env.run()
    fore.outcome = "unreachable"
    env.clock.advance(700)
    env.run()
    assert env.systems() == {"aft": env.systems()["aft"]}
    assert env.systems()["aft"]["system_id"] == f"pro6005-1-{PB}"


def test_override_skips_names_and_fallback_to_portal(env: Env) -> None:
    a = env.add("a", PA, system_id="aft-bank")
    env.add("b", PB, Names(complete=True))
    env.run()
    assert a.requests[0].want_names is False
    assert {n: s["system_id"] for n, s in env.systems().items()} == {"a": "aft-bank", "b": PB}


def test_reload_failure_is_retried_next_run(env: Env) -> None:
    env.add("main", PA)
    env.reload_rc.write_text("1")
    assert env.run() == 1
    assert env.reloads() == 1
    env.clock.advance(20)
    env.reload_rc.write_text("0")
    assert env.run() == 0  # conf unchanged, but the reload was still owed
    assert env.reloads() == 2
    env.clock.advance(20)
    assert env.run() == 0 and env.reloads() == 2


def test_rejected_candidate_keeps_the_old_file_and_does_not_reload(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.add("main", PA)
    env.check_rc.write_text("1")
    env.conf.write_text("# old\n")
    with caplog.at_level(logging.INFO, logger="ovr_gxdiscovery"):
        assert env.run() == 1
    assert env.conf.read_text() == "# old\n" and env.reloads() == 0
    assert "telegraf config check failed: rc=1: E! bad plugin" in caplog.text
    assert env.systems()["main"]["status"] == "online"


def test_check_sees_main_config_and_a_copy_of_the_directory(env: Env) -> None:
    env.add("main", PA)
    (env.tmp / "telegraf.d" / "victron_processor.conf").write_text("# processor\n")
    env.run()
    line = next(x for x in env.log() if x.startswith("check"))
    assert f"config check --config {env.tmp / 'telegraf.conf'} --config-directory" in line
    assert str(env.tmp / "telegraf.d") not in line  # a private copy holding the candidate


def test_no_reload_command(env: Env) -> None:
    env.add("main", PA)
    assert env.run(OVR_GX_RELOAD_COMMAND="") == 0 and env.reloads() == 0


def test_hung_probe_is_cut_off_by_the_run_limit(env: Env) -> None:
    env.add("main", PA)
    slow = env.add("slow", PB)

    def hang(req: ProbeRequest, decide: Decide) -> ProbeResult:
        time.sleep(5)
        return slow(req, decide)

    env.gx["slow"] = hang  # type: ignore[assignment]
    start = time.monotonic()
    assert env.run(OVR_GX_RUN_TIMEOUT="0.5") == 0
    assert time.monotonic() - start < 2
    assert set(env.systems()) == {"main"}


def test_password_never_logged(env: Env, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("hunter2-secret")
    gx = env.add("main", PA, username="ovr", password_file=str(pw))
    gx.outcome = "error"

    def leaky(req: ProbeRequest, decide: Decide) -> ProbeResult:
        return ProbeResult(outcome="error", reason=f"something echoed {req.password}")

    env.gx["main"] = leaky  # type: ignore[assignment]
    with caplog.at_level(logging.INFO, logger="ovr_gxdiscovery"):
        env.run()
    assert "something echoed ***" in caplog.text and "hunter2-secret" not in caplog.text


def test_unreadable_password_takes_the_input_out_not_the_password_line(env: Env, tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("s3cret")
    env.add("main", PA, username="ovr", password_file=str(pw))
    env.add("other", PB)
    assert env.run() == 0
    assert 'password = "s3cret"' in env.conf.read_text()
    pw.unlink()
    env.clock.advance(20)
    assert env.run() == 1
    conf = env.conf.read_text()
    assert "gx-main" not in conf and 'username = "ovr"' not in conf and "gx-other" in conf
    assert env.systems()["main"]["status"] == "online"  # not seen this run, but not lost yet either


def test_corrupt_state_means_first_contact(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    gx = env.add("main", PA)
    env.run()
    (env.tmp / "state" / "state.json").write_text("garbage")
    env.clock.advance(20)
    with caplog.at_level(logging.INFO, logger="ovr_gxdiscovery"):
        assert env.run() == 0
    assert gx.modes == ["full", "full"] and "starting afresh" in caplog.text
    assert env.reloads() == 1  # same outputs: nothing rewritten


def test_probe_all_marks_missing_results() -> None:
    def fn(req: ProbeRequest, decide: Decide) -> ProbeResult:
        time.sleep(1)
        return ProbeResult(outcome="ok")

    req: Callable[[str], ProbeRequest] = lambda n: ProbeRequest(gx=None, password=None, client_id=n, known_portal=None, want_names=False)  # type: ignore[arg-type]  # noqa: E731
    out = run.probe_all({"a": req("a")}, {"a": lambda p: ("full", "")}, 0.1, fn)
    assert out["a"].outcome == "unreachable" and "run limit" in out["a"].reason
