"""GxCache: the live values of one GX from Venus notifications (pure, clock injected)."""

from __future__ import annotations

import json

from ovr_events.realtime import GxCache
from peers import FakeClock


def v(x: object) -> bytes:
    return json.dumps({"value": x}).encode()


def make() -> tuple[GxCache, FakeClock]:
    clock = FakeClock(1000.0)
    return GxCache("pro-1", "p1", clock=clock), clock


def test_vebus_instance_is_discovered_not_hard_coded():
    c, _ = make()
    c.handle("vebus/289/Mode", v(3))
    c.handle("vebus/289/Ac/Out/L1/P", v(500))
    s = c.summary(60)
    assert s["vebus_instance"] == "289"
    assert s["mode"] == 3
    assert s["pout"] == 500


def test_lowest_vebus_instance_wins():
    c, _ = make()
    c.handle("vebus/300/Mode", v(1))
    c.handle("vebus/276/Mode", v(3))
    assert c.vebus_instance() == "276"
    assert c.summary(60)["mode"] == 3


def test_real_zero_is_kept_and_phases_are_summed():
    c, _ = make()
    c.handle("vebus/276/Ac/Out/L1/P", v(400))
    c.handle("vebus/276/Ac/Out/L2/P", v(300))
    c.handle("vebus/276/Ac/Out/L3/P", v(0))
    assert c.summary(60)["pout"] == 700
    for ph in ("L1", "L2"):
        c.handle(f"vebus/276/Ac/Out/{ph}/P", v(0))
    s = c.summary(60)
    assert s["pout"] == 0.0  # the earlier product kept the previous value here
    assert s["pout_phases"] == {"L1": 0.0, "L2": 0.0, "L3": 0.0}


def test_ac_in_falls_back_to_grid_and_genset():
    c, _ = make()
    c.handle("system/0/Ac/Grid/L1/Power", v(100))
    c.handle("system/0/Ac/Genset/L1/Power", v(50))
    s = c.summary(60)
    assert s["pin"] == 150
    assert s["pin_source"] == "system/0/Ac/Grid"


def test_battery_alarms_gps_and_stale():
    c, clock = make()
    c.handle("system/0/Dc/Battery/Soc", v(71.5))
    c.handle("system/0/Dc/Battery/Voltage", v(52.1))
    c.handle("battery/512/Alarms/LowSoc", v(2))
    c.handle("battery/512/Alarms/HighTemperature", v(0))
    c.handle("gps/0/Position/Latitude", v(52.1))
    c.handle("gps/0/Position/Longitude", v(4.9))
    s = c.summary(60)
    assert s["soc"] == 71.5 and s["voltage"] == 52.1
    assert s["alarms"] == [{"service": "battery", "instance": "512", "alarm": "LowSoc", "level": 2}]
    assert s["gps"]["latitude"] == 52.1 and s["gps"]["longitude"] == 4.9
    assert s["stale"] is False
    clock.now += 61
    assert c.summary(60)["stale"] is True
    c.handle("heartbeat", b'{"value": 1}')
    assert c.summary(60)["stale"] is False


def test_null_empty_and_malformed_payloads():
    c, _ = make()
    c.handle("system/0/Dc/Battery/Soc", v(50))
    c.handle("system/0/Dc/Battery/Soc", v(None))
    assert c.summary(60)["soc"] is None
    c.handle("system/0/Dc/Battery/Voltage", v(51))
    c.handle("system/0/Dc/Battery/Voltage", b"")  # device gone
    assert "system/0/Dc/Battery/Voltage" not in c.values
    for bad in (b"not json", b"[1,2]", b'{"max": 1}', b"x" * 70000):
        c.handle("system/0/Dc/Battery/Current", bad)
    assert c.malformed == 4
    assert c.summary(60)["current"] is None


def test_controls_report_adjustable_flags():
    c, _ = make()
    c.handle("vebus/276/Mode", v(3))
    c.handle("vebus/276/ModeIsAdjustable", v(0))
    c.handle("vebus/276/Ac/ActiveIn/CurrentLimit", v(16))
    c.handle("vebus/276/Ac/ActiveIn/CurrentLimitIsAdjustable", v(1))
    ctl = c.summary(60)["controls"]
    assert ctl["inverter_mode"]["adjustable"] is False
    assert ctl["ac_input_current_limit"] == {"value": 16.0, "updated_ms": 1000000, "adjustable": True, "state": "live",
                                             "text": None}
    assert ctl["battery_charge_current"]["adjustable"] is True


def test_garbage_on_a_numeric_path_does_not_replace_the_value():
    """The simulator's chaos mode (and broken devices) publish text or lists on numeric topics;
    the molecule run saw one on CurrentLimitIsAdjustable turn the setting 'not adjustable'."""
    c, _ = make()
    c.handle("vebus/276/Mode", v(3))
    c.handle("vebus/276/Ac/ActiveIn/CurrentLimitIsAdjustable", v(1))
    c.handle("vebus/276/Ac/ActiveIn/CurrentLimitIsAdjustable", v("23.41"))
    c.handle("vebus/276/Ac/ActiveIn/CurrentLimitIsAdjustable", v([1, 2, 3]))
    assert c.summary(60)["controls"]["ac_input_current_limit"]["adjustable"] is True
    c.handle("vebus/276/Ac/ActiveIn/CurrentLimitIsAdjustable", v(None))  # invalid on Venus: unknown, not "no"
    assert c.summary(60)["controls"]["ac_input_current_limit"]["adjustable"] is None


# ---- values that go unknown and are read back (issue 16) ---------------------------------------
LIMIT = "vebus/276/Ac/ActiveIn/CurrentLimit"


def connected_cache() -> tuple[GxCache, FakeClock]:
    c, clock = make()
    c.set_connected(True)
    c.handle("vebus/276/Mode", v(3))
    c.handle(LIMIT, v(16.0))
    return c, clock


def test_a_cleared_control_is_unknown_reading_not_a_frozen_number():
    c, _ = connected_cache()
    assert c.controls()["ac_input_current_limit"] | {"updated_ms": 0} == {
        "value": 16.0, "updated_ms": 0, "adjustable": None, "state": "live", "text": None}
    assert LIMIT not in c.unknown()
    c.handle(LIMIT, b"")  # Venus: "device gone"; a GX sends the value again only when it changes
    ctl = c.controls()["ac_input_current_limit"]
    assert (ctl["value"], ctl["updated_ms"], ctl["state"], ctl["text"]) == (None, None, "reading", "unknown (reading…)")
    assert LIMIT in c.unknown() and LIMIT in c.summary(60)["reading"]
    c.handle(LIMIT, v(None))
    assert c.last_known(LIMIT) == 16.0  # what a write made now changes "from"
    c.handle(LIMIT, v(16.0))
    assert LIMIT not in c.unknown() and c.controls()["ac_input_current_limit"]["state"] == "live"


def test_an_invalid_value_is_unknown_too_and_offline_says_so():
    c, _ = connected_cache()
    c.handle(LIMIT, v(None))
    assert LIMIT in c.unknown()
    c.set_connected(False)
    ctl = c.controls()["ac_input_current_limit"]
    assert (ctl["state"], ctl["text"]) == ("unknown", "unknown (GX not connected)")
    assert c.summary(60)["reading"] == []


def test_api_values_are_watched_other_paths_are_not():
    c, _ = connected_cache()
    for key in ("system/0/Dc/Battery/Soc", "vebus/276/Ac/Out/L2/P", "gps/0/Position/Latitude",
                "battery/512/Alarms/LowVoltage", "vebus/276/Alarms/L1/Overload", "vebus/276/ModeIsAdjustable"):
        c.handle(key, v(1))
        c.handle(key, b"")
        assert key in c.unknown(), key
    for key in ("vebus/276/ProductName", "system/0/Serial", "vebus/276/Ac/Out/L1/F"):
        c.handle(key, v(1))
        c.handle(key, b"")
        assert key not in c.unknown(), key


def test_controls_that_never_arrived_are_unknown_once_the_full_republish_had_its_time():
    c, clock = make()
    c.set_connected(True)
    c.handle("vebus/276/Mode", v(3))
    assert c.unknown() == set()  # the full republish after connecting is still under way
    clock.now += 5
    assert f"vebus/276/{'Dc/0/MaxChargeCurrent'}" in c.unknown()
    assert "vebus/276/Mode" not in c.unknown()


def test_garbage_does_not_make_a_value_unknown():
    c, _ = connected_cache()
    for payload in (b"not json", b'{"value":"23"}', b'{"value":[1]}', b'{"max":1}'):
        c.handle(LIMIT, payload)
    assert c.get(LIMIT) == 16.0 and LIMIT not in c.unknown()
