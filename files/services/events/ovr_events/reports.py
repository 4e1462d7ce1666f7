"""Event reports: energy and power figures per system from the edge VictoriaMetrics.

Per-phase and total series share a name (the victron processor moves L1/L2/L3 into a `phase`
label), so every query here selects one of them on purpose: per-phase series
(`phase=~"L[123]"`, summed per phase) when the system has them, else the total (`phase=""`).
The original took `results[0]` of a name and got an arbitrary one of the four.

Energy is integrated from `avg_over_time(...[step])` buckets: each point at t is the mean over
(t - step, t], so energy = sum(mean * overlap of the bucket with the window). A bucket without
samples takes the value in force (a GX publishes only changes), for up to HOLD; beyond that it is
a gap (counted in `coverage`), never interpolated across.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ovr_common.vm import quote

from .vm import VMClient

Series = list[tuple[float, float]]  # (t seconds, mean over (t - step, t])

NOMINALS = (100, 110, 115, 120, 127, 208, 220, 230, 240, 277, 347, 400, 415, 480)
LOAD_BINS = ((0, 20), (20, 40), (40, 60), (60, 80), (80, 100))


# ---- pure math (unit-tested on synthetic series) -----------------------------------------
def integrate(points: Series, step: float, start: float, end: float) -> tuple[float, float]:
    """(Wh, seconds covered) of bucket means over [start, end]."""
    wh = covered = 0.0
    for t, v in points:
        overlap = min(t, end) - max(t - step, start)
        if overlap > 0:
            wh += v * overlap / 3600.0
            covered += overlap
    return wh, covered


def add_series(series: Sequence[Series]) -> Series:
    """Point-wise sum over the timestamps present in every series (a phase missing = gap)."""
    if not series:
        return []
    maps = [dict(s) for s in series]
    common = sorted(set.intersection(*(set(m) for m in maps)))
    return [(t, sum(m[t] for m in maps)) for t in common]


def multiply(a: Series, b: Series) -> Series:
    mb = dict(b)
    return [(t, v * mb[t]) for t, v in a if t in mb]


def trim_idle(points: Series, step: float, run: int = 6, floor_w: float = 50.0, frac: float = 0.02) -> tuple[float, float] | None:
    """(start, end) of the loaded part: from the first run of `run` buckets above the threshold to
    the end of the last such run; threshold = max(2 % of peak, 50 W). None: never loaded."""
    if len(points) < run:
        return None
    peak = max(v for _, v in points)
    threshold = max(frac * peak, floor_w)
    above = [v > threshold for _, v in points]
    first = last = None
    for i in range(len(points) - run + 1):
        if all(above[i:i + run]):
            if first is None:
                first = i
            last = i + run - 1
    if first is None or last is None:
        return None
    return points[first][0] - step, points[last][0]


def nominal_voltage(avg_v: float | None) -> int | None:
    if avg_v is None or avg_v < 50:
        return None
    return min(NOMINALS, key=lambda n: abs(n - avg_v))


def load_distribution(points: Series, peak: float) -> dict[str, float]:
    """Share of time (percent) spent in each band of the peak power."""
    out = {f"{lo}-{hi}%": 0.0 for lo, hi in LOAD_BINS}
    if not points or peak <= 0:
        return out
    for _, v in points:
        pct = max(0.0, v) / peak * 100.0
        for lo, hi in LOAD_BINS:
            if lo <= pct < hi or (hi == 100 and pct >= 100):
                out[f"{lo}-{hi}%"] += 1
                break
    n = len(points)
    return {k: round(c / n * 100.0, 1) for k, c in out.items()}


def imbalance_pct(per_phase_avg: dict[str, float]) -> float | None:
    if len(per_phase_avg) < 2:
        return None
    values = list(per_phase_avg.values())
    avg = sum(values) / len(values)
    if avg <= 0:
        return None
    return round((max(values) - min(values)) / avg * 100.0, 1)


def phase_config(phases: int) -> tuple[str, str]:
    if phases >= 3:
        return "3phase", "pro6000"
    if phases == 2:
        return "split", "pro6000_or_pro600"
    return "single", "pro600"


def canonical_json(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def report_hash(doc: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(doc)).hexdigest()


# ---- data from VictoriaMetrics -----------------------------------------------------------
# A GX publishes a value only when it changes (suppress-republish keepalives; a full republish
# at least every 5 min), so a bucket without samples means "unchanged", not "unknown": it takes
# the last value seen within HOLD. Longer silences stay gaps (reported as coverage < 1).
HOLD = "6m"


def held(selector: str, step: float) -> str:
    """Mean of the samples in each bucket, else the value in force (sample-and-hold)."""
    return f"(avg_over_time({selector}[{step:g}s]) or last_over_time({selector}[{HOLD}]))"


@dataclass
class SystemWindow:
    system_id: str
    start: float  # s
    end: float
    locations: list[dict[str, Any]]


class Analyzer:
    def __init__(self, vm: VMClient, max_points: int = 4000) -> None:
        self.vm = vm
        self.max_points = max_points

    def step_for(self, duration: float) -> float:
        return float(max(10, math.ceil(duration / self.max_points / 10) * 10))

    def _range(self, expr: str, start: float, end: float, step: float) -> dict[str, Series]:
        # Evaluate from the first bucket that ends after `start` to the one that covers `end`.
        out: dict[str, Series] = {}
        for metric, points in self.vm.query_range(expr, start + step, end + step, step):
            out[metric.get("phase", "")] = [(t, v) for t, v in points if t - step < end]
        return out

    def _per_phase(self, name: str, sel: str, start: float, end: float, step: float) -> tuple[dict[str, Series], bool]:
        """{phase: series} of the per-phase series, else {"": total}; and whether they were per-phase."""
        phase_sel = name + "{" + sel + ',phase=~"L[123]"}'
        phased = self._range(f"sum by (phase) ({held(phase_sel, step)})", start, end, step)
        phased = {k: v for k, v in phased.items() if k and v}
        if phased:
            return phased, True
        total_sel = name + "{" + sel + ',phase=""}'
        total = self._range(f"sum({held(total_sel, step)})", start, end, step)
        return ({"": total[""]} if total.get("") else {}), False

    def _last(self, expr: str, at: float) -> float | None:
        result = self.vm.query(expr, at)
        return result[0][1] if result else None

    def analyze(self, w: SystemWindow) -> dict[str, Any]:
        sel = f"system_id={quote(w.system_id)}"
        duration = max(0.0, w.end - w.start)
        step = self.step_for(duration)
        span = f"{max(int(duration), 60)}s"
        base: dict[str, Any] = {"system_id": w.system_id, "locations": w.locations,
                                "window": {"start": int(w.start * 1000), "end": int(w.end * 1000)}}
        power, per_phase = self._per_phase("victron_vebus_ac_out_p_value", sel, w.start, w.end, step)
        source = "victron"
        if not power:
            power, per_phase = self._per_phase("acuvim_p", sel, w.start, w.end, step)
            source = "acuvim" if power else "none"
        if not power:
            return {**base, "config": {"system_id": w.system_id, "source": "none", "detection_confidence": "none"},
                    "error": "no AC output power series for this system in the window"}
        phases_reported = self._last(
            f"last_over_time(victron_vebus_ac_numberofphases_value{{{sel}}}[{span}])", w.end) if source == "victron" else None
        phases = int(phases_reported) if phases_reported else (len(power) if per_phase else 1)
        total = add_series(list(power.values()))
        trimmed = trim_idle(total, step)
        t0, t1 = (max(w.start, trimmed[0]), min(w.end, trimmed[1])) if trimmed else (w.start, w.end)
        volts, _ = self._per_phase("victron_vebus_ac_out_v_value", sel, w.start, w.end, step)
        amps, _ = self._per_phase("victron_vebus_ac_out_i_value", sel, w.start, w.end, step)
        apparent, _ = self._per_phase("victron_vebus_ac_out_s_value", sel, w.start, w.end, step)

        def within(s: Series) -> Series:
            return [(t, v) for t, v in s if t > t0 and t - step < t1]

        wh, covered = integrate(total, step, t0, t1)
        per_phase_wh = {ph: round(integrate(s, step, t0, t1)[0], 2) for ph, s in power.items() if ph}
        vah = None
        if apparent:
            vah = sum(integrate(s, step, t0, t1)[0] for s in apparent.values())
        iv_vah = None
        if volts and amps:
            iv = [multiply(volts[ph], amps[ph]) for ph in volts if ph in amps]
            if iv:
                iv_vah = sum(integrate(s, step, t0, t1)[0] for s in iv)
        pf_base = vah if vah else iv_vah
        pf = round(min(1.0, wh / pf_base), 3) if pf_base and pf_base > 0 and wh > 0 else None
        inside = within(total)
        peak = max((v for _, v in inside), default=0.0)
        avg = wh * 3600.0 / covered if covered > 0 else 0.0
        phase_stats = {}
        phase_avgs: dict[str, float] = {}
        for ph, s in power.items():
            if not ph:
                continue
            e, cov = integrate(s, step, t0, t1)
            phase_avgs[ph] = e * 3600.0 / cov if cov > 0 else 0.0
            phase_stats[ph] = {"peak_power_w": round(max((v for _, v in within(s)), default=0.0), 1),
                               "avg_power_w": round(phase_avgs[ph], 1)}
        avg_v = None
        if volts:
            vs = [v for s in volts.values() for _, v in within(s) if v > 0]
            avg_v = sum(vs) / len(vs) if vs else None
        pcfg, model = phase_config(phases)
        return {
            **base,
            "config": {
                "system_id": w.system_id, "source": source, "device_model": model if source == "victron" else "acuvim",
                "phase_config": pcfg, "phases": phases, "per_phase_series": per_phase,
                "voltage_nominal": nominal_voltage(avg_v), "voltage_avg": None if avg_v is None else round(avg_v, 1),
                "has_apparent_power": bool(apparent),
                "detection_confidence": "high" if phases_reported else "medium",
            },
            "trimmed": {"start": int(t0 * 1000), "end": int(t1 * 1000), "idle_trimmed": bool(trimmed),
                        "loaded": trimmed is not None},
            "step_s": step,
            "coverage": round(covered / (t1 - t0), 3) if t1 > t0 else 0.0,
            "energy_methods": {
                "total_power_wh": round(wh, 2),
                "per_phase_wh": per_phase_wh,
                "apparent_power_vah": None if vah is None else round(vah, 2),
                "integrated_iv_vah": None if iv_vah is None else round(iv_vah, 2),
                "avg_power_factor": pf,
            },
            "power_stats": {"peak_power_w": round(peak, 1), "avg_power_w": round(avg, 1), "per_phase": phase_stats},
            "phase_imbalance_pct": imbalance_pct(phase_avgs) if per_phase and len(phase_avgs) >= 2 else None,
            "load_distribution": load_distribution(inside, peak),
        }


def build_report(
    *,
    report_id: str,
    event: dict[str, Any],
    node_id: str,
    deployment_id: str,
    windows: list[SystemWindow],
    notes: list[dict[str, Any]],
    photos: list[dict[str, Any]],
    analyze: Callable[[SystemWindow], dict[str, Any]],
    generated_at: int,
) -> dict[str, Any]:
    systems = {w.system_id: analyze(w) for w in windows}
    start = min((w.start for w in windows), default=0.0)
    end = max((w.end for w in windows), default=0.0)
    total_wh = sum((s.get("energy_methods") or {}).get("total_power_wh") or 0.0 for s in systems.values())
    return {
        "schema": 1,
        "report_id": report_id,
        "event": event,
        "node_id": node_id,
        "deployment_id": deployment_id,
        "generated_at": generated_at,
        "window": {"start": int(start * 1000), "end": int(end * 1000), "duration_seconds": round(end - start, 1)},
        "systems": systems,
        "totals": {"total_power_wh": round(total_wh, 2)},
        "notes": notes,
        "photos": photos,
    }


def _fmt_ms(ms: int | None) -> str:
    if not ms:
        return "–"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_html(report: dict[str, Any]) -> str:
    e = html.escape
    ev = report["event"]
    rows = []
    for sid, s in sorted(report["systems"].items()):
        cfg = s.get("config", {})
        en = s.get("energy_methods") or {}
        ps = s.get("power_stats") or {}
        dist = s.get("load_distribution") or {}
        locs = ", ".join(e(loc.get("location") or "–") for loc in s.get("locations", []))
        bars = "".join(f"<tr><td>{e(k)}</td><td><div class=bar style='width:{v * 2:.0f}px'></div> {v:.1f}%</td></tr>"
                       for k, v in dist.items())
        rows.append(f"""<section class=card><h2>{e(sid)}</h2>
<p class=muted>{e(str(cfg.get('source')))} · {e(str(cfg.get('phase_config', '–')))} · nominal {e(str(cfg.get('voltage_nominal') or '–'))} V
· locations: {locs or '–'}</p>
{'<p class=error>' + e(s['error']) + '</p>' if s.get('error') else ''}
<table><tr><th>Energy (real)</th><td>{en.get('total_power_wh', '–')} Wh</td></tr>
<tr><th>Energy per phase</th><td>{e(json.dumps(en.get('per_phase_wh', {})))}</td></tr>
<tr><th>Apparent (S)</th><td>{en.get('apparent_power_vah') if en.get('apparent_power_vah') is not None else '–'} VAh</td></tr>
<tr><th>Apparent (V·I)</th><td>{en.get('integrated_iv_vah') if en.get('integrated_iv_vah') is not None else '–'} VAh</td></tr>
<tr><th>Power factor</th><td>{en.get('avg_power_factor') if en.get('avg_power_factor') is not None else '–'}</td></tr>
<tr><th>Peak / average</th><td>{ps.get('peak_power_w', '–')} W / {ps.get('avg_power_w', '–')} W</td></tr>
<tr><th>Phase imbalance</th><td>{s.get('phase_imbalance_pct') if s.get('phase_imbalance_pct') is not None else '–'} %</td></tr>
<tr><th>Loaded window</th><td>{_fmt_ms((s.get('trimmed') or {}).get('start'))} → {_fmt_ms((s.get('trimmed') or {}).get('end'))}</td></tr>
</table><h3>Load distribution (share of time, % of peak)</h3><table>{bars}</table></section>""")
    notes = "".join(f"<li><b>{_fmt_ms(n.get('created_at'))}</b> {e(n.get('system_id') or '')} {e(n.get('text', ''))}</li>"
                    for n in report.get("notes", []))
    photos = "".join(f"<figure><img src='/api/photos/{int(p['id'])}/file' alt='{e(p.get('caption') or '')}' loading=lazy>"
                     f"<figcaption>{e(p.get('caption') or '')}</figcaption></figure>" for p in report.get("photos", []))
    w = report["window"]
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content="width=device-width">
<title>Report: {e(ev['name'])}</title><style>
body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}
.card{{border:1px solid #ccc;border-radius:8px;padding:1rem;margin:1rem 0}}
th{{text-align:left;padding-right:1rem}} .muted{{color:#666}} .error{{color:#b00}} .bar{{display:inline-block;height:10px;background:#3a7}}
figure{{display:inline-block;margin:.5rem}} img{{max-width:240px}}</style></head><body>
<h1>{e(ev['name'])}</h1><p class=muted>event {e(ev['id'])}{' (temporary name)' if ev.get('temp') else ''} · node {e(report['node_id'])}</p>
<p>{_fmt_ms(w['start'])} → {_fmt_ms(w['end'])} ({w['duration_seconds']:.0f} s) · total {report['totals']['total_power_wh']} Wh
· generated {_fmt_ms(report['generated_at'])}</p>
{''.join(rows)}<h2>Notes</h2><ul>{notes or '<li>none</li>'}</ul><h2>Photos</h2>{photos or '<p>none</p>'}</body></html>
"""
