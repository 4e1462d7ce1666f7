"""Test traffic: a deterministic cycle of malformed payloads, and a fixed-rate load generator."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from .flashmq import GxState, Message

HUGE_PAYLOAD_BYTES = 256 * 1024

# Every kind of bad payload a consumer of GX MQTT must survive, in cycle order.
CHAOS_KINDS: tuple[str, ...] = (
    "non_json",  # text that is not JSON at all
    "null_value",  # {"value": null}: invalid value on a GX
    "empty",  # zero bytes: a device disappeared
    "string_value",  # a number sent as a string
    "list_value",  # a list where a number is expected
    "object_without_value",  # JSON object with no "value" key
    "huge",  # a 256 KiB payload
)


def _huge() -> bytes:
    head, tail = b'{"value":"', b'"}'
    return head + b"A" * (HUGE_PAYLOAD_BYTES - len(head) - len(tail)) + tail


_PAYLOADS: dict[str, bytes] = {
    "non_json": b"not json {value: 12.5",
    "null_value": b'{"value":null}',
    "empty": b"",
    "string_value": b'{"value":"23.41"}',
    "list_value": b'{"value":[1,2,3]}',
    "object_without_value": b'{"max":100,"min":0}',
    "huge": _huge(),
}


def chaos_payload(kind: str) -> bytes:
    try:
        return _PAYLOADS[kind]
    except KeyError:
        raise ValueError(f"unknown chaos kind {kind!r}") from None


class ChaosCycle:
    """Yields one malformed message per call, cycling through CHAOS_KINDS in order."""

    def __init__(self, topics: Sequence[str], seed: int) -> None:
        if not topics:
            raise ValueError("chaos needs at least one topic")
        self.topics = list(topics)
        self.rng = random.Random(seed ^ 0xC4A05)
        self.count = 0

    def next(self) -> tuple[str, Message]:
        kind = CHAOS_KINDS[self.count % len(CHAOS_KINDS)]
        self.count += 1
        topic = self.topics[self.rng.randrange(len(self.topics))]
        return kind, Message(topic, chaos_payload(kind))


def _jitter(value: Any, up: bool, decimals: int | None) -> Any:
    """A value one unit of resolution away from `value` (1 for ints, 10^-decimals)."""
    if isinstance(value, int):
        return value + (1 if up else -1)
    places = 3 if decimals is None else decimals
    return round(value + (10.0**-places if up else -(10.0**-places)), places)


class LoadGenerator:
    """Publishes exactly `rate` value changes per second, round-robin over `keys`.

    The count is kept against the clock, so a slow loop catches up and a fast one waits;
    while the GX is not alive the slots pass unpublished (a GX sends nothing then). Each
    message differs from the last one sent on its topic by one unit of the value's resolution.
    """

    def __init__(self, state: GxState, keys: Sequence[tuple[str, int | None]], rate: float,
                 start: float) -> None:
        if rate <= 0:
            raise ValueError("load rate must be > 0")
        if not keys:
            raise ValueError("load generator needs numeric items to change")
        self.state = state
        self.keys = list(keys)
        self.rate = rate
        self.start = start
        self.done = 0
        self.next_key = 0
        self.up: dict[str, bool] = {}
        self.last: dict[str, Any] = {}

    def due(self, now: float) -> int:
        return max(0, math.floor((now - self.start) * self.rate + 1e-9) - self.done)

    def poll(self, now: float) -> list[Message]:
        n = self.due(now)
        self.done += n
        if not self.state.alive:
            return []
        out = []
        for _ in range(n):
            key, decimals = self.keys[self.next_key]
            self.next_key = (self.next_key + 1) % len(self.keys)
            if key not in self.state.items:  # device currently gone
                continue
            current = self.state.value(key)
            up = not self.up.get(key, False)
            value = _jitter(current, up, decimals)
            if value == self.last.get(key):
                up = not up
                value = _jitter(current, up, decimals)
            self.up[key] = up
            self.last[key] = value
            msg = self.state.force_publish(key, value)
            if msg is not None:
                out.append(msg)
        return out
