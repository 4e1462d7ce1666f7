"""The live cache of one GX, fed with its MQTT notifications (pure: no I/O, tests drive it).

Venus publishes `N/<portal>/<service>/<instance>/<path>` = {"value": x}. The cache keeps the last
value of the topics it cares about, with the time it arrived, and derives the summary the
dashboard shows. Rules that fix the original service's bugs:
- the vebus instance is discovered from the topics (lowest instance that publishes Mode or AC
  values), never hard-coded and never from VictoriaMetrics;
- a real 0 W stays 0 W (the original kept the previous value when a sum was 0);
- AC input counts vebus ActiveIn, else the system's ActiveIn, else Grid + Genset (shore, generator);
- `{"value": null}` means "invalid" on Venus: the value becomes None; an empty payload means the
  device disappeared: its values are forgotten; anything else malformed is ignored;
- a value the API needs that is lost that way, or a control that never arrived, is *unknown*, and
  `unknown()` lists it so the connection reads it back from the GX (reread.py): a GX publishes
  only changes, so nothing else would ever bring back a current limit that does not change.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ovr_common.protocol import loads_finite

PHASES = ("L1", "L2", "L3")

# Control settings as vebus paths (see control.py for limits and choices).
CONTROL_PATHS = {
    "inverter_mode": "Mode",
    "battery_charge_current": "Dc/0/MaxChargeCurrent",
    "ac_input_current_limit": "Ac/ActiveIn/CurrentLimit",
    "inverter_output_voltage": "Settings/InverterOutputVoltage",
}
ADJUSTABLE_PATHS = {
    "inverter_mode": "ModeIsAdjustable",
    "ac_input_current_limit": "Ac/ActiveIn/CurrentLimitIsAdjustable",
}

# Paths (after N/<portal>/) whose values the API shows: what unknown() watches once they are lost.
API_PATHS = re.compile(
    r"system/0/Dc/Battery/(Soc|Voltage|Current|Power)"
    r"|system/0/Ac/(ActiveIn|Grid|Genset|ConsumptionOnOutput|Consumption)/L[123]/Power"
    r"|vebus/[^/]+/(Soc|Ac/(ActiveIn|Out)/L[123]/P|"
    + "|".join(re.escape(p) for p in (*CONTROL_PATHS.values(), *ADJUSTABLE_PATHS.values())) + ")"
    r"|gps/[^/]+/(Position/Latitude|Position/Longitude|Speed|Course|Fix)"
    r"|[^/]+/[^/]+/(.+/)?Alarms/.+"
)
# Seconds after connecting (and its full republish) before a control that never arrived is unknown.
EXPECT_AFTER_SECONDS = 5.0
UNKNOWN_TEXT = {"reading": "unknown (reading…)", "unknown": "unknown (GX not connected)"}

# Subscriptions per GX (after N/<portal>/): everything the summary and control need.
SUBSCRIPTIONS = ("system/0/#", "vebus/#", "gps/#", "battery/+/Alarms/#", "battery/+/Soc")

_MISSING = object()


def parse_payload(payload: bytes) -> Any:
    """The value of a Venus payload; _MISSING for an empty payload; raises ValueError if malformed
    (too large, not JSON, nested too deeply, NaN or Infinity, not a Venus value object)."""
    if not payload or not payload.strip():
        return _MISSING
    if len(payload) > 65536:
        raise ValueError("payload too large")
    try:
        doc = loads_finite(payload)
    except RecursionError:
        raise ValueError("payload nested too deeply") from None
    if not isinstance(doc, dict) or "value" not in doc:
        raise ValueError("not a Venus value object")
    value = doc["value"]
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, (int, float, str)):
        return value
    if isinstance(value, list):
        return value
    raise ValueError("unsupported value type")


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


class GxCache:
    """Last values of one GX; `summary()` is what /api/realtime shows for it."""

    def __init__(self, system_id: str, portal_id: str, clock=time.time) -> None:
        self.system_id = system_id
        self.portal_id = portal_id
        self.clock = clock
        self.values: dict[str, tuple[Any, float]] = {}  # "service/instance/path" -> (value, t)
        self.last_message: float | None = None
        self.connected = False
        self.connected_at: float | None = None
        self.malformed = 0
        self.lost: dict[str, Any] = {}  # API paths cleared or gone invalid -> their last value
        self.listeners: list = []  # callables(key, value) for control confirmation

    def handle(self, rest: str, payload: bytes) -> None:
        """`rest` is the topic after N/<portal>/."""
        parts = rest.split("/", 2)
        if len(parts) < 3:
            if rest == "heartbeat":
                self.last_message = self.clock()
            return
        try:
            value = parse_payload(payload)
        except (ValueError, UnicodeDecodeError):
            self.malformed += 1
            return
        now = self.clock()
        self.last_message = now
        if value is _MISSING:
            old = self.values.pop(rest, None)
            if old is not None and API_PATHS.fullmatch(rest):
                self.lost.setdefault(rest, old[0])
            return
        old = self.values.get(rest)
        if old is not None and isinstance(old[0], (int, float)) and not isinstance(value, (int, float)) and value is not None:
            # A numeric path does not turn into text or a list on Venus: a broken payload.
            self.malformed += 1
            return
        if value is None:
            if API_PATHS.fullmatch(rest):
                self.lost.setdefault(rest, None if old is None else old[0])
        else:
            self.lost.pop(rest, None)
        self.values[rest] = (value, now)
        for listener in self.listeners:
            listener(rest, value)

    def set_connected(self, connected: bool) -> None:
        self.connected = connected
        self.connected_at = self.clock() if connected else None

    def unknown(self) -> set[str]:
        """API paths with no value now: lost ones, and the vebus controls that never arrived
        (once the full republish after connecting has had time to bring them)."""
        out = {k for k in self.lost if self.get(k) is None}
        inst = self.vebus_instance()
        if inst is not None and self.connected_at is not None \
                and self.clock() - self.connected_at >= EXPECT_AFTER_SECONDS:
            for path in (*CONTROL_PATHS.values(), *ADJUSTABLE_PATHS.values()):
                key = f"vebus/{inst}/{path}"
                if self.get(key) is None:
                    out.add(key)
        return out

    # ---- lookups ---------------------------------------------------------------------
    def get(self, key: str) -> Any:
        item = self.values.get(key)
        return None if item is None else item[0]

    def last_known(self, key: str) -> Any:
        """The value now, or the last one before it was lost (what a write changes "from")."""
        value = self.get(key)
        return self.lost.get(key) if value is None else value

    def vebus_instance(self) -> str | None:
        candidates = set()
        for key in self.values:
            service, instance, path = key.split("/", 2)
            if service == "vebus" and (path == "Mode" or path.startswith("Ac/")):
                candidates.add(instance)
        if not candidates:
            return None
        return min(candidates, key=lambda i: (0, int(i)) if i.isdigit() else (1, i))

    def vebus(self, path: str) -> Any:
        inst = self.vebus_instance()
        return None if inst is None else self.get(f"vebus/{inst}/{path}")

    def _phases(self, candidates: list[list[str]]) -> tuple[dict[str, float], str | None]:
        """First candidate family that has any phase value: {phase: W}, its name."""
        for family in candidates:
            found: dict[str, float] = {}
            for phase in PHASES:
                total = None
                for pattern in family:
                    v = _num(self.get(pattern.format(p=phase)))
                    if v is not None:
                        total = (total or 0.0) + v
                if total is not None:
                    found[phase] = total
            if found:
                return found, family[0].split("/{p}")[0]
        return {}, None

    def ac_in(self) -> tuple[dict[str, float], str | None]:
        inst = self.vebus_instance()
        fams: list[list[str]] = []
        if inst is not None:
            fams.append([f"vebus/{inst}/Ac/ActiveIn/{{p}}/P"])
        fams += [["system/0/Ac/ActiveIn/{p}/Power"], ["system/0/Ac/Grid/{p}/Power", "system/0/Ac/Genset/{p}/Power"]]
        return self._phases(fams)

    def ac_out(self) -> tuple[dict[str, float], str | None]:
        inst = self.vebus_instance()
        fams: list[list[str]] = []
        if inst is not None:
            fams.append([f"vebus/{inst}/Ac/Out/{{p}}/P"])
        fams += [["system/0/Ac/ConsumptionOnOutput/{p}/Power"], ["system/0/Ac/Consumption/{p}/Power"]]
        return self._phases(fams)

    def alarms(self) -> list[dict[str, Any]]:
        out = []
        for key, (value, _) in sorted(self.values.items()):
            service, instance, path = key.split("/", 2)
            if "Alarms/" in f"{path}" or path.startswith("Alarms/"):
                v = _num(value)
                if v is not None and v > 0:
                    out.append({"service": service, "instance": instance, "alarm": path.split("Alarms/", 1)[1],
                                "level": int(v)})
        return out

    def gps(self) -> dict[str, Any] | None:
        for key in sorted(self.values):
            service, instance, path = key.split("/", 2)
            if service == "gps" and path == "Position/Latitude":
                lat = _num(self.get(key))
                lon = _num(self.get(f"gps/{instance}/Position/Longitude"))
                if lat is None or lon is None:
                    continue
                return {
                    "latitude": lat,
                    "longitude": lon,
                    "speed": _num(self.get(f"gps/{instance}/Speed")),
                    "course": _num(self.get(f"gps/{instance}/Course")),
                    "fix": _num(self.get(f"gps/{instance}/Fix")),
                    "updated_ms": int(self.values[key][1] * 1000),
                }
        return None

    def controls(self) -> dict[str, Any]:
        """Each control: its value, when it came, whether the GX lets it be changed, and its
        state: `live`, or with no value `reading` (being read back from the GX) or `unknown`
        (the GX is not connected), with `text` saying so in words."""
        out: dict[str, Any] = {}
        inst = self.vebus_instance()
        for name, path in CONTROL_PATHS.items():
            item = self.values.get(f"vebus/{inst}/{path}") if inst is not None else None
            value = None if item is None else _num(item[0])
            adjustable_path = ADJUSTABLE_PATHS.get(name)
            adjustable: bool | None = True
            if adjustable_path is not None:
                flag = self.vebus(adjustable_path)
                num = _num(flag)
                adjustable = None if num is None else bool(num)  # unknown (missing, garbage) is not "no"
            state = "live" if value is not None else "reading" if self.connected else "unknown"
            out[name] = {
                "value": value,
                "updated_ms": None if value is None else int(item[1] * 1000),
                "adjustable": adjustable,
                "state": state,
                "text": UNKNOWN_TEXT.get(state),
            }
        return out

    def summary(self, stale_seconds: float) -> dict[str, Any]:
        now = self.clock()
        pin, pin_src = self.ac_in()
        pout, pout_src = self.ac_out()
        soc = _num(self.get("system/0/Dc/Battery/Soc"))
        if soc is None:
            soc = _num(self.vebus("Soc"))
        age = None if self.last_message is None else now - self.last_message
        mode = _num(self.vebus("Mode"))
        return {
            "system_id": self.system_id,
            "portal_id": self.portal_id,
            "type": "gx",
            "connected": self.connected,
            "soc": soc,
            "voltage": _num(self.get("system/0/Dc/Battery/Voltage")),
            "current": _num(self.get("system/0/Dc/Battery/Current")),
            "battery_power": _num(self.get("system/0/Dc/Battery/Power")),
            "pin": sum(pin.values()) if pin else None,
            "pin_phases": pin,
            "pin_source": pin_src,
            "pout": sum(pout.values()) if pout else None,
            "pout_phases": pout,
            "pout_source": pout_src,
            "mode": None if mode is None else int(mode),
            "vebus_instance": self.vebus_instance(),
            "alarms": self.alarms(),
            "gps": self.gps(),
            "controls": self.controls(),
            "reading": sorted(self.unknown()) if self.connected else [],
            "ts": None if self.last_message is None else int(self.last_message * 1000),
            "age_s": None if age is None else round(age, 3),
            "stale": age is None or age > stale_seconds,
            "dropped_messages": self.malformed,
        }
