"""The edge <-> cloud MQTT protocol's shared vocabulary: ids, reserved ids, topics, JSON.

Topics (see README.md "Protocol" and ARCHITECTURE.md):
  ovr/<node>/status | realtime | events | reports | bridge   edge -> cloud
  ovr/<node>/cmd/ack | cmd/align                               cloud -> one edge
  ovr/registry/events, ovr/events/<event_id>/end               cloud -> every edge
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# A node id, system id or GX name: what roles/edge and gxdiscovery's naming accept.
NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
NODE_ID_RE = re.compile(NODE_ID_PATTERN)
# Second topic levels that are not nodes (ovr/registry/events matches ovr/+/events), so no node
# may be called that.
RESERVED_IDS = frozenset({"registry", "events"})

# What an edge publishes under ovr/<node>/ (the cloud subscribes to ovr/+/<kind>).
NODE_KINDS = ("status", "realtime", "events", "reports", "bridge")
REGISTRY_TOPIC = "ovr/registry/events"
END_TOPIC_FILTER = "ovr/events/+/end"


def valid_node_id(value: Any) -> bool:
    """A string that is a node id and not a reserved one."""
    return isinstance(value, str) and bool(NODE_ID_RE.match(value)) and value not in RESERVED_IDS


def node_topic(node_id: str, kind: str) -> str:
    """ovr/<node>/<kind> for a kind in NODE_KINDS."""
    if kind not in NODE_KINDS:
        raise ValueError(f"unknown node topic kind {kind!r}; one of {', '.join(NODE_KINDS)}")
    return f"ovr/{node_id}/{kind}"


def cmd_topic(node_id: str, command: str = "#") -> str:
    """ovr/<node>/cmd/<command> (the edge subscribes to cmd/#)."""
    return f"ovr/{node_id}/cmd/{command}"


def ack_topic(node_id: str) -> str:
    return cmd_topic(node_id, "ack")


def align_topic(node_id: str) -> str:
    return cmd_topic(node_id, "align")


def end_topic(event_id: str) -> str:
    return f"ovr/events/{event_id}/end"


def end_event_id(topic: str) -> str | None:
    """The event id of ovr/events/<event_id>/end, else None."""
    parts = topic.split("/")
    if len(parts) == 4 and parts[0] == "ovr" and parts[1] == "events" and parts[3] == "end" and parts[2]:
        return parts[2]
    return None


def split_node_topic(topic: str) -> tuple[str, str] | None:
    """ovr/<node>/<kind> -> (node, kind) for a kind in NODE_KINDS and a valid node, else None."""
    parts = topic.split("/")
    if len(parts) != 3 or parts[0] != "ovr" or parts[2] not in NODE_KINDS:
        return None
    if not valid_node_id(parts[1]):
        return None
    return parts[1], parts[2]


# ---- JSON from peers: numbers must be finite ----------------------------------------------
def finite_float(text: str) -> float:
    """json.loads parse_float: 1e999 (which Python reads as inf) is refused."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def refuse_constant(name: str) -> Any:
    """json.loads parse_constant: NaN, Infinity and -Infinity are not JSON numbers."""
    raise ValueError(f"{name} is not a number JSON allows")


def loads_finite(data: bytes | str) -> Any:
    """json.loads that refuses NaN, Infinity and out-of-range numbers (ValueError; RecursionError
    for absurd nesting is left to the caller)."""
    return json.loads(data, parse_float=finite_float, parse_constant=refuse_constant)
