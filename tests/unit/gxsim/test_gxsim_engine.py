"""Simulator engine: value model, chaos cycle, load rate, disappearing devices (fake clock)."""

from __future__ import annotations

import json
import math

import pytest
from gxsim_testlib import PORTAL, FakeClock
from ovr_gxsim.chaos import CHAOS_KINDS, HUGE_PAYLOAD_BYTES, ChaosCycle, chaos_payload
from ovr_gxsim.engine import Disappearance, Simulator, parse_disappear
from ovr_gxsim.flashmq import Message
from ovr_gxsim.profile import DEFAULT_PROFILE, ProfileError, load_profile

N = f"N/{PORTAL}/"
SUPPRESS = b'{"keepalive-options":["suppress-republish"]}'


def make(clock: FakeClock, **kwargs: object) -> Simulator:
    return Simulator(load_profile(DEFAULT_PROFILE, PORTAL), PORTAL, clock, **kwargs)  # type: ignore[arg-type]


def run(sim: Simulator, clock: FakeClock, seconds: float, step: float = 0.25) -> list[Message]:
    out: list[Message] = []
    for _ in range(round(seconds / step)):
        clock.advance(step)
        out += sim.poll()
    return out


def keep_alive(sim: Simulator) -> list[Message]:
    return sim.handle(f"R/{PORTAL}/keepalive", SUPPRESS)


def history(sim: Simulator, clock: FakeClock, key: str, seconds: int) -> list[object]:
    values = []
    for _ in range(seconds):
        clock.advance(1)
        sim.poll()
        values.append(sim.state.value(key))
    return values


# --- value model -------------------------------------------------------------------------


def test_same_seed_same_values_different_seed_different_values() -> None:
    keys = ["system/0/Dc/Battery/Soc", "vebus/276/Ac/Out/L1/P", "gps/0/Position/Latitude"]

    def trace(seed: int) -> list[list[object]]:
        clock = FakeClock()
        sim = make(clock, seed=seed)
        return [history(sim, clock, k, 1)[0] for _ in range(200) for k in keys]

    assert trace(7) == trace(7)
    assert trace(7) != trace(8)


DAY_KEYS = (
    "system/0/Dc/Battery/Soc",
    "battery/512/Soc",
    "solarcharger/279/Yield/Power",
    "gps/0/Position/Latitude",
    "gps/0/Position/Longitude",
    "gps/0/Speed",
    "gps/0/Course",
    "gps/0/Fix",
)


@pytest.fixture(scope="module")
def day() -> dict[str, list[object]]:
    """One simulated day (3600 s at time_scale 24) of a few paths, sampled every second."""
    clock = FakeClock()
    sim = make(clock)
    trace: dict[str, list[object]] = {k: [sim.state.value(k)] for k in DAY_KEYS}
    for _ in range(3600):
        clock.advance(1)
        sim.poll()
        for k in DAY_KEYS:
            trace[k].append(sim.state.value(k))
    return trace


def test_soc_drifts_within_bounds(day: dict[str, list[object]]) -> None:
    socs = day["system/0/Dc/Battery/Soc"]
    assert all(isinstance(s, float) and 0 <= s <= 100 for s in socs)
    assert max(socs) - min(socs) > 5  # it really moves over a (compressed) day
    assert socs == day["battery/512/Soc"]  # battery and system agree


def test_pv_has_real_zeros_at_night_and_power_by_day(day: dict[str, list[object]]) -> None:
    pv = day["solarcharger/279/Yield/Power"]
    assert 0 in pv
    assert max(pv) > 500
    assert all(isinstance(p, int) for p in pv)  # round 0 gives integers on the wire


def test_gps_moves_along_the_track_and_stops(day: dict[str, list[object]]) -> None:
    lat, lon = day["gps/0/Position/Latitude"], day["gps/0/Position/Longitude"]
    steps = [math.hypot(a - b, c - d) for a, b, c, d in zip(lat[1:], lat, lon[1:], lon, strict=False)]
    assert max(steps) < 0.001  # no jumps: ~12 m/s is ~0.0002 degrees per second
    assert math.hypot(lat[-1] - lat[0], lon[-1] - lon[0]) > 0.01  # kilometres, not noise
    speeds = day["gps/0/Speed"]
    assert 0 in speeds or 0.0 in speeds  # parked at a waypoint
    assert max(speeds) > 5
    assert all(0 <= c < 360 for c in day["gps/0/Course"])
    assert set(day["gps/0/Fix"]) == {1}


def test_batteries_list_tracks_the_battery() -> None:
    clock = FakeClock()
    sim = make(clock)
    history(sim, clock, "system/0/Batteries", 10)
    batteries = sim.state.value("system/0/Batteries")
    assert isinstance(batteries, list) and len(batteries) == 1
    assert batteries[0]["instance"] == 512
    assert batteries[0]["soc"] == pytest.approx(sim.state.value("battery/512/Soc"), abs=0.11)


def test_mode_off_switches_the_inverter_outputs_off() -> None:
    clock = FakeClock()
    sim = make(clock)
    history(sim, clock, "vebus/276/Ac/Out/P", 5)
    sim.handle(f"W/{PORTAL}/vebus/276/Mode", b'{"value": 4}')
    history(sim, clock, "vebus/276/Ac/Out/P", 3)
    assert sim.state.value("vebus/276/Ac/Out/P") == 0
    assert sim.state.value("vebus/276/Ac/Out/L1/V") == 0.0
    assert sim.state.value("vebus/276/State") == 0
    assert sim.state.value("system/0/Ac/Consumption/L1/Power") == 0


def test_inverter_output_voltage_setting_drives_the_output() -> None:
    clock = FakeClock()
    sim = make(clock)
    sim.handle(f"W/{PORTAL}/vebus/276/Settings/InverterOutputVoltage", b'{"value": 240}')
    volts = []
    for _ in range(1800):  # find a moment off shore power, inverting
        clock.advance(1)
        sim.poll()
        if sim.state.value("vebus/276/State") == 9:
            volts.append(sim.state.value("vebus/276/Ac/Out/L1/V"))
    assert volts
    assert sum(volts) / len(volts) == pytest.approx(240, abs=1)


def test_changes_are_published_while_alive_and_only_changes() -> None:
    clock = FakeClock()
    sim = make(clock)
    assert run(sim, clock, 5) == []  # not alive: nothing
    keep_alive(sim)
    out = run(sim, clock, 10)
    changes = [m for m in out if not m.topic.endswith("/heartbeat")]
    assert changes
    assert not any(m.topic.endswith("/Serial") for m in changes)
    assert not any(m.topic.endswith("/ProductName") for m in changes)  # static values


# --- chaos --------------------------------------------------------------------------------


def test_chaos_payloads_are_all_malformed_in_their_own_way() -> None:
    seen = {kind: chaos_payload(kind) for kind in CHAOS_KINDS}
    with pytest.raises(ValueError):
        json.loads(seen["non_json"])
    assert json.loads(seen["null_value"]) == {"value": None}
    assert seen["empty"] == b""
    assert isinstance(json.loads(seen["string_value"])["value"], str)
    assert isinstance(json.loads(seen["list_value"])["value"], list)
    assert "value" not in json.loads(seen["object_without_value"])
    assert len(seen["huge"]) == HUGE_PAYLOAD_BYTES == 256 * 1024


def test_chaos_cycle_covers_every_kind_deterministically_on_real_topics() -> None:
    # Same seed with and without chaos: the difference is exactly the chaos traffic.
    clean_clock, chaos_clock = FakeClock(), FakeClock()
    clean = make(clean_clock, seed=3)
    chaotic = make(chaos_clock, seed=3, chaos=True, chaos_interval=1.0)
    keep_alive(clean)
    keep_alive(chaotic)
    real_topics = {N + k for k in chaotic.state.items}
    base = run(clean, clean_clock, len(CHAOS_KINDS) * 2)
    out = run(chaotic, chaos_clock, len(CHAOS_KINDS) * 2)
    chaos = list(out)
    for m in base:
        chaos.remove(m)
    kinds = [chaos_payload(k) for k in CHAOS_KINDS]
    assert [m.payload for m in chaos] == kinds + kinds  # the cycle, in order, twice
    assert all(m.topic in real_topics and not m.topic.endswith("/Serial") for m in chaos)
    assert len({m.topic for m in chaos}) > 1

    again = ChaosCycle(sorted(real_topics), seed=3)
    other = ChaosCycle(sorted(real_topics), seed=3)
    assert [again.next() for _ in range(20)] == [other.next() for _ in range(20)]


def test_no_chaos_while_not_alive() -> None:
    clock = FakeClock()
    sim = make(clock, chaos=True)
    assert run(sim, clock, 10) == []


# --- load rate ----------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [1, 50, 200, 1000])
def test_load_rate_publishes_exactly_n_changes_per_second(rate: int) -> None:
    clock = FakeClock()
    sim = make(clock, load_rate=rate)
    keep_alive(sim)
    run(sim, clock, 1.0, step=0.05)  # settle the first partial second
    last: dict[str, bytes] = {}
    for _ in range(3):  # three simulated seconds, polled at the adapter's 50 ms
        out = [m for m in run(sim, clock, 1.0, step=0.05) if not m.topic.endswith("/heartbeat")]
        assert len(out) == rate
        for m in out:  # every message is a real change of a profile value
            assert m.topic.startswith(N) and m.payload != last.get(m.topic)
            assert isinstance(json.loads(m.payload)["value"], (int, float))
            last[m.topic] = m.payload
    # Spread over many topics, not one.
    assert len(last) == min(rate * 3, len(sim.load.keys))  # type: ignore[union-attr]


def test_load_rate_is_silent_while_not_alive_and_does_not_burst_after() -> None:
    clock = FakeClock()
    sim = make(clock, load_rate=100)
    assert run(sim, clock, 5.0, step=0.05) == []
    keep_alive(sim)
    out = [m for m in run(sim, clock, 1.0, step=0.05) if not m.topic.endswith("/heartbeat")]
    assert len(out) == 100


# --- disappearing devices -----------------------------------------------------------------


def test_parse_disappear() -> None:
    assert parse_disappear("solarcharger/279@120+60, battery/512@5") == [
        Disappearance("solarcharger", 279, 120.0, 60.0),
        Disappearance("battery", 512, 5.0, None),
    ]
    assert parse_disappear("") == []
    for bad in ["solarcharger@10", "solarcharger/x@10", "solarcharger/279", "a/1@b"]:
        with pytest.raises(ValueError):
            parse_disappear(bad)


def test_device_disappears_and_comes_back_on_schedule() -> None:
    clock = FakeClock()
    sim = make(clock, disappear=parse_disappear("solarcharger/279@10+5"))
    device = {N + k for k in sim.state.items if k.startswith("solarcharger/279/")}
    keep_alive(sim)
    out = run(sim, clock, 9.75)
    assert not any(m.payload == b"" for m in out)
    out = run(sim, clock, 0.25)
    empties = [m for m in out if m.payload == b""]
    assert len(empties) == len(device) == 13
    assert {m.topic for m in empties} == device
    assert not any(k.startswith("solarcharger/") for k in sim.state.items)
    out = run(sim, clock, 5.0)
    back = [m for m in out if m.topic in device]
    assert {m.topic for m in back} == device and all(m.payload for m in back)


def test_disappear_of_unknown_device_is_a_profile_error() -> None:
    with pytest.raises(ProfileError, match="not in the profile"):
        make(FakeClock(), disappear=parse_disappear("tank/20@5"))
