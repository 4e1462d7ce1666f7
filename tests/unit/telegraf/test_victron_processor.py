"""The Victron Starlark processor run by the real Telegraf over recorded mqtt_consumer output.

One Telegraf run (module fixture) processes the whole recording below; every test asserts one
rule on its output. Bad payloads sit between good values so that each good one proves the stream
survives the bad one before it."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field

import pytest
from telegraf_helpers import Run, make_runner, mqtt_line

P = "c0619ab68e54"  # portal id, also set as input tag portal_id on source A
Q = "be300d83ff04"  # portal id of source B, whose input does NOT set portal_id
SRC_A = {"system_id": "sys-a", "gx_host": "10.0.0.2", "portal_id": P}
SRC_B = {"system_id": "sys-b", "gx_host": "10.0.0.3"}
# Input tag portal_id differs from the topic's: the input (inventory) wins.
SRC_C = {"system_id": "sys-c", "gx_host": "10.0.0.4", "portal_id": "from-inventory"}


@dataclass
class Good:
    topic: str
    payload: str
    name: str
    value: float
    tags: dict[str, str]  # tags the processor adds; input tags are added in expected_tags()
    src: dict[str, str] = field(default_factory=lambda: SRC_A)

    def expected_tags(self) -> dict[str, str]:
        portal = self.topic.split("/")[1]
        return {"portal_id": portal, **self.src, "node_id": "edge-test", **self.tags}  # src may override


def v(x: object) -> str:
    return json.dumps({"value": x})


def vb(service: str, inst: str, **extra: str) -> dict[str, str]:
    return {"service": service, "instance": inst, **extra}


# Examples from the reference (section 4.3) plus the rules around them.
GOOD = [
    Good(f"N/{P}/system/0/Dc/Battery/Soc", v(87.5), "victron_system_dc_battery_soc", 87.5, vb("system", "0")),
    Good(f"N/{P}/vebus/276/Ac/Out/L1/P", v(1200), "victron_vebus_ac_out_p", 1200.0, vb("vebus", "276", phase="L1")),
    Good(f"N/{P}/vebus/276/Ac/Out/L2/P", v(-35.5), "victron_vebus_ac_out_p", -35.5, vb("vebus", "276", phase="L2")),
    Good(f"N/{P}/vebus/276/Ac/Out/L3/P", v(0), "victron_vebus_ac_out_p", 0.0, vb("vebus", "276", phase="L3")),
    Good(f"N/{P}/vebus/276/Ac/Out/P", v(1164.5), "victron_vebus_ac_out_p", 1164.5, vb("vebus", "276")),
    Good(f"N/{P}/battery/512/Soc", v(64), "victron_battery_soc", 64.0, vb("battery", "512")),
    Good(f"N/{P}/battery/512/Dc/0/Voltage", v(26.71), "victron_battery_dc_0_voltage", 26.71, vb("battery", "512")),
    Good(f"N/{P}/vebus/276/Dc/0/MaxChargeCurrent", v(70), "victron_vebus_dc_0_maxchargecurrent", 70.0, vb("vebus", "276")),
    Good(f"N/{P}/vebus/276/Mode", v(3), "victron_vebus_mode", 3.0, vb("vebus", "276")),
    Good(f"N/{P}/vebus/276/Ac/ActiveIn/CurrentLimit", v(16.0), "victron_vebus_ac_activein_currentlimit", 16.0, vb("vebus", "276")),
    Good(f"N/{P}/vebus/276/Settings/InverterOutputVoltage", json.dumps({"max": 245, "min": 210, "value": 230}),
         "victron_vebus_settings_inverteroutputvoltage", 230.0, vb("vebus", "276")),
    Good(f"N/{P}/gps/0/Position/Latitude", v(52.3676), "victron_gps_position_latitude", 52.3676, vb("gps", "0")),
    Good(f"N/{P}/vebus/276/Devices/0/Ac/Out/P", v(580), "victron_vebus_devices_0_ac_out_p", 580.0, vb("vebus", "276")),
    Good(f"N/{P}/vebus/276/Alarms/Overload", v(0), "victron_vebus_alarms_overload", 0.0, vb("vebus", "276")),
    Good(f"N/{P}/vebus/276/Alarms/L2/Overload", v(2), "victron_vebus_alarms_overload", 2.0, vb("vebus", "276", phase="L2")),
    Good(f"N/{P}/solarcharger/279/State", v(3), "victron_solarcharger_state", 3.0, vb("solarcharger", "279")),
    Good(f"N/{P}/vebus/276/Ac/ActiveIn/L1/V", v(229.8), "victron_vebus_ac_activein_v", 229.8, vb("vebus", "276", phase="L1")),
    Good(f"N/{P}/system/0/Ac/Consumption/L1/Power", v(410), "victron_system_ac_consumption_power", 410.0, vb("system", "0", phase="L1")),
    Good(f"N/{P}/system/0/Relay/0/State", v(1), "victron_system_relay_0_state", 1.0, vb("system", "0")),
    # booleans become 1/0 (documented choice)
    Good(f"N/{P}/vebus/276/ModeIsAdjustable", v(True), "victron_vebus_modeisadjustable", 1.0, vb("vebus", "276")),
    Good(f"N/{P}/vebus/276/VebusChargeState", v(False), "victron_vebus_vebuschargestate", 0.0, vb("vebus", "276")),
    # Service case kept in the tag, lowercased in the name; odd characters become "_".
    Good(f"N/{P}/Temperature/7/Temperature", v(21.25), "victron_temperature_temperature", 21.25, vb("Temperature", "7")),
    Good(f"N/{P}/battery/512/Dc/0/Temperature-Cell.1", v(19.5), "victron_battery_dc_0_temperature_cell_1", 19.5, vb("battery", "512")),
    # Source B: portal_id comes from the topic; system_id from its own input.
    Good(f"N/{Q}/system/0/Dc/Battery/Soc", v(55), "victron_system_dc_battery_soc", 55.0, vb("system", "0"), SRC_B),
    Good(f"N/{Q}/vebus/275/Ac/Out/L1/P", v(99.5), "victron_vebus_ac_out_p", 99.5, vb("vebus", "275", phase="L1"), SRC_B),
    Good(f"N/{Q}/battery/288/Soc", v(12), "victron_battery_soc", 12.0, vb("battery", "288"), SRC_C),
]

# (topic, payload, kind, reason): everything the processor must drop, all from source A.
HUGE = json.dumps({"value": "x" * 1_000_000})
BAD = [
    (f"N/{P}/vebus/276/Soc", "", "dropped", "empty"),
    (f"N/{P}/battery/512/Dc/0/Voltage", "", "dropped", "empty"),
    (f"N/{P}/vebus/276/Soc", v(None), "dropped", "null"),
    (f"N/{P}/vebus/276/Soc", "null", "dropped", "null"),
    (f"N/{P}/vebus/276/Mode", v("On"), "dropped", "string"),
    (f"N/{P}/vebus/276/Soc", v("12.5"), "dropped", "string"),  # numeric strings are not coerced
    (f"N/{P}/battery/512/State", v([{"id": "battery.ttyO0", "soc": 55}]), "dropped", "list"),
    (f"N/{P}/battery/512/State", v({"a": 1}), "dropped", "object"),
    (f"N/{P}/vebus/276/Settings/AssistCurrentBoostFactor", json.dumps({"min": 0, "max": 2}), "dropped", "no_value"),
    (f"N/{P}/vebus/276/Soc", "{}", "dropped", "no_value"),
    (f"N/{P}/vebus/276/Soc", "not json", "dropped", "not_json"),
    (f"N/{P}/vebus/276/Soc", '{"value": 1', "dropped", "not_json"),
    (f"N/{P}/vebus/276/Soc", '{"value": NaN}', "dropped", "not_json"),
    (f"N/{P}/vebus/276/Soc", "<html><body>502</body></html>", "dropped", "not_json"),
    (f"N/{P}/vebus/276/Soc", "42", "dropped", "not_object"),
    (f"N/{P}/vebus/276/Soc", "[1, 2]", "dropped", "not_object"),
    (f"N/{P}/vebus/276/Soc", HUGE, "dropped", "too_large"),
    (f"N/{P}/vebus/276/Soc", json.dumps({"value": 1, "pad": "y" * 5000}), "dropped", "too_large"),
    (f"N/{P}/vebus/276/Soc", '{"value": 123456789012345678901234567890}', "dropped", "out_of_range"),
    # filtered by design
    (f"N/{P}/settings/0/Settings/SystemSetup/AcInput1", v(3), "filtered", "not_allowlisted"),
    (f"N/{P}/settings/0/Settings/CGwacs/BatteryLife/State", v(2), "filtered", "not_allowlisted"),
    (f"N/{P}/solarcharger/279/Yield/Power", v(880), "filtered", "not_allowlisted"),
    (f"N/{P}/system/0/Batteries", v([{"soc": 55}]), "filtered", "not_allowlisted"),
    (f"N/{P}/system/0/Serial", v(P), "filtered", "not_allowlisted"),
    (f"N/{P}/vebus/276/soc", v(1), "filtered", "not_allowlisted"),  # prefixes are case-sensitive
    (f"N/{P}/heartbeat", v(1767225600), "filtered", "not_service_topic"),
    (f"N/{P}/full_publish_completed", v(1767225600), "filtered", "not_service_topic"),
    (f"N/{P}/keepalive", "1", "filtered", "not_service_topic"),
    (f"N/{P}/vebus/276/", v(1), "filtered", "not_service_topic"),
]

# Not Venus notifications: must come out untouched.
PASSTHROUGH = [
    mqtt_line("sensors/boiler/temp", "61.5", {"system_id": "other"}),
    mqtt_line(None, "no topic tag", {"system_id": "other"}),
    "cpu,cpu=cpu0 usage_idle=97.5",
]


def recording() -> list[str]:
    """Good, bad, good, bad, ... then the remaining good ones and the pass-through lines."""
    lines, good = [], iter(GOOD)
    for topic, payload, _, _ in BAD:
        g = next(good, None)
        if g:
            lines.append(mqtt_line(g.topic, g.payload, g.src))
        lines.append(mqtt_line(topic, payload, SRC_A))
    lines += [mqtt_line(g.topic, g.payload, g.src) for g in good]
    return lines + PASSTHROUGH


@pytest.fixture(scope="module")
def run(telegraf_bin: str, tmp_path_factory: pytest.TempPathFactory) -> Run:
    runner = make_runner(telegraf_bin, tmp_path_factory.mktemp("main"))
    return runner(recording(), edge_victron_counter_interval_seconds=0)


def test_recording_is_complete() -> None:
    assert len(BAD) >= len(GOOD) - 10, "keep bad payloads interleaved with good values"
    assert {r for _, _, _, r in BAD} >= {
        "empty", "null", "string", "list", "object", "no_value", "not_json", "not_object",
        "too_large", "not_allowlisted", "not_service_topic",
    }


def test_no_error_lines(run: Run) -> None:
    assert run.errors() == [], "bad payloads must be counted, not logged"


@pytest.mark.parametrize("case", GOOD, ids=lambda g: g.topic.split("/", 2)[2])
def test_good_value_becomes_named_metric(run: Run, case: Good) -> None:
    matches = [m for m in run.victron() if m.name == case.name and m.tags == case.expected_tags()]
    assert len(matches) == 1, (
        f"{case.topic}: expected one {case.name}{case.expected_tags()}, got "
        f"{[(m.name, m.tags) for m in run.victron() if m.name == case.name]}"
    )
    assert matches[0].fields == {"value": pytest.approx(case.value)}
    assert isinstance(matches[0].fields["value"], float)


def test_only_good_values_come_out(run: Run) -> None:
    got = Counter((m.name, tuple(sorted(m.tags.items()))) for m in run.victron())
    want = Counter((g.name, tuple(sorted(g.expected_tags().items()))) for g in GOOD)
    assert got == want


def test_topic_tag_dropped_and_phase_only_from_l_segments(run: Run) -> None:
    for m in run.victron():
        assert "topic" not in m.tags
        assert m.tags.get("phase") in (None, "L1", "L2", "L3")
        assert m.name == m.name.lower()
        assert "__" not in m.name and not m.name.endswith("_")


def test_totals_and_phases_share_a_name(run: Run) -> None:
    out_p = sorted(m.tags.get("phase", "total") for m in run.victron()
                   if m.name == "victron_vebus_ac_out_p" and m.tags["system_id"] == "sys-a")
    assert out_p == ["L1", "L2", "L3", "total"]


def test_portal_id_from_topic_only_when_input_has_none(run: Run) -> None:
    b = [m for m in run.victron() if m.tags["system_id"] == "sys-b"]
    assert b and all(m.tags["portal_id"] == Q for m in b)
    c = [m for m in run.victron() if m.tags["system_id"] == "sys-c"]
    assert c and all(m.tags["portal_id"] == "from-inventory" for m in c)


def test_passthrough_unchanged(run: Run) -> None:
    rest = [m for m in run.metrics if not m.name.startswith("victron_")]
    assert sorted(((m.name, m.tags, m.fields) for m in rest), key=repr) == sorted([
        ("mqtt_consumer", {"node_id": "edge-test", "system_id": "other", "topic": "sensors/boiler/temp"}, {"value": "61.5"}),
        ("mqtt_consumer", {"node_id": "edge-test", "system_id": "other"}, {"value": "no topic tag"}),
        ("cpu", {"node_id": "edge-test", "cpu": "cpu0"}, {"usage_idle": 97.5}),
    ], key=repr)


def test_drops_counted_by_reason(run: Run) -> None:
    final = run.final_counters("sys-a")
    want = Counter((f"{kind}_total", reason) for _, _, kind, reason in BAD)
    for (fld, reason), n in final.items():
        if fld != "accepted_total":
            assert n == want.get((fld, reason), 0), f"{fld}{{reason={reason}}}"
    assert final[("accepted_total", None)] == sum(1 for g in GOOD if g.src is SRC_A)
    assert final[("dropped_total", "script_error")] == 0
    assert run.final_counters("sys-b")[("accepted_total", None)] == sum(1 for g in GOOD if g.src is SRC_B)


def test_all_reasons_start_at_zero_and_carry_input_tags(run: Run) -> None:
    first = {}
    for m in run.counters():
        if m.tags["system_id"] == "sys-a":
            first.setdefault(m.tags.get("reason"), m)
    assert set(first) == {
        None, "empty", "null", "string", "list", "object", "no_value", "not_object", "not_json",
        "too_large", "out_of_range", "bad_field", "script_error", "not_allowlisted", "not_service_topic",
    }
    for reason, m in first.items():
        want = {**SRC_A, "node_id": "edge-test"} | ({"reason": reason} if reason else {})
        assert m.tags == want
