"""Device profile: which services and D-Bus paths the simulated GX exposes.

A profile is a JSON file:

    {
      "name": "default",
      "model": {...plant model parameters, see model.PlantParams...},
      "devices": [
        {"service": "vebus", "instance": 276, "items": {
            "Mode": {"value": 3, "control": "vebus.mode",
                     "write": {"choices": [1, 2, 3, 4], "integer": true,
                               "requires": "ModeIsAdjustable"}},
            "Ac/Out/L1/P": {"value": 0, "source": "ac.out.l1.p", "round": 0},
            ...}}]
    }

Item keys:
  value     initial value (any JSON value; "${portal_id}" is replaced by the portal id)
  source    model signal that drives the value (see model.SIGNALS); none = static
  control   model input fed by this value (writable settings the plant reacts to)
  round     decimals to round a numeric source value to (0 gives an int)
  min, max  published in the payload next to "value", like settings items on a GX
  write     makes the path writable: min/max range, choices, integer, and
            requires = a sibling path that must be 1 (e.g. ModeIsAdjustable)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PORTAL_PLACEHOLDER = "${portal_id}"
DEFAULT_PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "default.json"

_SERVICE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")
_ITEM_KEYS = {"value", "source", "control", "round", "min", "max", "write"}
_WRITE_KEYS = {"min", "max", "choices", "integer", "requires"}


class ProfileError(ValueError):
    """The profile file is not usable; the message says what to fix."""


@dataclass(frozen=True)
class WriteRule:
    """What a W/ request to a path may set."""

    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[float, ...] | None = None
    integer: bool = False
    requires: str | None = None  # sibling path whose value must be 1


@dataclass(frozen=True)
class ItemSpec:
    path: str
    value: Any
    source: str | None = None
    control: str | None = None
    round: int | None = None
    minimum: Any = None
    maximum: Any = None
    write: WriteRule | None = None


@dataclass(frozen=True)
class DeviceSpec:
    service: str
    instance: int
    items: tuple[ItemSpec, ...]

    @property
    def prefix(self) -> str:
        return f"{self.service}/{self.instance}"


@dataclass(frozen=True)
class Profile:
    name: str
    devices: tuple[DeviceSpec, ...]
    model: Mapping[str, Any] = field(default_factory=dict)

    def device(self, service: str, instance: int) -> DeviceSpec | None:
        for dev in self.devices:
            if dev.service == service and dev.instance == instance:
                return dev
        return None


def item_key(service: str, instance: int, path: str) -> str:
    """The topic suffix after N/<portal>/, which identifies an item."""
    return f"{service}/{instance}/{path}"


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(f"{where}: expected a number, got {value!r}")
    return value


def _parse_write(raw: Any, where: str, paths: set[str]) -> WriteRule:
    if raw is True:
        return WriteRule()
    if not isinstance(raw, dict):
        raise ProfileError(f"{where}.write: expected an object or true")
    unknown = set(raw) - _WRITE_KEYS
    if unknown:
        raise ProfileError(f"{where}.write: unknown keys {sorted(unknown)}")
    minimum = _number(raw["min"], f"{where}.write.min") if "min" in raw else None
    maximum = _number(raw["max"], f"{where}.write.max") if "max" in raw else None
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ProfileError(f"{where}.write: min {minimum} is above max {maximum}")
    choices = None
    if "choices" in raw:
        if not isinstance(raw["choices"], list) or not raw["choices"]:
            raise ProfileError(f"{where}.write.choices: expected a non-empty list")
        choices = tuple(_number(c, f"{where}.write.choices") for c in raw["choices"])
    requires = raw.get("requires")
    if requires is not None and requires not in paths:
        raise ProfileError(
            f"{where}.write.requires: {requires!r} is not a path of the same device"
        )
    return WriteRule(
        minimum=minimum,
        maximum=maximum,
        choices=choices,
        integer=bool(raw.get("integer", False)),
        requires=requires,
    )


def _check_path(path: str, where: str) -> None:
    segments = path.split("/")
    if not path or any(not _SEGMENT_RE.match(s) for s in segments):
        raise ProfileError(f"{where}: invalid D-Bus path {path!r} (no leading '/', no wildcards)")


def _parse_item(path: str, raw: Any, where: str, paths: set[str]) -> ItemSpec:
    _check_path(path, where)
    if not isinstance(raw, dict):
        # Shorthand: "Path": <static value>
        return ItemSpec(path=path, value=raw)
    unknown = set(raw) - _ITEM_KEYS
    if unknown:
        raise ProfileError(f"{where}: unknown keys {sorted(unknown)}")
    if "value" not in raw:
        raise ProfileError(f"{where}: missing 'value' (the initial value)")
    rnd = raw.get("round")
    if rnd is not None and (isinstance(rnd, bool) or not isinstance(rnd, int) or rnd < 0):
        raise ProfileError(f"{where}.round: expected a non-negative integer")
    write = _parse_write(raw["write"], where, paths) if "write" in raw else None
    return ItemSpec(
        path=path,
        value=raw["value"],
        source=raw.get("source"),
        control=raw.get("control"),
        round=rnd,
        minimum=raw.get("min"),
        maximum=raw.get("max"),
        write=write,
    )


def parse_profile(doc: Any, portal_id: str | None = None) -> Profile:
    """Validate a decoded profile document; substitute the portal id placeholder."""
    if not isinstance(doc, dict):
        raise ProfileError("profile: expected a JSON object at the top level")
    devices_raw = doc.get("devices")
    if not isinstance(devices_raw, list) or not devices_raw:
        raise ProfileError("profile.devices: expected a non-empty list")
    model = doc.get("model", {})
    if not isinstance(model, dict):
        raise ProfileError("profile.model: expected an object")
    seen: set[tuple[str, int]] = set()
    devices = []
    for n, dev in enumerate(devices_raw):
        where = f"devices[{n}]"
        if not isinstance(dev, dict):
            raise ProfileError(f"{where}: expected an object")
        service = dev.get("service")
        instance = dev.get("instance")
        if not isinstance(service, str) or not _SERVICE_RE.match(service):
            raise ProfileError(f"{where}.service: expected a short service name like 'vebus'")
        if isinstance(instance, bool) or not isinstance(instance, int) or instance < 0:
            raise ProfileError(f"{where}.instance: expected a non-negative integer")
        if (service, instance) in seen:
            raise ProfileError(f"{where}: {service}/{instance} is listed twice")
        seen.add((service, instance))
        items_raw = dev.get("items")
        if not isinstance(items_raw, dict) or not items_raw:
            raise ProfileError(f"{where}.items: expected a non-empty object")
        paths = set(items_raw)
        items = tuple(
            _parse_item(path, raw, f"{service}/{instance}/{path}", paths)
            for path, raw in items_raw.items()
        )
        devices.append(DeviceSpec(service=service, instance=instance, items=items))
    profile = Profile(name=str(doc.get("name", "unnamed")), devices=tuple(devices), model=model)
    if portal_id is not None:
        profile = _substitute(profile, portal_id)
    return profile


def _substitute(profile: Profile, portal_id: str) -> Profile:
    def sub(value: Any) -> Any:
        if value == PORTAL_PLACEHOLDER:
            return portal_id
        return value

    devices = tuple(
        DeviceSpec(
            service=d.service,
            instance=d.instance,
            items=tuple(
                ItemSpec(
                    path=i.path,
                    value=sub(i.value),
                    source=i.source,
                    control=i.control,
                    round=i.round,
                    minimum=i.minimum,
                    maximum=i.maximum,
                    write=i.write,
                )
                for i in d.items
            ),
        )
        for d in profile.devices
    )
    return Profile(name=profile.name, devices=devices, model=profile.model)


def load_profile(path: str | Path, portal_id: str | None = None) -> Profile:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile {path} is not valid JSON: {exc}") from exc
    return parse_profile(doc, portal_id)
