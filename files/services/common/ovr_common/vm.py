"""VictoriaMetrics over its HTTP API: PromQL reads (query, query_range), series export and
text imports, with one label-quoting function for every PromQL selector we build.

Errors are VMError with a message safe to log and to show an operator (no response bodies
beyond 200 characters, never credentials).
"""

from __future__ import annotations

import json
import math
from typing import Any

import requests


class VMError(RuntimeError):
    """VictoriaMetrics (or vmagent) is unreachable or answered with an error."""


def quote(value: str) -> str:
    """A PromQL label value in double quotes (backslash, quote and newline escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(labels: dict[str, str]) -> str:
    """{a="x",b="y"} from the non-empty labels, sorted by name."""
    return "{" + ",".join(f"{k}={quote(v)}" for k, v in sorted(labels.items()) if v) + "}"


def finite_points(values: list[list[Any]]) -> list[tuple[float, float]]:
    """query_range values as (t, v) floats, NaN/Inf samples dropped."""
    return [(float(t), float(v)) for t, v in values if math.isfinite(float(v))]


class VMClient:
    def __init__(self, url: str, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise VMError(f"VictoriaMetrics at {self.url} is unreachable: {type(exc).__name__}") from None

    def get(self, path: str, params: dict[str, Any]) -> Any:
        """The `data` of a JSON API answer (status 200, status "success" when present)."""
        r = self._request("GET", path, params=params)
        if r.status_code != 200:
            raise VMError(f"VictoriaMetrics answered {r.status_code}: {r.text[:200]}")
        try:
            doc = r.json()
            if doc.get("status", "success") != "success":
                raise VMError(f"VictoriaMetrics query failed: {str(doc.get('error'))[:200]}")
            return doc["data"]
        except (ValueError, KeyError, AttributeError):
            raise VMError("VictoriaMetrics answered something that is not its JSON API") from None

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """/api/v1/query: the result list ({metric, value})."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.get("/api/v1/query", params).get("result", [])

    def query_range(self, expr: str, start: float, end: float, step: float, nocache: bool = False) -> list[dict[str, Any]]:
        """/api/v1/query_range: the result list ({metric, values}). nocache: no response cache
        (for data that may have been written just now)."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}s"}
        if nocache:
            params["nocache"] = "1"
        return self.get("/api/v1/query_range", params).get("result", [])

    def export(self, match: str, start: float | None = None, end: float | None = None) -> list[dict[str, Any]]:
        """/api/v1/export: raw samples of the series matching `match`, one dict per series."""
        params: dict[str, Any] = {"match[]": match}
        if start is not None:
            params["start"] = f"{start:.3f}"
        if end is not None:
            params["end"] = f"{end:.3f}"
        r = self._request("GET", "/api/v1/export", params=params)
        if r.status_code != 200:
            raise VMError(f"VictoriaMetrics answered {r.status_code}: {r.text[:200]}")
        try:
            return [json.loads(line) for line in r.text.splitlines() if line.strip()]
        except ValueError:
            raise VMError("VictoriaMetrics export is not JSON lines") from None

    def post(self, path: str, body: str | bytes, what: str = "the write") -> None:
        """POST a text body (an import, a line-protocol write); VMError unless 2xx."""
        r = self._request("POST", path, data=body.encode() if isinstance(body, str) else body)
        if not 200 <= r.status_code < 300:
            raise VMError(f"VictoriaMetrics at {self.url} refused {what}: {r.status_code} {r.text[:200]}")
