"""The series budget per node: at most `limit` distinct series per node within a rolling window.

Each node has two generations of series hashes. A series seen in the current one passes; one seen
in the previous one moves to the current one and passes; a new one is admitted while the node
holds fewer than `limit` series in both, and refused after. Every window/2 the current generation
becomes the previous one and the oldest is forgotten, so a series not written for a whole window
no longer counts: a node that renamed its systems gets its budget back within a day, while a
node that keeps writing new series stays at its limit. Memory: about 60 bytes per series held,
at most `limit` per node.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class _Node:
    since: float
    current: set[int] = field(default_factory=set)
    previous: set[int] = field(default_factory=set)


class SeriesBudget:
    def __init__(self, limit: int, window_seconds: float) -> None:
        self.limit = limit
        self.half = window_seconds / 2
        self._nodes: dict[str, _Node] = {}
        self._lock = threading.Lock()

    def _node(self, node: str, now: float) -> _Node:
        state = self._nodes.get(node)
        if state is None:
            state = self._nodes[node] = _Node(since=now)
        elif now - state.since >= self.half:
            # One rotation per elapsed half window (two or more: everything is old).
            state.previous = state.current if now - state.since < 2 * self.half else set()
            state.current = set()
            state.since = now
        return state

    @staticmethod
    def _keep(state: _Node, key: int) -> bool:
        """True when `key` is one of the node's series; a series of the previous half window
        moves to the current one."""
        if key in state.current:
            return True
        if key in state.previous:
            state.previous.discard(key)
            state.current.add(key)
            return True
        return False

    def known(self, node: str, key: int, now: float) -> bool:
        """True when `key` is one of the node's series (and keeps it current)."""
        with self._lock:
            return self._keep(self._node(node, now), key)

    def admit(self, node: str, key: int, now: float) -> bool:
        """Take a new series into the node's budget; False when the budget is spent."""
        with self._lock:
            state = self._node(node, now)
            if self._keep(state, key):
                return True
            if len(state.current) + len(state.previous) >= self.limit:
                return False
            state.current.add(key)
            return True

    def held(self) -> dict[str, int]:
        with self._lock:
            return {node: len(s.current) + len(s.previous) for node, s in self._nodes.items()}
