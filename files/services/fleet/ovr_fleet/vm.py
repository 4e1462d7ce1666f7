"""The cloud VictoriaMetrics: node/deployment/system labels for the worker, bounded read-only
history queries for the API (PromQL built here from an allowlist, never passed through), and
the event end markers."""

from __future__ import annotations

import re
from typing import Any

from ovr_common.vm import VMClient, VMError, quote, selector

__all__ = ["HISTORY_METRICS", "VM", "VMError", "quote"]

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


class VM(VMClient):
    """The cloud VM, with the fleet's series-name suffix (e.g. :10s_avg of a downsampled VM)."""

    def __init__(self, url: str, timeout: float, suffix: str = "") -> None:
        super().__init__(url, timeout)
        self.suffix = suffix

    def label_sets(self, lookback: str = "1h") -> list[dict[str, str]]:
        """(node_id, deployment_id, system_id) of every series written in the lookback window."""
        q = f'count by (node_id, deployment_id, system_id) (last_over_time({{node_id!=""}}[{lookback}]))'
        return [r.get("metric", {}) for r in self.query(q)]

    def series_name(self, metric: str) -> str:
        name = HISTORY_METRICS.get(metric, metric)
        if not SERIES_RE.match(name):
            raise ValueError(f"metric {metric!r}: one of {', '.join(HISTORY_METRICS)} or a victron_/acuvim_/ovr_ series name")
        return name + self.suffix

    def history(self, metric: str, node_id: str, system_id: str | None, start: float, end: float, step: float) -> list[dict[str, Any]]:
        selector = f"node_id={quote(node_id)}" + (f",system_id={quote(system_id)}" if system_id else "")
        q = f"{self.series_name(metric)}{{{selector}}}"
        return [{"labels": r.get("metric", {}), "values": [[float(t), float(v)] for t, v in r.get("values", [])]}
                for r in self.query_range(q, start, end, step)]

    def write_end_markers(self, markers: list[dict[str, str]], at_ms: int) -> int:
        """ovr_event_active 0 for each participant of an ended event (Prometheus text import)."""
        if not markers:
            return 0
        lines = [f"ovr_event_active{selector(labels)} 0 {at_ms}" for labels in markers]
        self.post("/api/v1/import/prometheus", "\n".join(lines) + "\n", "the end markers")
        return len(lines)
