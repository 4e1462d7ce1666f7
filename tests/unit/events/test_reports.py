"""Report math on synthetic series with known energy, and the analyzer against a real
VictoriaMetrics holding series shaped like the Telegraf victron processor's output."""

from __future__ import annotations

import time

import pytest
from ovr_common.vm import quote as quote_label
from ovr_events.reports import (
    Analyzer,
    SystemWindow,
    add_series,
    build_report,
    imbalance_pct,
    integrate,
    load_distribution,
    nominal_voltage,
    render_html,
    report_hash,
    trim_idle,
)
from ovr_events.vm import VMClient, line


def test_integrate_bucket_means_clips_to_the_window():
    pts = [(t, 1000.0) for t in range(10, 3601, 10)]  # 1 kW for an hour, 10 s buckets ending at t
    wh, covered = integrate(pts, 10, 0, 3600)
    assert wh == pytest.approx(1000.0) and covered == pytest.approx(3600)
    wh, covered = integrate(pts, 10, 5, 1805)  # partial buckets at both edges
    assert wh == pytest.approx(500.0) and covered == pytest.approx(1800)


def test_gaps_are_not_interpolated():
    pts = [(10.0, 600.0), (20.0, 600.0), (60.0, 600.0)]
    wh, covered = integrate(pts, 10, 0, 60)
    assert covered == 30 and wh == pytest.approx(600 * 30 / 3600)


def test_add_series_needs_every_phase():
    assert add_series([[(1, 1.0), (2, 2.0)], [(2, 3.0), (3, 4.0)]]) == [(2, 5.0)]


def test_trim_idle_finds_the_loaded_part():
    pts = [(float(t), 0.0) for t in range(10, 310, 10)]
    pts += [(float(t), 900.0) for t in range(310, 910, 10)]
    pts += [(float(t), 5.0) for t in range(910, 1210, 10)]
    start, end = trim_idle(pts, 10)
    assert start == 300 and end == 900
    assert trim_idle([(float(t), 10.0) for t in range(10, 200, 10)], 10) is None
    assert trim_idle([(10.0, 900.0)], 10) is None


def test_small_helpers():
    assert nominal_voltage(229.4) == 230 and nominal_voltage(118) == 120 and nominal_voltage(3) is None
    assert imbalance_pct({"L1": 400, "L2": 300, "L3": 200}) == pytest.approx(100 * 200 / 300, abs=0.1)
    assert imbalance_pct({"L1": 1}) is None
    dist = load_distribution([(1, 100.0), (2, 50.0), (3, 10.0), (4, 100.0)], 100.0)
    assert dist["80-100%"] == 50.0 and dist["40-60%"] == 25.0 and dist["0-20%"] == 25.0


def test_influx_line_escapes_once():
    text = line("ovr_event", {"event_id": "a b,c", "location": ""}, {"active": 1}, 1000)
    assert text == "ovr_event,event_id=a\\ b\\,c,location=- active=1i 1000000000"
    assert quote_label('x"y') == '"x\\"y"'


def _prom(name: str, labels: dict[str, str], points: list[tuple[int, float]]) -> str:
    lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return "".join(f"{name}{{{lab}}} {v} {t}\n" for t, v in points)


@pytest.fixture(scope="module")
def loaded_vm(vm):
    """System rep-1: 3 phases L1/L2/L3 = 400/300/200 W (and a total series of 900 W under the same
    name, as the processor makes it) for 10 minutes, idle (0 W) 2 minutes before and after."""
    t0 = (int(time.time()) // 60) * 60 - 3600
    base = {"system_id": "rep-1", "service": "vebus", "instance": "276", "portal_id": "p"}
    text = ""
    per = {"L1": 400.0, "L2": 300.0, "L3": 200.0}
    for ph, w in per.items():
        pts = [(1000 * (t0 + s), 0.0 if s < 120 or s >= 720 else w) for s in range(0, 840)]
        text += _prom("victron_vebus_ac_out_p_value", {**base, "phase": ph}, pts)
        text += _prom("victron_vebus_ac_out_v_value", {**base, "phase": ph}, [(p[0], 230.0) for p in pts])
        text += _prom("victron_vebus_ac_out_i_value", {**base, "phase": ph}, [(p[0], p[1] / 230.0 / 0.9) for p in pts])
    text += _prom("victron_vebus_ac_out_p_value", base,
                  [(1000 * (t0 + s), 0.0 if s < 120 or s >= 720 else 900.0) for s in range(0, 840)])
    text += _prom("victron_vebus_ac_numberofphases_value", base, [(1000 * (t0 + s), 3.0) for s in range(0, 840, 10)])
    # A second system with only a total series (no per-phase values).
    text += _prom("victron_vebus_ac_out_p_value", {**base, "system_id": "tot-1"},
                  [(1000 * (t0 + s), 1200.0) for s in range(0, 840)])
    vm.import_prometheus(text)
    return vm, t0


def test_analyzer_energy_matches_known_energy(loaded_vm):
    vm, t0 = loaded_vm
    an = Analyzer(VMClient(vm.url, vm.url))
    r = an.analyze(SystemWindow("rep-1", t0, t0 + 840, [{"location": "Dock"}]))
    en = r["energy_methods"]
    # 900 W for 600 s = 150 Wh; the total series must not be added to the phases (300 Wh).
    assert en["total_power_wh"] == pytest.approx(150.0, rel=0.02)
    assert en["per_phase_wh"] == pytest.approx({"L1": 66.67, "L2": 50.0, "L3": 33.33}, rel=0.03)
    assert en["avg_power_factor"] == pytest.approx(0.9, abs=0.02)
    assert r["config"]["phases"] == 3 and r["config"]["phase_config"] == "3phase"
    assert r["config"]["voltage_nominal"] == 230 and r["config"]["per_phase_series"] is True
    assert r["trimmed"]["idle_trimmed"] is True
    assert r["trimmed"]["start"] == pytest.approx((t0 + 120) * 1000, abs=10_000)
    assert r["trimmed"]["end"] == pytest.approx((t0 + 720) * 1000, abs=10_000)
    assert r["power_stats"]["peak_power_w"] == pytest.approx(900, rel=0.01)
    assert r["power_stats"]["avg_power_w"] == pytest.approx(900, rel=0.03)
    assert r["phase_imbalance_pct"] == pytest.approx(66.7, abs=1)


def test_analyzer_uses_the_total_when_there_are_no_phases(loaded_vm):
    vm, t0 = loaded_vm
    r = Analyzer(VMClient(vm.url, vm.url)).analyze(SystemWindow("tot-1", t0 + 60, t0 + 660, []))
    assert r["config"]["per_phase_series"] is False
    assert r["energy_methods"]["total_power_wh"] == pytest.approx(200.0, rel=0.02)  # 1200 W x 600 s


def test_report_without_data_says_so_and_renders(loaded_vm):
    vm, t0 = loaded_vm
    an = Analyzer(VMClient(vm.url, vm.url))
    rep = build_report(report_id="r1", event={"id": "e", "name": "<Fest>", "temp": False}, node_id="n",
                       deployment_id="d", windows=[SystemWindow("rep-1", t0, t0 + 840, []),
                                                   SystemWindow("ghost", t0, t0 + 840, [])],
                       notes=[{"created_at": (t0 + 200) * 1000, "text": "hello", "system_id": None}], photos=[],
                       analyze=an.analyze, generated_at=1)
    assert "error" in rep["systems"]["ghost"]
    assert rep["totals"]["total_power_wh"] == pytest.approx(150, rel=0.02)
    html = render_html(rep)
    assert "&lt;Fest&gt;" in html and "hello" in html
    assert len(report_hash(rep)) == 64


def test_analyzer_window_not_aligned_to_the_step(loaded_vm):
    """VictoriaMetrics aligns query_range to the step; an event that starts and ends between
    buckets must still count its first and last seconds (the molecule run found the last
    bucket missing)."""
    vm, t0 = loaded_vm
    an = Analyzer(VMClient(vm.url, vm.url))
    r = an.analyze(SystemWindow("tot-1", t0 + 63.4, t0 + 138.9, []))  # 75.5 s at 1200 W
    assert r["energy_methods"]["total_power_wh"] == pytest.approx(1200 * 75.5 / 3600, rel=0.01)
    assert r["coverage"] == pytest.approx(1.0, abs=0.01)


def test_analyzer_holds_values_a_gx_did_not_republish(vm):
    """A GX publishes only changes: a phase whose load stays constant has samples minutes apart.
    Its buckets without samples hold the last value (the molecule run found them dropped)."""
    t0 = (int(time.time()) // 60) * 60 - 7200
    base = {"system_id": "sparse-1", "service": "vebus", "instance": "276", "portal_id": "p"}
    text = _prom("victron_vebus_ac_out_p_value", {**base, "phase": "L1"}, [(1000 * (t0 + s), 500.0 + s % 2) for s in range(300)])
    text += _prom("victron_vebus_ac_out_p_value", {**base, "phase": "L2"}, [(1000 * (t0 + 0), 250.0), (1000 * (t0 + 200), 250.0)])
    vm.import_prometheus(text)
    r = Analyzer(VMClient(vm.url, vm.url)).analyze(SystemWindow("sparse-1", t0 + 5, t0 + 295, []))
    assert r["energy_methods"]["per_phase_wh"]["L2"] == pytest.approx(250 * 290 / 3600, rel=0.01)
    assert r["energy_methods"]["total_power_wh"] == pytest.approx(750.5 * 290 / 3600, rel=0.01)
    assert r["coverage"] == pytest.approx(1.0, abs=0.01)
