"""Profile validation and CLI/environment configuration."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from gxsim_testlib import PORTAL
from ovr_gxsim.config import parse_config
from ovr_gxsim.engine import Disappearance, Simulator
from ovr_gxsim.model import SIGNALS
from ovr_gxsim.profile import DEFAULT_PROFILE, ProfileError, load_profile, parse_profile

REQUIRED = {
    "system/0": [
        "Serial", "Dc/Battery/Soc", "Dc/Battery/Voltage", "Dc/Battery/Current",
        "Dc/Battery/Power", "Dc/Pv/Power", "Ac/Consumption/L1/Power",
        "Ac/Consumption/L2/Power", "Ac/Consumption/L3/Power", "SystemState/State", "Batteries",
    ],
    "battery/512": [
        "Soc", "Dc/0/Voltage", "Dc/0/Current", "Dc/0/Power", "Dc/0/Temperature",
        "Alarms/LowSoc", "Alarms/HighVoltage",
    ],
    "solarcharger/279": ["Dc/0/Voltage", "Dc/0/Current", "Yield/Power", "State", "Pv/V"],
    "vebus/276": [
        *(f"Ac/Out/L{n}/{q}" for n in (1, 2, 3) for q in "PVIF"),
        *(f"Ac/ActiveIn/L{n}/{q}" for n in (1, 2, 3) for q in "PVI"),
        "Ac/Out/P", "Ac/ActiveIn/CurrentLimit", "Ac/ActiveIn/CurrentLimitIsAdjustable", "Mode",
        "ModeIsAdjustable", "State", "Dc/0/Voltage", "Dc/0/MaxChargeCurrent",
        "Settings/InverterOutputVoltage", "CustomName", "Alarms/Overload",
    ],
    "gps/0": [
        "Position/Latitude", "Position/Longitude", "Speed", "Course", "Altitude",
        "NrOfSatellites", "Fix",
    ],
    "settings/0": ["Settings/SystemSetup/SystemName"],
}


def raw_default() -> dict:
    return json.loads(DEFAULT_PROFILE.read_text())


def test_default_profile_has_every_required_path() -> None:
    profile = load_profile(DEFAULT_PROFILE, PORTAL)
    for prefix, paths in REQUIRED.items():
        service, instance = prefix.split("/")
        dev = profile.device(service, int(instance))
        assert dev is not None, prefix
        have = {i.path for i in dev.items}
        assert not set(paths) - have, (prefix, set(paths) - have)
    vebus = profile.device("vebus", 276)
    assert vebus is not None
    assert next(i.value for i in vebus.items if i.path == "CustomName") == "Pro 6005-1"
    serial = next(i for i in profile.devices[0].items if i.path == "Serial")
    assert serial.value == PORTAL  # ${portal_id} substituted


def test_default_profile_sources_exist_and_settings_carry_min_max() -> None:
    profile = load_profile(DEFAULT_PROFILE, PORTAL)
    for dev in profile.devices:
        for item in dev.items:
            assert item.source is None or item.source in SIGNALS
            if dev.service == "settings":
                assert item.minimum is not None and item.maximum is not None, item.path


def test_writable_paths_are_exactly_the_four_vebus_controls() -> None:
    profile = load_profile(DEFAULT_PROFILE, PORTAL)
    writable = {
        f"{d.service}/{d.instance}/{i.path}": i.write
        for d in profile.devices for i in d.items if i.write is not None
    }
    assert set(writable) == {
        "vebus/276/Mode",
        "vebus/276/Ac/ActiveIn/CurrentLimit",
        "vebus/276/Dc/0/MaxChargeCurrent",
        "vebus/276/Settings/InverterOutputVoltage",
    }
    mode = writable["vebus/276/Mode"]
    assert mode is not None and mode.choices == (1, 2, 3, 4) and mode.requires == "ModeIsAdjustable"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("devices"), "devices"),
        (lambda d: d["devices"][0].update(service="Bad Name"), "service"),
        (lambda d: d["devices"][1].update(instance=-1), "instance"),
        (lambda d: d["devices"].append(copy.deepcopy(d["devices"][0])), "listed twice"),
        (lambda d: d["devices"][3]["items"]["Mode"]["write"].update(requires="Nope"), "requires"),
        (lambda d: d["devices"][3]["items"]["Mode"]["write"].update(min=5, max=1), "above max"),
        (lambda d: d["devices"][3]["items"]["Mode"].update(colour="red"), "unknown keys"),
        (lambda d: d["devices"][3]["items"].update({"Ac/+/P": 1}), "invalid D-Bus path"),
        (lambda d: d["devices"][3]["items"]["Mode"].pop("value"), "missing 'value'"),
    ],
)
def test_bad_profiles_are_refused_with_a_useful_message(
    mutate: Callable[[dict], object], message: str
) -> None:
    doc = raw_default()
    mutate(doc)
    with pytest.raises(ProfileError, match=message):
        parse_profile(doc, PORTAL)


def test_unknown_source_or_model_parameter_is_refused() -> None:
    doc = raw_default()
    doc["devices"][0]["items"]["Dc/Pv/Power"]["source"] = "pv.powr"
    with pytest.raises(ProfileError, match="unknown source"):
        Simulator(parse_profile(doc, PORTAL), PORTAL, lambda: 0.0)
    doc = raw_default()
    doc["model"]["pv_peek_w"] = 1
    with pytest.raises(ProfileError, match="pv_peek_w"):
        Simulator(parse_profile(doc, PORTAL), PORTAL, lambda: 0.0)


def test_unreadable_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_profile(bad)


# --- configuration ------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = parse_config([], {})
    assert (cfg.broker_host, cfg.broker_port, cfg.portal_id) == ("127.0.0.1", 1883, PORTAL)
    assert cfg.keepalive_timeout == 60 and cfg.heartbeat_interval == 3
    assert cfg.load_rate == 0 and cfg.chaos is False and cfg.disappear == ()
    assert cfg.username is None and cfg.password is None
    assert cfg.client_id == f"ovr-gxsim-{PORTAL}"
    assert cfg.profile == DEFAULT_PROFILE and cfg.profile.exists()


def test_environment_drives_everything() -> None:
    env = {
        "GXSIM_BROKER_HOST": "gx.lan",
        "GXSIM_BROKER_PORT": "1884",
        "GXSIM_USERNAME": "edge",
        "GXSIM_PASSWORD": "s3cret",
        "GXSIM_CLIENT_ID": "sim-1",
        "GXSIM_PORTAL_ID": "BE300D83FF04",
        "GXSIM_PROFILE": "/etc/ovr/p.json",
        "GXSIM_KEEPALIVE_TIMEOUT": "2.5",
        "GXSIM_HEARTBEAT_INTERVAL": "0.5",
        "GXSIM_SEED": "42",
        "GXSIM_LOAD_RATE": "500",
        "GXSIM_CHAOS": "true",
        "GXSIM_CHAOS_INTERVAL": "0.2",
        "GXSIM_DISAPPEAR": "solarcharger/279@30+10",
        "GXSIM_LOG_LEVEL": "debug",
    }
    cfg = parse_config([], env)
    assert cfg.broker_host == "gx.lan" and cfg.broker_port == 1884
    assert (cfg.username, cfg.password, cfg.client_id) == ("edge", "s3cret", "sim-1")
    assert cfg.portal_id == "be300d83ff04"
    assert cfg.profile == Path("/etc/ovr/p.json")
    assert (cfg.keepalive_timeout, cfg.heartbeat_interval, cfg.seed) == (2.5, 0.5, 42)
    assert (cfg.load_rate, cfg.chaos, cfg.chaos_interval) == (500, True, 0.2)
    assert cfg.disappear == (Disappearance("solarcharger", 279, 30.0, 10.0),)
    assert cfg.log_level == "DEBUG"


def test_flags_override_the_environment() -> None:
    env = {"GXSIM_BROKER_PORT": "1884", "GXSIM_CHAOS": "true", "GXSIM_SEED": "5"}
    cfg = parse_config(["--broker-port", "2000", "--chaos", "false", "--seed", "6"], env)
    assert (cfg.broker_port, cfg.chaos, cfg.seed) == (2000, False, 6)
    assert parse_config(["--chaos"], {}).chaos is True


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--portal-id", "xyz"], {}),
        ([], {"GXSIM_PORTAL_ID": "c0ffee00000g"}),
        ([], {"GXSIM_BROKER_PORT": "70000"}),
        ([], {"GXSIM_KEEPALIVE_TIMEOUT": "0"}),
        ([], {"GXSIM_LOAD_RATE": "-1"}),
        ([], {"GXSIM_CHAOS": "maybe"}),
        ([], {"GXSIM_DISAPPEAR": "solarcharger@10"}),
        ([], {"GXSIM_LOG_LEVEL": "loud"}),
    ],
)
def test_bad_configuration_exits_with_usage_error(
    argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_config(argv, env)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
