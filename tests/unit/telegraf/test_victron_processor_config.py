"""The role template and the allowlist/limit variables it hands to the Starlark processor."""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from telegraf_helpers import STAR, Run, mqtt_line, render_processor_conf, role_defaults

P = "c0619ab68e54"
SRC = {"system_id": "sys-a", "portal_id": P}


def line(path: str, payload: object = 1) -> str:
    return mqtt_line(f"N/{P}/{path}", json.dumps({"value": payload}), SRC)


def names(run: Run) -> set[str]:
    return {m.name for m in run.victron()}


def test_processor_defaults() -> None:
    d = role_defaults()
    assert {
        "edge_victron_path_allowlist", "edge_victron_service_path_allowlist",
        "edge_victron_processor_script_path", "edge_victron_payload_max_bytes",
        "edge_victron_counter_interval_seconds",
    } <= set(d)
    assert d["edge_victron_service_path_allowlist"] == {"vebus": ["Settings/"]}
    assert "Settings/" not in d["edge_victron_path_allowlist"]
    assert d["edge_victron_processor_script_path"] == "/etc/ovr/telegraf/victron_mqtt.star"


def test_template_renders_constants_from_variables() -> None:
    d = role_defaults()
    conf = tomllib.loads(render_processor_conf(script_path=d["edge_victron_processor_script_path"]))
    (proc,) = conf["processors"]["starlark"]
    assert proc["namepass"] == ["mqtt_consumer"]
    assert proc["script"] == "/etc/ovr/telegraf/victron_mqtt.star"
    assert proc["constants"] == {
        "path_allowlist": d["edge_victron_path_allowlist"],
        "service_path_allowlist": d["edge_victron_service_path_allowlist"],
        "max_payload_bytes": 4096,
        "report_interval_s": 10.0,
    }


def test_template_is_toml_safe_for_odd_inventory_strings() -> None:
    odd = ['Quote"d/', "Back\\slash/", "Ünïcode/", "Emoji🙂/", "Tab\there/"]
    services = {"my.service": ["A/"], 'q"s': ["B/"], "empty": []}
    conf = tomllib.loads(render_processor_conf(
        script_path='/opt/odd "dir"/victron.star',
        edge_victron_path_allowlist=odd,
        edge_victron_service_path_allowlist=services,
    ))
    (proc,) = conf["processors"]["starlark"]
    assert proc["script"] == '/opt/odd "dir"/victron.star'
    assert proc["constants"]["path_allowlist"] == odd
    assert proc["constants"]["service_path_allowlist"] == services


def test_telegraf_config_check_accepts_rendered_defaults(telegraf_bin: str, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d/victron.conf").write_text(render_processor_conf())
    (tmp_path / "telegraf.conf").write_text('[agent]\n[[outputs.file]]\n  files = ["stdout"]\n')
    proc = subprocess.run(
        [telegraf_bin, "config", "check", "--config", str(tmp_path / "telegraf.conf"),
         "--config-directory", str(tmp_path / "d")],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"edge_victron_path_allowlist": "Devices/"}, "constant path_allowlist must be a list"),
        ({"edge_victron_path_allowlist": ["Devices/", ""]}, "every prefix must be a non-empty string"),
        ({"edge_victron_path_allowlist": ["/Dc/0/"]}, "without a leading '/'"),
        ({"edge_victron_service_path_allowlist": {"vebus": "Settings/"}},
         "constant service_path_allowlist.vebus must be a list"),
    ],
    ids=["string-not-list", "empty-prefix", "leading-slash", "service-string"],
)
def test_bad_allowlist_refused_with_clear_message(
    run_processor: Callable[..., Run], overrides: dict, message: str
) -> None:
    run = run_processor([line("Soc")], expect_rc=1, **overrides)
    assert message in run.stderr, run.stderr[-2000:]
    assert "undefined: state" not in run.stderr


def test_inventory_override_of_allowlist(run_processor: Callable[..., Run]) -> None:
    run = run_processor(
        [
            line("solarcharger/279/Yield/Power", 880),
            line("system/0/Dc/Pv/Power", 870),
            line("solarcharger/279/Pv/V", 61.2),
            line("battery/512/Pv/V", 1),  # Pv/ is a solarcharger-only extra here
            line("settings/0/Settings/SystemSetup/AcInput1", 3),
            line("settings/0/Settings/CGwacs/Hub4Mode", 1),  # only SystemSetup/ allowed
            line("vebus/276/Settings/InverterOutputVoltage", 230),  # vebus extra removed
            line("vebus/276/Soc", 80),
        ],
        edge_victron_counter_interval_seconds=0,
        edge_victron_path_allowlist=[*role_defaults()["edge_victron_path_allowlist"], "Yield/", "Dc/Pv/"],
        edge_victron_service_path_allowlist={"settings": ["Settings/SystemSetup/"], "solarcharger": ["Pv/"]},
    )
    assert run.errors() == []
    assert names(run) == {
        "victron_solarcharger_yield_power", "victron_system_dc_pv_power", "victron_solarcharger_pv_v",
        "victron_settings_settings_systemsetup_acinput1", "victron_vebus_soc",
    }
    assert run.final_counters("sys-a")[("filtered_total", "not_allowlisted")] == 3


def test_empty_service_extras_and_global_list(run_processor: Callable[..., Run]) -> None:
    run = run_processor(
        [line("vebus/276/Settings/InverterOutputVoltage", 230), line("vebus/276/Soc", 80), line("gps/0/Speed", 3)],
        edge_victron_path_allowlist=[],
        edge_victron_service_path_allowlist={"gps": ["Speed"]},
    )
    assert run.errors() == []
    assert names(run) == {"victron_gps_speed"}


def test_payload_size_limit_is_exact(run_processor: Callable[..., Run]) -> None:
    def sized(n: int) -> str:
        payload = json.dumps({"value": 1, "pad": ""})
        payload = json.dumps({"value": 1, "pad": "p" * (n - len(payload))})
        assert len(payload) == n
        return mqtt_line(f"N/{P}/vebus/276/Soc", payload, SRC)

    run = run_processor([sized(64), sized(65)], edge_victron_payload_max_bytes=64,
                        edge_victron_counter_interval_seconds=0)
    assert len(run.victron()) == 1
    assert run.final_counters("sys-a")[("dropped_total", "too_large")] == 1


def test_counters_throttled_to_one_report_per_interval(run_processor: Callable[..., Run]) -> None:
    empty = mqtt_line(f"N/{P}/vebus/276/Soc", "", SRC)
    run = run_processor([empty, line("vebus/276/Soc", 80), empty, empty, line("vebus/276/Mode", 3)],
                        edge_victron_counter_interval_seconds=3600)
    assert len(run.victron()) == 2
    counters = run.counters()
    # One report (every reason once) at the first message, nothing more within the hour.
    assert len(counters) == len({(m.tags.get("reason"), tuple(m.fields)) for m in counters}) == 15
    final = run.final_counters("sys-a")
    assert final[("dropped_total", "empty")] == 1
    assert final[("accepted_total", None)] == 0


def test_script_path_in_repo_is_what_tests_load() -> None:
    assert STAR.is_file()
    assert f'script = "{STAR}"' in render_processor_conf()
