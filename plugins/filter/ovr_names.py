"""Name filters used by preflight checks, and the one Ansible-side definition of a node id.

A node id (the inventory hostname), a deployment id, a GX name or system id and an operator name
are all one MQTT topic level and one Mosquitto user name: NODE_ID_PATTERN. RESERVED_NODE_IDS are
the topic levels under ovr/ that address the whole fleet (ovr/registry/..., ovr/events/...,
ARCHITECTURE.md, MQTT protocol), so no node may take them as its id. The roles test ids through
ovr_invalid_ids and ovr_reserved_ids and never spell the pattern or the list out themselves.
"""

from __future__ import annotations

import re
from typing import Any

NODE_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
RESERVED_NODE_IDS = ("registry", "events")
_NODE_ID_RE = re.compile(NODE_ID_PATTERN)


def ovr_duplicates(values: list[Any]) -> dict[str, list[int]]:
    """Each value that occurs more than once in ``values``, with the indices where it occurs.

    For messages that name both entries: ``cloud_operators[0] and [2]`` rather than "twice".
    """
    seen: dict[str, list[int]] = {}
    for index, value in enumerate(values):
        seen.setdefault(str(value), []).append(index)
    return {value: indices for value, indices in seen.items() if len(indices) > 1}


def ovr_invalid_ids(values: list[Any]) -> list[str]:
    """Entries of ``values`` that are not ids (NODE_ID_PATTERN); a non-string entry never is one."""
    return [str(v) for v in values if not (isinstance(v, str) and _NODE_ID_RE.fullmatch(v))]


def ovr_reserved_ids(values: list[Any]) -> list[str]:
    """Entries of ``values`` that are fleet-wide topic levels (RESERVED_NODE_IDS), in their order."""
    return [str(v) for v in values if v in RESERVED_NODE_IDS]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"ovr_duplicates": ovr_duplicates, "ovr_invalid_ids": ovr_invalid_ids, "ovr_reserved_ids": ovr_reserved_ids}
