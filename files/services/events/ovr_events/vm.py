"""VictoriaMetrics adapters: PromQL reads from the edge VM, Influx line writes to the local vmagent."""

from __future__ import annotations

import math
from collections.abc import Mapping

from ovr_common import vm as common_vm
from ovr_common.vm import VMError, finite_points

__all__ = ["VMClient", "VMError", "line"]


def _escape_tag(value: str) -> str:
    """Influx line protocol tag value, escaped exactly once (the earlier product escaped twice)."""
    value = value.replace("\n", " ")
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, int | float], ts_ms: int) -> str:
    """`ovr_event,event_id=..,system_id=.. active=1i <ns>`; empty tag values become '-'."""
    tag_text = ",".join(f"{k}={_escape_tag(str(v) or '-')}" for k, v in sorted(tags.items()))
    field_text = ",".join(f"{k}={v}i" if isinstance(v, int) and not isinstance(v, bool) else f"{k}={float(v)!r}"
                          for k, v in fields.items())
    return f"{measurement},{tag_text} {field_text} {int(ts_ms) * 1_000_000}"


class VMClient:
    """Reads from the edge VictoriaMetrics, writes to the local vmagent (Influx line protocol)."""

    def __init__(self, vm_url: str, vmagent_url: str, timeout: float = 10.0) -> None:
        self.vm = common_vm.VMClient(vm_url, timeout)
        self.vmagent = common_vm.VMClient(vmagent_url, timeout, session=self.vm.session)

    def write_lines(self, lines: list[str]) -> None:
        if lines:
            self.vmagent.post("/write", "\n".join(lines), "the write")

    def query(self, expr: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """Instant values, NaN/Inf dropped."""
        out = []
        for item in self.vm.query(expr, at):
            v = float(item["value"][1])
            if math.isfinite(v):
                out.append((item["metric"], v))
        return out

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """Series as (labels, points) with NaN/Inf samples dropped; uncached (just written data)."""
        return [(item["metric"], finite_points(item["values"]))
                for item in self.vm.query_range(expr, start, end, step, nocache=True)]
