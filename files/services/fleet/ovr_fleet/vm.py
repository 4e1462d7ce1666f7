"""The cloud VictoriaMetrics: node/deployment/system labels for the worker, bounded read-only
history queries for the API (PromQL built here from an allowlist, never passed through), and
the event end markers."""

from __future__ import annotations

import re
from typing import Any

import requests

# history?metric=<key>: a few names for the map, or a series name of the fleet's own families.
HISTORY_METRICS = {
    "soc": "victron_system_dc_battery_soc_value",
    "battery_voltage": "victron_system_dc_battery_voltage_value",
    "battery_power": "victron_system_dc_battery_power_value",
    "power_in": "victron_system_ac_activein_power_value",
    "power_out": "victron_system_ac_consumption_power_value",
    "pv_power": "victron_system_dc_pv_power_value",
}
SERIES_RE = re.compile(r"^(victron|acuvim|ovr)_[a-z0-9_]{1,120}$")


class VMError(RuntimeError):
    """VictoriaMetrics is unreachable or answered with an error."""


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class VM:
    def __init__(self, url: str, timeout: float, suffix: str = "") -> None:
        self.url, self.timeout, self.suffix = url.rstrip("/"), timeout, suffix
        self.session = requests.Session()

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            r = self.session.get(self.url + path, params=params, timeout=self.timeout)
        except requests.RequestException as exc:
            raise VMError(f"VictoriaMetrics at {self.url} is unreachable: {type(exc).__name__}") from None
        if r.status_code != 200:
            raise VMError(f"VictoriaMetrics answered {r.status_code}: {r.text[:200]}")
        try:
            return r.json()["data"]
        except (ValueError, KeyError):
            raise VMError("VictoriaMetrics answered something that is not its JSON API") from None

    def label_sets(self, lookback: str = "1h") -> list[dict[str, str]]:
        """(node_id, deployment_id, system_id) of every series written in the lookback window."""
        q = f'count by (node_id, deployment_id, system_id) (last_over_time({{node_id!=""}}[{lookback}]))'
        data = self._get("/api/v1/query", {"query": q})
        return [r.get("metric", {}) for r in data.get("result", [])]

    def series_name(self, metric: str) -> str:
        name = HISTORY_METRICS.get(metric, metric)
        if not SERIES_RE.match(name):
            raise ValueError(f"metric {metric!r}: one of {', '.join(HISTORY_METRICS)} or a victron_/acuvim_/ovr_ series name")
        return name + self.suffix

    def history(self, metric: str, node_id: str, system_id: str | None, start: float, end: float, step: float) -> list[dict[str, Any]]:
        selector = f"node_id={quote(node_id)}" + (f",system_id={quote(system_id)}" if system_id else "")
        q = f"{self.series_name(metric)}{{{selector}}}"
        data = self._get("/api/v1/query_range", {"query": q, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}s"})
        return [{"labels": r.get("metric", {}), "values": [[float(t), float(v)] for t, v in r.get("values", [])]}
                for r in data.get("result", [])]

    def write_end_markers(self, markers: list[dict[str, str]], at_ms: int) -> int:
        """ovr_event_active 0 for each participant of an ended event (Prometheus text import)."""
        if not markers:
            return 0
        lines = []
        for labels in markers:
            body = ",".join(f"{k}={quote(v)}" for k, v in sorted(labels.items()) if v)
            lines.append(f"ovr_event_active{{{body}}} 0 {at_ms}")
        try:
            r = self.session.post(self.url + "/api/v1/import/prometheus", data="\n".join(lines) + "\n", timeout=self.timeout)
        except requests.RequestException as exc:
            raise VMError(f"VictoriaMetrics at {self.url} is unreachable: {type(exc).__name__}") from None
        if r.status_code not in (200, 204):
            raise VMError(f"VictoriaMetrics refused the end markers: {r.status_code} {r.text[:200]}")
        return len(lines)
