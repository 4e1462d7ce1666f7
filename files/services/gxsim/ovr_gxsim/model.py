"""A small, deterministic plant model: sun, loads, shore power, battery, inverter, GPS.

Everything random comes from one `random.Random(seed)`, consumed in a fixed order per
step, so the same seed, step size and controls give the same values on every run.

Solar and energy run on compressed time (`time_scale`, default 24: one simulated day per
real hour) so a demo shows night (PV at 0 W), SoC swings and charger state changes;
the GPS moves at real speed along the profile's track and stops at each waypoint.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

SIGNALS: tuple[str, ...] = (
    "battery.soc", "battery.voltage", "battery.current", "battery.power",
    "battery.temperature", "battery.state", "battery.consumed_ah", "battery.time_to_go",
    "alarm.low_soc", "alarm.high_temperature",
    "pv.power", "pv.voltage", "pv.current", "pv.state", "pv.yield_today",
    "ac.consumption.l1", "ac.consumption.l2", "ac.consumption.l3",
    "ac.out.l1.p", "ac.out.l2.p", "ac.out.l3.p", "ac.out.p",
    "ac.out.l1.v", "ac.out.l2.v", "ac.out.l3.v",
    "ac.out.l1.i", "ac.out.l2.i", "ac.out.l3.i",
    "ac.out.l1.f", "ac.out.l2.f", "ac.out.l3.f",
    "ac.in.l1.p", "ac.in.l2.p", "ac.in.l3.p",
    "ac.in.l1.v", "ac.in.l2.v", "ac.in.l3.v",
    "ac.in.l1.i", "ac.in.l2.i", "ac.in.l3.i",
    "ac.in.active_input", "ac.in.source",
    "vebus.state", "vebus.dc_voltage", "vebus.dc_current",
    "system.state", "system.batteries",
    "gps.latitude", "gps.longitude", "gps.speed", "gps.course", "gps.altitude",
    "gps.satellites", "gps.fix",
)

CONTROLS: tuple[str, ...] = (
    "vebus.mode",  # 1 charger only, 2 inverter only, 3 on, 4 off
    "vebus.current_limit",  # A per phase on the AC input
    "vebus.max_charge_current",  # A DC
    "vebus.output_voltage",  # V AC setpoint while inverting
)

_DEFAULT_TRACK: tuple[tuple[float, float], ...] = (
    (52.3702, 4.8952),  # Amsterdam
    (52.3731, 5.2165),  # Almere
    (52.5168, 5.4714),  # Lelystad
    (52.6324, 4.7534),  # Alkmaar
)


@dataclass(frozen=True)
class PlantParams:
    """Model parameters; every one can be set in the profile's "model" object."""

    battery_capacity_ah: float = 300.0
    battery_v_empty: float = 48.0
    battery_v_full: float = 54.0
    battery_resistance: float = 0.012
    battery_instance: int = 512
    battery_name: str = "SmartShunt 500A/50mV"
    battery_service: str = "com.victronenergy.battery.ttyS5"
    initial_soc: float = 72.0
    pv_peak_w: float = 2400.0
    time_scale: float = 24.0
    start_hour: float = 9.0
    loads_w: tuple[float, float, float] = (420.0, 260.0, 120.0)
    dc_load_w: float = 35.0
    inverter_efficiency: float = 0.93
    charger_efficiency: float = 0.92
    shore_period_s: float = 1800.0
    shore_connected_fraction: float = 0.25
    ac_frequency: float = 50.0
    track: tuple[tuple[float, float], ...] = field(default=_DEFAULT_TRACK)
    speed_mps: float = 12.0
    stop_s: float = 45.0
    altitude_m: float = 3.0

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> PlantParams:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"profile.model: unknown parameters {sorted(unknown)}")
        values: dict[str, Any] = dict(raw)
        if "loads_w" in values:
            loads = values["loads_w"]
            if not isinstance(loads, Sequence) or len(loads) != 3:
                raise ValueError("profile.model.loads_w: expected three numbers (L1, L2, L3)")
            values["loads_w"] = tuple(float(x) for x in loads)
        if "track" in values:
            track = values["track"]
            if not isinstance(track, Sequence) or len(track) < 2:
                raise ValueError("profile.model.track: expected at least two [lat, lon] points")
            values["track"] = tuple((float(p[0]), float(p[1])) for p in track)
        params = cls(**values)
        if not 0 <= params.initial_soc <= 100:
            raise ValueError("profile.model.initial_soc: expected 0..100")
        if params.time_scale <= 0 or params.battery_capacity_ah <= 0:
            raise ValueError("profile.model: time_scale and battery_capacity_ah must be > 0")
        return params


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance, good enough for a simulated track."""
    lat = math.radians((a[0] + b[0]) / 2)
    dx = math.radians(b[1] - a[1]) * math.cos(lat)
    dy = math.radians(b[0] - a[0])
    return 6_371_000.0 * math.hypot(dx, dy)


def _bearing_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlon = math.radians(b[1] - a[1])
    x = math.sin(dlon) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0


class PlantModel:
    """Steps the plant; `step()` returns every signal in SIGNALS."""

    def __init__(self, params: PlantParams, seed: int) -> None:
        self.p = params
        self.rng = random.Random(seed)
        self.t = 0.0
        self.soc = params.initial_soc
        self.cloud = 0.8
        self.temperature = 22.0
        self.yield_today = 0.0
        self.l3_on = True
        self.appliance_left = 0.0
        self.shore_phase = self.rng.uniform(0, params.shore_period_s)
        self.satellites = 9
        self.segment = 0
        self.segment_pos = 0.0
        self.stop_left = 0.0
        self.course = _bearing_deg(params.track[0], params.track[1])
        self._last_hour = params.start_hour
        self.signals: dict[str, Any] = {}

    # --- pieces -------------------------------------------------------------------------
    def hour_of_day(self) -> float:
        return (self.p.start_hour + self.t * self.p.time_scale / 3600.0) % 24.0

    def _sun(self, hour: float) -> float:
        if not 6.0 < hour < 20.0:
            return 0.0
        return max(0.0, math.sin(math.pi * (hour - 6.0) / 14.0))

    def _loads(self, dt: float) -> list[float]:
        rng = self.rng
        if self.appliance_left > 0:
            self.appliance_left -= dt
        elif rng.random() < 0.004:
            self.appliance_left = float(rng.randint(30, 120))  # kettle, microwave, AC unit
        if rng.random() < 0.01:
            self.l3_on = not self.l3_on
        loads = []
        for i, base in enumerate(self.p.loads_w):
            wave = 1.0 + 0.15 * math.sin(2 * math.pi * self.t / (300.0 + 60.0 * i))
            loads.append(max(0.0, base * wave * (1.0 + rng.gauss(0.0, 0.03))))
        if self.appliance_left > 0:
            loads[0] += 1800.0
        if not self.l3_on:
            loads[2] = 0.0
        return loads

    def _gps(self, dt: float) -> dict[str, Any]:
        rng = self.rng
        track = self.p.track
        speed = 0.0
        if self.stop_left > 0:
            self.stop_left = max(0.0, self.stop_left - dt)
        else:
            speed = max(0.0, self.p.speed_mps * (1.0 + rng.gauss(0.0, 0.08)))
            self.segment_pos += speed * dt
            a, b = track[self.segment], track[(self.segment + 1) % len(track)]
            length = _distance_m(a, b)
            if self.segment_pos >= length:
                self.segment = (self.segment + 1) % len(track)
                self.segment_pos = 0.0
                self.stop_left = self.p.stop_s
                speed = 0.0 if self.p.stop_s > 0 else speed
            a, b = track[self.segment], track[(self.segment + 1) % len(track)]
            self.course = (_bearing_deg(a, b) + rng.gauss(0.0, 1.5)) % 360.0
        a, b = track[self.segment], track[(self.segment + 1) % len(track)]
        length = _distance_m(a, b) or 1.0
        frac = _clamp(self.segment_pos / length, 0.0, 1.0)
        self.satellites = int(_clamp(self.satellites + rng.choice((-1, 0, 0, 0, 1)), 6, 14))
        return {
            "gps.latitude": a[0] + (b[0] - a[0]) * frac,
            "gps.longitude": a[1] + (b[1] - a[1]) * frac,
            "gps.speed": speed,
            "gps.course": self.course,
            "gps.altitude": self.p.altitude_m + rng.gauss(0.0, 0.5),
            "gps.satellites": self.satellites,
            "gps.fix": 1,
        }

    # --- the step -------------------------------------------------------------------------
    def step(self, dt: float, controls: Mapping[str, Any]) -> dict[str, Any]:
        p, rng = self.p, self.rng
        self.t += dt
        sim_dt = dt * p.time_scale

        hour = self.hour_of_day()
        if hour < self._last_hour:  # midnight: daily counters reset
            self.yield_today = 0.0
        self._last_hour = hour

        self.cloud = _clamp(self.cloud + rng.gauss(0.0, 0.03), 0.25, 1.0)
        sun = self._sun(hour)
        pv = p.pv_peak_w * sun * self.cloud if sun > 0 else 0.0
        loads = self._loads(dt)
        self.temperature = _clamp(self.temperature + rng.gauss(0.0, 0.05), 10.0, 40.0)

        mode = int(controls.get("vebus.mode", 3) or 0)
        limit_a = float(controls.get("vebus.current_limit", 16.0) or 0.0)
        max_charge_a = float(controls.get("vebus.max_charge_current", 70.0) or 0.0)
        setpoint_v = float(controls.get("vebus.output_voltage", 230.0) or 0.0)

        shore = (self.t + self.shore_phase) % p.shore_period_s < (
            p.shore_connected_fraction * p.shore_period_s
        )
        charger_on = mode in (1, 3)
        inverter_on = mode in (2, 3)
        ac_in_used = shore and mode in (1, 3)
        output_on = ac_in_used or (inverter_on and self.soc > 5.0)

        in_v = [230.0 + rng.gauss(0.0, 1.2) if shore else 0.0 for _ in range(3)]
        out_p = loads if output_on else [0.0, 0.0, 0.0]
        battery_v_rest = p.battery_v_empty + (p.battery_v_full - p.battery_v_empty) * self.soc / 100

        in_p = [0.0, 0.0, 0.0]
        charge_w = 0.0
        if ac_in_used:
            caps = [limit_a * v for v in in_v]
            from_grid = [min(load, cap) for load, cap in zip(out_p, caps, strict=True)]
            assist = sum(load - g for load, g in zip(out_p, from_grid, strict=True))
            headroom = sum(cap - g for cap, g in zip(caps, from_grid, strict=True))
            if charger_on and self.soc < 100.0:
                charge_w = min(max_charge_a * battery_v_rest, headroom * p.charger_efficiency)
            share = charge_w / p.charger_efficiency / 3.0
            in_p = [g + share for g in from_grid]
            inverter_draw = assist / p.inverter_efficiency
        else:
            inverter_draw = sum(out_p) / p.inverter_efficiency if output_on else 0.0

        battery_p = pv + charge_w - inverter_draw - p.dc_load_w
        if self.soc >= 100.0 and battery_p > 0:  # full: MPPT and charger back off
            pv = max(0.0, pv - battery_p)
            battery_p = pv + charge_w - inverter_draw - p.dc_load_w
            if battery_p > 0:
                charge_w = max(0.0, charge_w - battery_p)
                battery_p = pv + charge_w - inverter_draw - p.dc_load_w

        current = battery_p / battery_v_rest
        voltage = battery_v_rest + current * p.battery_resistance
        current = battery_p / voltage
        nominal_v = (p.battery_v_empty + p.battery_v_full) / 2
        self.soc = _clamp(
            self.soc + battery_p * sim_dt / 3600.0 / (p.battery_capacity_ah * nominal_v) * 100.0,
            0.0,
            100.0,
        )
        self.yield_today += pv * sim_dt / 3.6e6

        battery_state = 1 if battery_p > 5 else 2 if battery_p < -5 else 0
        time_to_go = None
        if current < -0.1:
            time_to_go = min(864000.0, self.soc / 100.0 * p.battery_capacity_ah / -current * 3600.0)

        if sun <= 0 or pv <= 0:
            pv_state = 0
        elif self.soc < 85:
            pv_state = 3
        elif self.soc < 99:
            pv_state = 4
        else:
            pv_state = 5
        pv_voltage = 95.0 + 30.0 * self.cloud + rng.gauss(0.0, 0.8) if sun > 0 else 0.0

        if mode == 4:
            vebus_state = 0
        elif ac_in_used:  # charger on (modes 1 and 3): bulk, absorption, float by SoC
            vebus_state = 3 if self.soc < 85 else 4 if self.soc < 99 else 5
        elif output_on:
            vebus_state = 9
        else:
            vebus_state = 0

        out_v = []
        for v in in_v:
            if not output_on:
                out_v.append(0.0)
            elif ac_in_used:
                out_v.append(v)
            else:
                out_v.append(setpoint_v + rng.gauss(0.0, 0.4))
        freq = [p.ac_frequency + rng.gauss(0.0, 0.02) if output_on else 0.0 for _ in range(3)]

        s: dict[str, Any] = {
            "battery.soc": self.soc,
            "battery.voltage": voltage,
            "battery.current": current,
            "battery.power": battery_p,
            "battery.temperature": self.temperature,
            "battery.state": battery_state,
            "battery.consumed_ah": -(100.0 - self.soc) / 100.0 * p.battery_capacity_ah,
            "battery.time_to_go": time_to_go,
            "alarm.low_soc": 2 if self.soc < 10 else 1 if self.soc < 20 else 0,
            "alarm.high_temperature": 1 if self.temperature > 45 else 0,
            "pv.power": pv,
            "pv.voltage": pv_voltage,
            "pv.current": pv / voltage,
            "pv.state": pv_state,
            "pv.yield_today": self.yield_today,
            "ac.out.p": sum(out_p),
            "ac.in.active_input": 0 if ac_in_used else 240,
            "ac.in.source": 3 if ac_in_used else 240,
            "vebus.state": vebus_state,
            "vebus.dc_voltage": voltage,
            "vebus.dc_current": (charge_w - inverter_draw) / voltage,
            "system.state": vebus_state,
        }
        for i in range(3):
            n = f"l{i + 1}"
            s[f"ac.consumption.{n}"] = out_p[i]
            s[f"ac.out.{n}.p"] = out_p[i]
            s[f"ac.out.{n}.v"] = out_v[i]
            s[f"ac.out.{n}.i"] = out_p[i] / out_v[i] if out_v[i] else 0.0
            s[f"ac.out.{n}.f"] = freq[i]
            s[f"ac.in.{n}.p"] = in_p[i]
            s[f"ac.in.{n}.v"] = in_v[i]
            s[f"ac.in.{n}.i"] = in_p[i] / in_v[i] if in_v[i] else 0.0
        s.update(self._gps(dt))
        s["system.batteries"] = [
            {
                "active_battery_service": True,
                "current": round(current, 1),
                "id": p.battery_service,
                "instance": p.battery_instance,
                "name": p.battery_name,
                "power": round(battery_p),
                "soc": round(self.soc, 1),
                "state": battery_state,
                "temperature": round(self.temperature, 1),
                "timetogo": None if time_to_go is None else round(time_to_go),
                "voltage": round(voltage, 2),
            }
        ]
        self.signals = s
        return s
