"""The limits file (JSON, rendered by roles/cloud from its cloud_write_* variables).

`python3 -m ovr_writegate --check FILE` validates one (the role's `validate:`); the service
refuses to start on a bad one, naming the key to fix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Limits:
    upstream: str                 # VictoriaMetrics, e.g. http://127.0.0.1:8428
    metric_names: tuple[str, ...]  # regexes; a series' name must match one in full
    max_labels: int               # labels per series, __name__ not counted
    max_label_name_len: int
    max_label_value_len: int
    max_body_bytes: int           # a request body as sent (compressed)
    max_decoded_bytes: int        # the same body decompressed
    series_per_node: int          # distinct series a node may have within window_seconds
    window_seconds: float

    @property
    def name_re(self) -> re.Pattern[str]:
        return _compile(self.metric_names)


_INTS = ("max_labels", "max_label_name_len", "max_label_value_len", "max_body_bytes", "max_decoded_bytes",
         "series_per_node")
_cache: dict[tuple[str, ...], re.Pattern[str]] = {}


def _compile(names: tuple[str, ...]) -> re.Pattern[str]:
    if names not in _cache:
        _cache[names] = re.compile("|".join(f"(?:{n})" for n in names))
    return _cache[names]


def parse(data: Any, where: str = "the limits") -> Limits:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a JSON object is expected")
    missing = sorted({"upstream", "metric_names", "window_seconds", *_INTS} - data.keys())
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    for key in _INTS:
        value = data[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: {key} must be a whole number of at least 1, not {value!r}")
    window = data["window_seconds"]
    if not isinstance(window, (int, float)) or isinstance(window, bool) or window < 60:
        raise ConfigError(f"{where}: window_seconds must be at least 60, not {window!r}")
    names = data["metric_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{where}: metric_names must be a non-empty list of regexes")
    for name in names:
        try:
            re.compile(name)
        except re.error as exc:
            raise ConfigError(f"{where}: metric_names entry {name!r} is not a regex: {exc}") from None
    upstream = data["upstream"]
    if not isinstance(upstream, str) or not re.fullmatch(r"http://[^/\s]+", upstream):
        raise ConfigError(f"{where}: upstream must be http://host:port, not {upstream!r}")
    if data["max_decoded_bytes"] < data["max_body_bytes"]:
        raise ConfigError(f"{where}: max_decoded_bytes must be at least max_body_bytes")
    return Limits(upstream=upstream, metric_names=tuple(names), window_seconds=float(window),
                  **{k: data[k] for k in _INTS})


def load(path: str | Path) -> Limits:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON: {exc}") from None
    return parse(data, str(path))
