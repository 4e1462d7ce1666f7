"""VictoriaMetrics adapters: PromQL reads from the edge VM, Influx line writes to the local vmagent."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import requests


class VMError(Exception):
    """VictoriaMetrics or vmagent did not answer as expected (the message is safe to log)."""


def quote_label(value: str) -> str:
    """A PromQL label value in double quotes."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


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
    def __init__(self, vm_url: str, vmagent_url: str, timeout: float = 10.0) -> None:
        self.vm_url = vm_url.rstrip("/")
        self.vmagent_url = vmagent_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def write_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            r = self.http.post(f"{self.vmagent_url}/write", data="\n".join(lines).encode(), timeout=self.timeout)
        except requests.RequestException as exc:
            raise VMError(f"vmagent {self.vmagent_url} unreachable ({exc.__class__.__name__})") from None
        if r.status_code >= 300:
            raise VMError(f"vmagent write refused: HTTP {r.status_code} {r.text[:200]}")

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            r = self.http.get(f"{self.vm_url}{path}", params=params, timeout=self.timeout)
            doc = r.json()
        except (requests.RequestException, ValueError) as exc:
            raise VMError(f"VictoriaMetrics {self.vm_url} query failed ({exc.__class__.__name__})") from None
        if r.status_code != 200 or doc.get("status") != "success":
            raise VMError(f"VictoriaMetrics query failed: {str(doc.get('error', r.status_code))[:300]}")
        return doc["data"]

    def query(self, expr: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        out = []
        for item in self._get("/api/v1/query", params).get("result", []):
            v = float(item["value"][1])
            if math.isfinite(v):
                out.append((item["metric"], v))
        return out

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        data = self._get("/api/v1/query_range", {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                  "step": f"{step:g}s", "nocache": "1"})
        out = []
        for item in data.get("result", []):
            points = [(float(t), float(v)) for t, v in item["values"] if math.isfinite(float(v))]
            out.append((item["metric"], points))
        return out
