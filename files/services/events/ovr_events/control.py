"""Guarded GX control: which settings may be written, in which range, and when a write is confirmed.

The server decides, not the dashboard: a setting must be on the allowlist, its value inside the
range configured for that system (inventory `edge_events_control`, else the safe defaults here),
and the GX must say the setting is adjustable (`ModeIsAdjustable`, `CurrentLimitIsAdjustable`).
A write is `pending` until the GX echoes the value on N/ (`confirmed`), or `timeout` after 20 s.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ovr_common.errors import ApiError

from .realtime import CONTROL_PATHS

MODES = {"charger_only": 1, "inverter_only": 2, "on": 3, "off": 4}
MODE_NAMES = {v: k for k, v in MODES.items()}


@dataclass(frozen=True)
class Setting:
    name: str
    path: str  # vebus path
    description: str
    unit: str
    minimum: float
    maximum: float
    integer: bool
    tolerance: float  # |echo - requested| <= tolerance confirms


SETTINGS: dict[str, Setting] = {
    "inverter_mode": Setting("inverter_mode", CONTROL_PATHS["inverter_mode"], "Inverter mode", "", 1, 4, True, 0),
    "battery_charge_current": Setting(
        "battery_charge_current", CONTROL_PATHS["battery_charge_current"], "Battery max charge current", "A", 0, 100, True, 0.1
    ),
    "ac_input_current_limit": Setting(
        "ac_input_current_limit", CONTROL_PATHS["ac_input_current_limit"], "AC input current limit", "A", 0, 50, False, 0.1
    ),
    "inverter_output_voltage": Setting(
        "inverter_output_voltage", CONTROL_PATHS["inverter_output_voltage"], "Inverter output voltage", "V", 210, 245, True, 0.5
    ),
}


class ControlError(ApiError):
    """A request this module refuses: status and message for the client (answered by the
    API's one ApiError handler)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)


@dataclass(frozen=True)
class Limits:
    """Per-system ranges and allowlist from the control file the role renders."""

    allowed: tuple[str, ...]
    ranges: dict[str, tuple[float, float]]


class ControlPolicy:
    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        doc = doc or {}
        self.defaults = doc.get("defaults") or {}
        self.systems = doc.get("systems") or {}
        self.allowed_default = tuple(doc.get("allowed") or SETTINGS)

    @classmethod
    def load(cls, path: Path) -> ControlPolicy:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: must be a JSON object")
        policy = cls(doc)
        policy.check(str(path))
        return policy

    def check(self, where: str) -> None:
        for name in self.allowed_default:
            if name not in SETTINGS:
                raise ValueError(f"{where}: unknown setting {name!r} in allowed; known: {', '.join(SETTINGS)}")
        for scope, table in [("defaults", self.defaults), *((f"systems.{k}", v) for k, v in self.systems.items())]:
            if not isinstance(table, dict):
                raise ValueError(f"{where}: {scope} must be an object")
            for name, rng in table.items():
                if name == "allowed":
                    if not isinstance(rng, list) or any(n not in SETTINGS for n in rng):
                        raise ValueError(f"{where}: {scope}.allowed must list known settings")
                    continue
                if name not in SETTINGS:
                    raise ValueError(f"{where}: {scope}: unknown setting {name!r}")
                if not (isinstance(rng, dict) and {"min", "max"} <= set(rng) and rng["min"] <= rng["max"]):
                    raise ValueError(f"{where}: {scope}.{name} must be {{min, max}} with min <= max")

    def limits(self, system_id: str) -> Limits:
        table = self.systems.get(system_id) or {}
        allowed = tuple(table.get("allowed", self.allowed_default))
        ranges = {}
        for name, s in SETTINGS.items():
            rng = table.get(name) or self.defaults.get(name) or {"min": s.minimum, "max": s.maximum}
            ranges[name] = (float(rng["min"]), float(rng["max"]))
        return Limits(allowed, ranges)


def coerce(setting: Setting, raw: Any) -> float:
    """The numeric value to write, or ControlError(400)."""
    if setting.name == "inverter_mode" and isinstance(raw, str):
        if raw not in MODES:
            raise ControlError(400, f"value for inverter_mode must be one of {', '.join(MODES)} (or 1-4), got {raw!r}")
        return float(MODES[raw])
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ControlError(400, f"value for {setting.name} must be a number, got {json.dumps(raw)[:40]}")
    value = float(raw)
    if not math.isfinite(value):
        raise ControlError(400, f"value for {setting.name} must be finite")
    if setting.integer and not value.is_integer():
        raise ControlError(400, f"value for {setting.name} must be a whole number, got {raw}")
    return value


def validate(setting_name: Any, raw: Any, limits: Limits, controls: dict[str, Any] | None) -> tuple[Setting, float]:
    """Check one requested write against the allowlist, range and the GX's adjustable flag."""
    if not isinstance(setting_name, str) or setting_name not in SETTINGS:
        raise ControlError(400, f"setting must be one of {', '.join(SETTINGS)}, got {json.dumps(setting_name)[:40]}")
    setting = SETTINGS[setting_name]
    if setting_name not in limits.allowed:
        raise ControlError(403, f"{setting_name} is not allowed on this system (inventory edge_events_control)")
    value = coerce(setting, raw)
    low, high = limits.ranges[setting_name]
    if setting_name == "inverter_mode" and int(value) not in MODE_NAMES:
        raise ControlError(400, f"inverter_mode must be one of {', '.join(MODES)} (1-4), got {raw}")
    if not low <= value <= high:
        raise ControlError(400, f"{setting_name} must be between {low:g} and {high:g} {setting.unit}".rstrip() + f", got {value:g}")
    if controls is not None:
        state = controls.get(setting_name) or {}
        if state.get("adjustable") is False:
            raise ControlError(409, f"the GX reports {setting_name} is not adjustable right now (e.g. set by a panel or ESS)")
    return setting, value


def confirms(setting: Setting, requested: float, observed: Any) -> bool:
    if isinstance(observed, bool) or not isinstance(observed, (int, float)):
        return False
    return abs(float(observed) - requested) <= setting.tolerance + 1e-9
