"""The edge ↔ cloud MQTT protocol (docs: ARCHITECTURE.md table; README.md "Protocol").

Parsing is liberal (an edge of another version must not crash the worker), building is exact:
every payload the cloud publishes is JSON with `ts` (ms) and `schema` (int).
"""

from __future__ import annotations

import json
import math
import re
import time
from typing import Any
from urllib.parse import urlsplit

from ovr_common.protocol import (
    NODE_ID_RE,
    REGISTRY_TOPIC,
    RESERVED_IDS,
    ack_topic,
    align_topic,
    end_topic,
    loads_finite,
    node_topic,
    split_node_topic,
)

from . import SCHEMA

__all__ = ["REGISTRY_TOPIC", "RESERVED", "ack_topic", "align_topic", "end_topic"]

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
NODE_RE = NODE_ID_RE

# ovr/<node>/bridge: "1"/"0" from the edge's Mosquitto bridge (its notification topic; "0" is the
# bridge's last will at the cloud), so a node that drops off the WAN shows offline at once.
SUBSCRIPTIONS = [(node_topic("+", "status"), 1), (node_topic("+", "realtime"), 0), (node_topic("+", "events"), 1),
                 (node_topic("+", "reports"), 1), (node_topic("+", "bridge"), 1)]
# Second topic levels that are not nodes (ovr/registry/events matches ovr/+/events).
RESERVED = RESERVED_IDS


class BadMessage(ValueError):
    """A message the worker drops (logged with the reason)."""


# ovr/<node>/<kind> -> (node, kind) for the subscribed kinds, else None.
split_topic = split_node_topic


# Largest magnitude a number from a node may have: a sum of millions of them stays finite.
MAX_MAGNITUDE = 1e15


def decode(payload: bytes, limit: int) -> dict[str, Any]:
    """A node's JSON object; BadMessage if too large, not JSON, nested too deeply, with NaN or
    Infinity, or not an object."""
    if len(payload) > limit:
        raise BadMessage(f"payload of {len(payload)} bytes is over the limit of {limit}")
    try:
        data = loads_finite(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    except RecursionError:
        raise BadMessage("JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise BadMessage("not a JSON object")
    return data


def payload(**fields: Any) -> str:
    """A cloud → edge payload: the fields plus ts (ms) and schema."""
    body = dict(fields)
    body.setdefault("ts", int(time.time() * 1000))
    body["schema"] = SCHEMA
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def ts_ms(value: Any) -> int | None:
    """A timestamp in s, ms, µs or ns as integer ms; None when absent or implausible."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e19:
        return None  # also NaN, and anything beyond nanoseconds in 2286
    v = float(value)
    while v > 1e14:  # µs or ns
        v /= 1000
    if v < 1e11:  # seconds
        v *= 1000
    return int(v)


def number(value: Any) -> float | None:
    """A finite number of plausible size as float, else None (NaN, Infinity, 1e300, bools, text)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        v = float(value)
    except OverflowError:  # an int beyond float range
        return None
    return v if math.isfinite(v) and abs(v) <= MAX_MAGNITUDE else None


def text(value: Any, limit: int = 200) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] if value else None


def http_url(value: Any, limit: int = 300) -> str | None:
    """An absolute http(s) URL with a host, as is; None for anything else (javascript:, data:,
    relative, with spaces or control characters) — a link an operator clicks must not run code."""
    if not isinstance(value, str) or not 0 < len(value) <= limit or any(c <= " " or c in "\x7f\\" for c in value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return value


def event_ref(data: dict[str, Any]) -> dict[str, Any]:
    """The `event` object of a lifecycle or report message: {id, name, temp}."""
    ev = data.get("event")
    if not isinstance(ev, dict):
        ev = {"id": data.get("event_id"), "name": data.get("event_name"), "temp": data.get("temp")}
    event_id = ev.get("id")
    if not isinstance(event_id, str) or not ID_RE.match(event_id):
        raise BadMessage("event.id missing or not an id (letters, digits, '_.:-', up to 128)")
    name = text(ev.get("name"), 120) or event_id
    return {"id": event_id, "name": name, "temp": bool(ev.get("temp"))}
