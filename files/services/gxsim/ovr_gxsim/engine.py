"""The simulator without I/O: profile + plant model + flashmq state + chaos + load.

`poll()` is called often (the MQTT adapter does it every 50 ms); the model advances in fixed
steps of simulated time so values only depend on the seed and the elapsed time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .chaos import ChaosCycle, LoadGenerator
from .flashmq import SERIAL_KEY, GxState, Message
from .model import CONTROLS, SIGNALS, PlantModel, PlantParams
from .profile import Profile, ProfileError, item_key

log = logging.getLogger("ovr_gxsim.engine")

MAX_CATCHUP_STEPS = 300


@dataclass(frozen=True)
class Disappearance:
    """A device that vanishes `after` s after start and returns `duration` s later (None: never)."""

    service: str
    instance: int
    after: float
    duration: float | None = None


def parse_disappear(spec: str) -> list[Disappearance]:
    """Parse "solarcharger/279@120+60,battery/512@300" (service/instance@after[+duration])."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        try:
            device, timing = part.split("@", 1)
            service, instance = device.split("/", 1)
            after, _, duration = timing.partition("+")
            out.append(
                Disappearance(
                    service=service,
                    instance=int(instance),
                    after=float(after),
                    duration=float(duration) if duration else None,
                )
            )
        except ValueError as exc:
            raise ValueError(
                f"bad disappear spec {part!r}: expected service/instance@seconds[+seconds],"
                " e.g. solarcharger/279@120+60"
            ) from exc
    return out


def _normalise(value: Any, decimals: int | None) -> Any:
    if isinstance(value, float):
        if decimals is not None:
            value = round(value, decimals)
            if decimals == 0:
                return int(value)
        if value == 0:
            return 0.0  # no "-0.0" on the wire
    return value


class Simulator:
    def __init__(
        self,
        profile: Profile,
        portal_id: str,
        clock: Callable[[], float],
        *,
        seed: int = 1,
        keepalive_timeout: float = 60.0,
        heartbeat_interval: float = 3.0,
        load_rate: float = 0.0,
        chaos: bool = False,
        chaos_interval: float = 1.0,
        disappear: Iterable[Disappearance] = (),
        step: float = 1.0,
    ) -> None:
        try:
            params = PlantParams.from_mapping(profile.model)
        except (TypeError, ValueError) as exc:
            raise ProfileError(str(exc)) from exc
        self.clock = clock
        self.step = step
        self.model = PlantModel(params, seed)
        self.state = GxState(
            portal_id,
            profile.devices,
            clock,
            keepalive_timeout=keepalive_timeout,
            heartbeat_interval=heartbeat_interval,
        )
        self.bindings: list[tuple[str, str, int | None]] = []
        self.controls: list[tuple[str, str]] = []
        for dev in profile.devices:
            for spec in dev.items:
                key = item_key(dev.service, dev.instance, spec.path)
                if spec.source is not None:
                    if spec.source not in SIGNALS:
                        raise ProfileError(f"{key}: unknown source {spec.source!r}")
                    self.bindings.append((key, spec.source, spec.round))
                if spec.control is not None:
                    if spec.control not in CONTROLS:
                        raise ProfileError(f"{key}: unknown control {spec.control!r}")
                    self.controls.append((key, spec.control))
        for d in disappear:
            if profile.device(d.service, d.instance) is None:
                raise ProfileError(f"disappear: {d.service}/{d.instance} is not in the profile")

        start = clock()
        self._model_time = start
        self._events: list[tuple[float, str, str, int]] = []
        for d in disappear:
            self._events.append((start + d.after, "remove", d.service, d.instance))
            if d.duration is not None:
                back = start + d.after + d.duration
                self._events.append((back, "restore", d.service, d.instance))
        self._events.sort()

        self.load: LoadGenerator | None = None
        if load_rate > 0:
            keys = [
                (key, decimals)
                for key, _, decimals in self.bindings
                if isinstance(self.state.value(key), (int, float))
                and not isinstance(self.state.value(key), bool)
                and key != SERIAL_KEY
            ]
            self.load = LoadGenerator(self.state, keys, load_rate, start)
        self.chaos: ChaosCycle | None = None
        self.chaos_interval = chaos_interval
        self._next_chaos = start + chaos_interval
        if chaos:
            topics = [self.state.topic(k) for k in self.state.items if k != SERIAL_KEY]
            self.chaos = ChaosCycle(topics, seed)
        # One step so the first values come from the model, not the profile's placeholders.
        self._step_model(publish=False)

    # --- the three entry points the adapter calls ----------------------------------------
    def start(self) -> list[Message]:
        return self.state.start()

    def handle(self, topic: str, payload: bytes) -> list[Message]:
        return self.state.handle(topic, payload)

    def poll(self) -> list[Message]:
        now = self.clock()
        out = self.state.tick()
        steps = 0
        while now - self._model_time >= self.step:
            steps += 1
            if steps > MAX_CATCHUP_STEPS:
                log.warning("model fell %.0f s behind; skipping ahead", now - self._model_time)
                self._model_time = now
                break
            self._model_time += self.step
            out += self._step_model(publish=self.load is None)
        while self._events and self._events[0][0] <= now:
            _, action, service, instance = self._events.pop(0)
            if action == "remove":
                out += self.state.remove_device(service, instance)
            else:
                out += self.state.restore_device(service, instance)
        if self.load is not None:
            out += self.load.poll(now)
        if self.chaos is not None and now >= self._next_chaos:
            self._next_chaos = max(self._next_chaos + self.chaos_interval, now)
            if self.state.alive:
                kind, msg = self.chaos.next()
                log.debug("chaos: %s on %s", kind, msg.topic)
                out.append(msg)
        return out

    # --- internals ----------------------------------------------------------------------
    def _step_model(self, publish: bool) -> list[Message]:
        items = self.state.items
        controls = {name: items[key].value for key, name in self.controls if key in items}
        signals = self.model.step(self.step, controls)
        values = {
            key: _normalise(signals[source], decimals)
            for key, source, decimals in self.bindings
            if key in items
        }
        return self.state.update(values, publish=publish)
