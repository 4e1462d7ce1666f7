"""dbus-flashmq behaviour as a state machine with no I/O.

Mirrors victronenergy/dbus-flashmq (src/state.cpp, src/types.cpp, src/flashmq-dbus-plugin.cpp):

* At start: `N/<id>/system/0/Serial` retained (the only retained topic) and
  `N/<id>/keepalive` with the raw payload `1` (capability marker).
* `R/<id>/keepalive` (and the legacy `R/<id>/system/0/Serial`) makes the GX "alive" for
  `keepalive_timeout` s from the last keepalive. Without "suppress-republish" in the payload
  it first republishes every item, then `N/<id>/full_publish_completed` {"value": <ts>}
  (plus the `full-publish-completed-echo` token when asked). Such republishes are limited to
  `republish_tokens` per second; a rate-limited keepalive still extends "alive".
* While alive: `N/<id>/heartbeat` every `heartbeat_interval` s (the first one right away),
  and only changed values are published. After expiry nothing is published (no nulls).
* `R/<id>/<service>/<instance>/<path>` publishes that item, or every leaf under a sub-tree,
  whether alive or not. Wildcards are not supported.
* `W/...` {"value": x} sets a writable path if the profile allows it; the new value is
  published like any change (so only while alive). Bad writes are logged and ignored.
* A device that disappears publishes an empty payload on each of its topics.

The clock is injected: tests drive it by hand. Payload JSON is compact with sorted keys,
like nlohmann::json::dump().
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .profile import DeviceSpec, ItemSpec, WriteRule, item_key

log = logging.getLogger("ovr_gxsim.flashmq")

SERIAL_KEY = "system/0/Serial"
SUPPRESS = "suppress-republish"
ECHO_KEY = "full-publish-completed-echo"


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False


def encode(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, allow_nan=False).encode()


@dataclass
class Item:
    key: str
    spec: ItemSpec
    value: Any

    def payload(self) -> bytes:
        doc: dict[str, Any] = {"value": self.value}
        if self.spec.minimum is not None:
            doc["min"] = self.spec.minimum
        if self.spec.maximum is not None:
            doc["max"] = self.spec.maximum
        return encode(doc)


class WriteRejected(ValueError):
    pass


def check_write(rule: WriteRule, value: Any) -> int | float:
    """The value to store for an accepted write; raises WriteRejected otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WriteRejected(f"value must be a JSON number, got {json.dumps(value)[:40]}")
    if isinstance(value, float) and not math.isfinite(value):
        raise WriteRejected("value must be finite")
    if rule.integer:
        if isinstance(value, float) and not value.is_integer():
            raise WriteRejected(f"value must be an integer, got {value}")
        value = int(value)
    if rule.choices is not None and value not in rule.choices:
        raise WriteRejected(f"value {value} is not one of {list(rule.choices)}")
    if rule.minimum is not None and value < rule.minimum:
        raise WriteRejected(f"value {value} is below the minimum {rule.minimum}")
    if rule.maximum is not None and value > rule.maximum:
        raise WriteRejected(f"value {value} is above the maximum {rule.maximum}")
    return value


class GxState:
    def __init__(
        self,
        portal_id: str,
        devices: Iterable[DeviceSpec],
        clock: Callable[[], float],
        keepalive_timeout: float = 60.0,
        heartbeat_interval: float = 3.0,
        republish_tokens: int = 3,
    ) -> None:
        self.portal_id = portal_id
        self.clock = clock
        self.keepalive_timeout = keepalive_timeout
        self.heartbeat_interval = heartbeat_interval
        self.republish_tokens = republish_tokens
        self.items: dict[str, Item] = {}
        self.removed: dict[tuple[str, int], list[Item]] = {}
        for dev in devices:
            self._add_items(dev)
        if SERIAL_KEY not in self.items:
            spec = ItemSpec(path="Serial", value=portal_id)
            self.items[SERIAL_KEY] = Item(SERIAL_KEY, spec, portal_id)
        self.items[SERIAL_KEY].value = portal_id
        self._alive_until = -math.inf
        self._was_alive = False
        self._next_heartbeat: float | None = None
        self._tokens = republish_tokens
        self._tokens_reset_at = clock()
        self.full_publishes = 0

    # --- helpers ----------------------------------------------------------------------
    def _add_items(self, dev: DeviceSpec) -> list[Item]:
        added = []
        for spec in dev.items:
            key = item_key(dev.service, dev.instance, spec.path)
            item = Item(key, spec, spec.value)
            self.items[key] = item
            added.append(item)
        return added

    def topic(self, suffix: str) -> str:
        return f"N/{self.portal_id}/{suffix}"

    def _msg(self, item: Item) -> Message:
        return Message(self.topic(item.key), item.payload(), retain=item.key == SERIAL_KEY)

    def _stamp(self, name: str, extra: Mapping[str, Any] | None = None) -> Message:
        doc: dict[str, Any] = {"value": int(self.clock())}
        if extra:
            doc.update(extra)
        return Message(self.topic(name), encode(doc))

    @property
    def alive(self) -> bool:
        return self.clock() < self._alive_until

    def value(self, key: str) -> Any:
        return self.items[key].value

    # --- lifecycle --------------------------------------------------------------------
    def start(self) -> list[Message]:
        """What the plugin publishes when it (re)starts; a restart forgets keepalives."""
        self._alive_until = -math.inf
        self._was_alive = False
        self._next_heartbeat = None
        return [self._msg(self.items[SERIAL_KEY]), Message(self.topic("keepalive"), b"1")]

    def tick(self) -> list[Message]:
        """Timers: keepalive expiry and heartbeat."""
        now = self.clock()
        out: list[Message] = []
        alive = self.alive
        if self._was_alive and not alive:
            log.info("keepalive expired: notifications stop until the next keepalive")
        self._was_alive = alive
        if self._next_heartbeat is not None and now >= self._next_heartbeat:
            if alive:
                out.append(self._stamp("heartbeat"))
                # Keep the 3 s grid (a late poll does not shift later beats).
                self._next_heartbeat += self.heartbeat_interval
                if self._next_heartbeat <= now:
                    self._next_heartbeat = now + self.heartbeat_interval
            else:
                self._next_heartbeat = None
        return out

    # --- incoming requests ------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> list[Message]:
        parts = topic.split("/")
        if len(parts) < 3 or parts[1] != self.portal_id or parts[0] not in ("R", "W"):
            return []
        rest = "/".join(parts[2:])
        if parts[0] == "W":
            return self._write(rest, payload)
        out: list[Message] = []
        if rest in ("keepalive", SERIAL_KEY):
            out += self._keepalive(payload)
        if rest != "keepalive":
            out += self._read(rest)
        return out

    def _refill(self) -> None:
        now = self.clock()
        elapsed = now - self._tokens_reset_at
        if elapsed >= 1.0:
            self._tokens = self.republish_tokens
            self._tokens_reset_at += math.floor(elapsed)

    def _keepalive(self, payload: bytes) -> list[Message]:
        text = payload.decode("utf-8", errors="replace")
        out: list[Message] = []
        if SUPPRESS not in text:
            self._refill()
            if self._tokens > 0:
                self._tokens -= 1
                out += self.full_publish(_echo_token(text))
            else:
                log.debug("full republish rate-limited (%d/s); keepalive still extended",
                          self.republish_tokens)
        if not self.alive:
            log.info("keepalive received: publishing changes for %.0f s", self.keepalive_timeout)
        self._alive_until = self.clock() + self.keepalive_timeout
        self._was_alive = True
        if self._next_heartbeat is None:
            out.append(self._stamp("heartbeat"))
            self._next_heartbeat = self.clock() + self.heartbeat_interval
        return out

    def full_publish(self, echo: str | None = None) -> list[Message]:
        self.full_publishes += 1
        out = [self._msg(item) for item in self.items.values()]
        out.append(self._stamp("full_publish_completed", {ECHO_KEY: echo} if echo else None))
        log.debug("full republish #%d: %d topics", self.full_publishes, len(out) - 1)
        return out

    def _read(self, rest: str) -> list[Message]:
        if "+" in rest or "#" in rest:
            log.warning("read %s ignored: wildcards are not supported", rest)
            return []
        item = self.items.get(rest)
        if item is not None:
            return [self._msg(item)]
        if len(rest.split("/")) >= 3:
            prefix = rest.rstrip("/") + "/"
            leaves = [self._msg(i) for k, i in self.items.items() if k.startswith(prefix)]
            if leaves:
                return leaves
        log.warning("read %s ignored: no such path", rest)
        return []

    def _write(self, rest: str, payload: bytes) -> list[Message]:
        item = self.items.get(rest)
        if item is None:
            log.warning("write %s ignored: no such path", rest)
            return []
        rule = item.spec.write
        if rule is None:
            log.warning("write %s ignored: path is read-only", rest)
            return []
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            log.warning("write %s ignored: payload is not JSON", rest)
            return []
        if not isinstance(doc, dict) or "value" not in doc:
            log.warning("write %s ignored: payload has no 'value'", rest)
            return []
        if rule.requires is not None:
            service, instance, _ = rest.split("/", 2)
            flag = self.items.get(f"{service}/{instance}/{rule.requires}")
            if flag is None or flag.value != 1:
                log.warning("write %s ignored: %s is not 1", rest, rule.requires)
                return []
        try:
            value = check_write(rule, doc["value"])
        except WriteRejected as exc:
            log.warning("write %s ignored: %s", rest, exc)
            return []
        if encode(value) == encode(item.value):
            log.info("write %s = %s: unchanged", rest, value)
            return []
        log.info("write %s = %s (was %s)", rest, value, item.value)
        item.value = value
        return [self._msg(item)] if self.alive else []

    # --- value changes ----------------------------------------------------------------
    def update(self, values: Mapping[str, Any], publish: bool = True) -> list[Message]:
        """Apply new values; publish only those that changed, and only while alive."""
        alive = publish and self.alive
        out: list[Message] = []
        for key, value in values.items():
            item = self.items.get(key)
            if item is None or encode(value) == encode(item.value):
                continue
            item.value = value
            if alive:
                out.append(self._msg(item))
        return out

    def force_publish(self, key: str, value: Any) -> Message | None:
        """Set a value and return its notification if alive (used by the load generator)."""
        item = self.items[key]
        item.value = value
        return self._msg(item) if self.alive else None

    # --- devices appearing and disappearing -------------------------------------------
    def remove_device(self, service: str, instance: int) -> list[Message]:
        prefix = f"{service}/{instance}/"
        gone = [i for k, i in self.items.items() if k.startswith(prefix)]
        if not gone:
            return []
        for item in gone:
            del self.items[item.key]
        self.removed[(service, instance)] = gone
        log.info("device %s/%s disappeared: empty payload on %d topics",
                 service, instance, len(gone))
        # Never unpublish the retained Serial (types.cpp Item::publish).
        return [Message(self.topic(i.key), b"") for i in gone if i.key != SERIAL_KEY]

    def restore_device(self, service: str, instance: int) -> list[Message]:
        items = self.removed.pop((service, instance), [])
        for item in items:
            self.items[item.key] = item
        if items:
            log.info("device %s/%s is back", service, instance)
        return [self._msg(i) for i in items] if self.alive else []


def _echo_token(text: str) -> str | None:
    if not text:
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    options = doc.get("keepalive-options") if isinstance(doc, dict) else None
    token = None
    if isinstance(options, list):
        for option in options:
            if isinstance(option, dict) and isinstance(option.get(ECHO_KEY), str):
                token = option[ECHO_KEY]
    return token
