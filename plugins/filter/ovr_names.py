"""Name-list filters used by preflight checks."""

from __future__ import annotations

from typing import Any


def ovr_duplicates(values: list[Any]) -> dict[str, list[int]]:
    """Each value that occurs more than once in ``values``, with the indices where it occurs.

    For messages that name both entries: ``cloud_operators[0] and [2]`` rather than "twice".
    """
    seen: dict[str, list[int]] = {}
    for index, value in enumerate(values):
        seen.setdefault(str(value), []).append(index)
    return {value: indices for value, indices in seen.items() if len(indices) > 1}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"ovr_duplicates": ovr_duplicates}
