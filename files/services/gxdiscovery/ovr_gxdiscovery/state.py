"""Per-GX memory between runs, and the rules that use it. Pure functions; the clock is a parameter.

Life of a GX (by its inventory name):
  (never seen) --probe ok--> online --not seen for lost_after--> lost --seen--> online
  online/lost --broker refused the login--> refused --seen--> online
  lost/refused --not seen for grace (from last_seen)--> dropped --seen--> online
Removed from gx_inventory.json: its record is deleted at once.

Outputs list online, lost and refused GX; Telegraf gets online and lost ones (a refused login
would make Telegraf exit on its next start or reload, so that input leaves the conf at once).

Keepalive: full (plain, empty payload: the GX republishes everything) on first contact, on a
new portal id behind the same host, when the GX comes back from lost/refused/dropped, when our
last keepalive may have lapsed on the GX, and every full_republish_seconds; otherwise
{"keepalive-options":["suppress-republish"]}.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

ONLINE = "online"
LOST = "lost"
REFUSED = "refused"
DROPPED = "dropped"
STATUSES = (ONLINE, LOST, REFUSED, DROPPED)
VISIBLE = (ONLINE, LOST, REFUSED)
IN_TELEGRAF = (ONLINE, LOST)

# Venus OS stops notifications 60 s after the last keepalive; past this we cannot be sure it
# was kept alive (a late timer, a suspended node), so the next keepalive asks for everything.
KEEPALIVE_LAPSE = 50.0
SCHEMA = 1

Mode = Literal["full", "suppress"]


@dataclass(frozen=True)
class Names:
    """Name topics seen during a full republish."""

    vebus: dict[int, str] = field(default_factory=dict)  # vebus instance -> CustomName
    system_name: str | None = None  # settings/0/Settings/SystemSetup/SystemName
    complete: bool = False  # N/<portal>/full_publish_completed was seen: the dump is whole


def best_name(names: Names) -> tuple[str, str] | None:
    """(name, source): the lowest vebus instance with a CustomName, else the SystemName."""
    for instance in sorted(names.vebus):
        value = names.vebus[instance].strip()
        if value:
            return value, f"vebus/{instance} CustomName"
    if names.system_name and names.system_name.strip():
        return names.system_name.strip(), "SystemName"
    return None


@dataclass(frozen=True)
class GxRecord:
    portal_id: str
    first_seen: float
    online_since: float
    last_seen: float
    last_full: float | None = None
    status: str = ONLINE
    display_name: str | None = None
    name_source: str | None = None
    reason: str | None = None  # why the latest probe failed (logs only)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: Any) -> GxRecord:
        if not isinstance(doc, dict):
            raise ValueError("record is not an object")
        known = {f.name for f in fields(cls)}
        rec = cls(**{k: v for k, v in doc.items() if k in known})
        if not isinstance(rec.portal_id, str) or rec.status not in STATUSES:
            raise ValueError("bad portal_id or status")
        for name in ("first_seen", "online_since", "last_seen"):
            value = getattr(rec, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"bad {name}")
        return rec


@dataclass
class State:
    systems: dict[str, GxRecord] = field(default_factory=dict)
    reload_pending: bool = False

    def to_json(self) -> str:
        doc = {
            "schema": SCHEMA,
            "reload_pending": self.reload_pending,
            "systems": {name: rec.to_json() for name, rec in sorted(self.systems.items())},
        }
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def load_state(path: Path) -> tuple[State, list[str]]:
    """The saved state and warnings; a missing or broken file gives an empty state (every GX is
    then a first contact: full republish), never a failed run."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return State(), []
    except (OSError, UnicodeDecodeError) as exc:
        return State(), [f"state {path} unreadable ({exc}); starting afresh"]
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or not isinstance(doc.get("systems"), dict):
            raise ValueError(f"not a schema {SCHEMA} state file")
    except ValueError as exc:
        return State(), [f"state {path} ignored ({exc}); starting afresh"]
    state = State(reload_pending=doc.get("reload_pending") is True)
    warnings = []
    for name, raw in doc["systems"].items():
        try:
            state.systems[str(name)] = GxRecord.from_json(raw)
        except (TypeError, ValueError) as exc:
            warnings.append(f"state of GX {name!r} ignored ({exc})")
    return state, warnings


def keepalive_mode(rec: GxRecord | None, portal_id: str, now: float, full_every: float) -> tuple[Mode, str]:
    """Which keepalive this run sends to a GX that answered with portal_id, and why."""
    if rec is None:
        return "full", "first contact"
    if rec.portal_id != portal_id:
        return "full", f"new portal id (was {rec.portal_id})"
    if rec.status != ONLINE:
        return "full", f"back after {rec.status}"
    if now - rec.last_seen >= KEEPALIVE_LAPSE:
        return "full", f"keepalive may have lapsed ({now - rec.last_seen:.0f}s since the last one)"
    if rec.last_full is None:
        return "full", "Telegraf (re)subscribed after the last full republish"
    if now - rec.last_full >= full_every:
        return "full", "periodic"
    return "suppress", ""


def after_success(
    rec: GxRecord | None,
    portal_id: str,
    mode: Mode,
    names: Names | None,
    now: float,
) -> GxRecord:
    """The record after a probe that found portal_id and sent a keepalive of `mode`."""
    if rec is None or rec.portal_id != portal_id:
        rec = GxRecord(portal_id=portal_id, first_seen=now, online_since=now, last_seen=now)
    elif rec.status != ONLINE:
        rec = replace(rec, online_since=now)
    rec = replace(rec, status=ONLINE, last_seen=now, reason=None)
    if mode == "full":
        rec = replace(rec, last_full=now)
    if names is not None:
        best = best_name(names)
        if best is not None:
            keep_vebus = (
                not names.complete
                and rec.name_source is not None
                and rec.name_source.startswith("vebus")
                and not best[1].startswith("vebus")
            )
            if not keep_vebus:  # an incomplete dump may just have missed the vebus name
                rec = replace(rec, display_name=best[0], name_source=best[1])
        elif names.complete:
            rec = replace(rec, display_name=None, name_source=None)
    return rec


def after_failure(rec: GxRecord | None, refused: bool, reason: str, now: float, lost_after: float) -> GxRecord | None:
    """The record after a probe that did not reach the GX (or whose login was refused)."""
    if rec is None:
        return None
    if refused and rec.status != DROPPED:
        return replace(rec, status=REFUSED, reason=reason)
    if rec.status == ONLINE and now - rec.last_seen >= lost_after:
        return replace(rec, status=LOST, reason=reason)
    return replace(rec, reason=reason)


def expire(rec: GxRecord, now: float, grace: float) -> GxRecord:
    """Not seen for longer than `grace` -> dropped from the outputs."""
    if rec.status != DROPPED and now - rec.last_seen > grace:
        return replace(rec, status=DROPPED)
    return rec


def after_reload(st: State) -> None:
    """Telegraf re-subscribed: values that never change were published before it listened,
    so the next run asks every GX for a full republish."""
    for name, rec in st.systems.items():
        st.systems[name] = replace(rec, last_full=None)
