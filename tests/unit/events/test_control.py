"""Control validation: allowlist, ranges per system, the GX's adjustable flags, confirmation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ovr_events.control import SETTINGS, ControlError, ControlPolicy, confirms, validate


def controls(**adjustable: bool) -> dict:
    return {name: {"value": 1.0, "adjustable": adjustable.get(name, True)} for name in SETTINGS}


def err(fn, *args) -> ControlError:
    with pytest.raises(ControlError) as exc:
        fn(*args)
    return exc.value


def test_defaults_accept_valid_writes():
    lim = ControlPolicy().limits("any")
    assert validate("inverter_mode", "charger_only", lim, controls())[1] == 1.0
    assert validate("inverter_mode", 4, lim, controls())[1] == 4.0
    assert validate("ac_input_current_limit", 12.5, lim, controls())[1] == 12.5
    assert validate("battery_charge_current", 40, lim, controls())[1] == 40.0
    assert validate("inverter_output_voltage", 230, lim, controls())[1] == 230.0


@pytest.mark.parametrize(("setting", "value", "status", "text"), [
    ("nope", 1, 400, "setting must be one of"),
    (None, 1, 400, "setting must be one of"),
    ("inverter_mode", "turbo", 400, "must be one of"),
    ("inverter_mode", 7, 400, "inverter_mode must be one of"),
    ("inverter_mode", True, 400, "must be a number"),
    ("battery_charge_current", "40", 400, "must be a number"),
    ("battery_charge_current", 40.5, 400, "whole number"),
    ("battery_charge_current", 1000, 400, "between 0 and 100"),
    ("ac_input_current_limit", -1, 400, "between"),
    ("ac_input_current_limit", float("nan"), 400, "finite"),
    ("inverter_output_voltage", 120, 400, "between 210 and 245"),
])
def test_bad_values_are_400(setting, value, status, text):
    e = err(validate, setting, value, ControlPolicy().limits("x"), controls())
    assert e.status == status and text in e.message


def test_not_adjustable_is_409():
    e = err(validate, "inverter_mode", "on", ControlPolicy().limits("x"), controls(inverter_mode=False))
    assert e.status == 409 and "not adjustable" in e.message
    e = err(validate, "ac_input_current_limit", 10, ControlPolicy().limits("x"), controls(ac_input_current_limit=False))
    assert e.status == 409


def test_policy_per_system_ranges_and_allowlist(tmp_path: Path):
    path = tmp_path / "control.json"
    path.write_text(json.dumps({
        "defaults": {"ac_input_current_limit": {"min": 0, "max": 16}},
        "systems": {"small-1": {"allowed": ["inverter_mode"], "inverter_mode": {"min": 1, "max": 4}}},
    }))
    policy = ControlPolicy.load(path)
    assert validate("ac_input_current_limit", 16, policy.limits("big"), controls())[1] == 16
    assert err(validate, "ac_input_current_limit", 20, policy.limits("big"), controls()).status == 400
    e = err(validate, "ac_input_current_limit", 10, policy.limits("small-1"), controls())
    assert e.status == 403 and "not allowed" in e.message
    assert ControlPolicy.load(tmp_path / "missing.json").limits("x").allowed == tuple(SETTINGS)


@pytest.mark.parametrize("doc", [
    [], {"allowed": ["warp"]}, {"defaults": {"warp": {"min": 0, "max": 1}}},
    {"defaults": {"inverter_mode": {"min": 4, "max": 1}}}, {"systems": {"a": {"allowed": "inverter_mode"}}},
])
def test_bad_policy_files_are_refused(tmp_path: Path, doc):
    path = tmp_path / "control.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError):
        ControlPolicy.load(path)


def test_confirmation_tolerance():
    assert confirms(SETTINGS["inverter_output_voltage"], 230, 230.4)
    assert not confirms(SETTINGS["inverter_output_voltage"], 230, 231)
    assert confirms(SETTINGS["inverter_mode"], 3, 3)
    assert not confirms(SETTINGS["inverter_mode"], 3, 2)
    assert not confirms(SETTINGS["ac_input_current_limit"], 10, None)
    assert not confirms(SETTINGS["ac_input_current_limit"], 10, "10")
