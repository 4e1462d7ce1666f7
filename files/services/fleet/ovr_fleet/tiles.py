"""Map tile budget: usage per month, provider, node and deployment; a preferred provider per
deployment; switch away from a provider near its free tier, disable satellite tiles when all are over.

Any operator's map counts the tiles it loaded (`POST /api/tiles/usage`, viewers included), and the
counts decide for the whole fleet, so they are bounded: one call counts at most MAX_PER_CALL
tiles (a minute of heavy panning on a large screen loads a few hundred), and one operator (the
source) counts at most SOURCE_SHARE of a provider's monthly free tier. One operator alone can
therefore never push a provider over the switch or disable threshold; what changes the budget
itself (the preferred provider; the limits are inventory) needs the admin role in web.py.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from typing import Any

from .config import Settings
from .store import now_ms

MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
MAX_PER_CALL = 5000
SOURCE_SHARE = 0.10


class OverLimit(ValueError):
    """A count over a bound; the message says which and what the map should do."""

    def __init__(self, message: str, **extra: int) -> None:
        super().__init__(message)
        self.extra = extra


def month_key(at_ms: int | None = None) -> str:
    return dt.datetime.fromtimestamp((at_ms or now_ms()) / 1000, dt.UTC).strftime("%Y-%m")


def source_caps(settings: Settings) -> dict[str, int]:
    """Tiles one operator may count per provider and month."""
    return {p: int(lim * SOURCE_SHARE) for p, lim in settings.tiles_limits.items()}


def _source_counts(conn: sqlite3.Connection, month: str, source: str) -> dict[str, int]:
    return {r["provider"]: r["total"] for r in conn.execute(
        "SELECT provider, total FROM tile_sources WHERE month = ? AND source = ?", (month, source))}


def add_usage(conn: sqlite3.Connection, provider: str, node_id: str, deployment_id: str, count: int,
              month: str | None = None, *, source: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Count tiles a map loaded. `source` (the operator) is held to its monthly cap (needs `settings`)."""
    if not 1 <= count <= MAX_PER_CALL:
        raise OverLimit(f"count must be an integer from 1 to {MAX_PER_CALL}: a call counts at most {MAX_PER_CALL} tiles "
                        "(report what the map loaded every minute or so)")
    month = month or month_key()
    if source is not None:
        if settings is None:
            raise TypeError("add_usage with a source needs the settings (the cap comes from the limits)")
        cap = source_caps(settings).get(provider, 0)
        used = _source_counts(conn, month, source).get(provider, 0)
        if used + count > cap:
            raise OverLimit(
                f"operator {source} has counted {used} {provider} tiles in {month}; one operator may count at most {cap} "
                f"({SOURCE_SHARE:.0%} of the free tier of {settings.tiles_limits.get(provider, 0)}) per month, so this map "
                f"should stop loading {provider} tiles until next month (GET /api/tiles/status shows the counts)",
                used=used, cap=cap)
        conn.execute("INSERT INTO tile_sources (month, provider, source, total, updated_at) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT DO UPDATE SET total = total + excluded.total, updated_at = excluded.updated_at",
                     (month, provider, source, count, now_ms()))
    conn.execute("INSERT INTO tile_usage (month, provider, node_id, deployment_id, total, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT DO UPDATE SET total = total + excluded.total, updated_at = excluded.updated_at",
                 (month, provider, node_id, deployment_id, count, now_ms()))
    return {"month": month, "provider": provider, "node_id": node_id, "deployment_id": deployment_id, "added": count}


def set_preferred(conn: sqlite3.Connection, deployment_id: str, provider: str, actor: str) -> None:
    conn.execute("INSERT INTO tile_preferences (deployment_id, provider, updated_at, updated_by) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT DO UPDATE SET provider = excluded.provider, updated_at = excluded.updated_at, "
                 "updated_by = excluded.updated_by", (deployment_id, provider, now_ms(), actor))


def status(conn: sqlite3.Connection, settings: Settings, deployment_id: str, month: str | None = None,
           source: str | None = None) -> dict[str, Any]:
    month = month or month_key()
    totals = {p: 0 for p in settings.tiles_limits}
    for r in conn.execute("SELECT provider, sum(total) AS t FROM tile_usage WHERE month = ? GROUP BY provider", (month,)):
        if r["provider"] in totals:
            totals[r["provider"]] = r["t"]
    mine = {r["provider"]: r["t"] for r in conn.execute(
        "SELECT provider, sum(total) AS t FROM tile_usage WHERE month = ? AND deployment_id = ? GROUP BY provider", (month, deployment_id))}
    pref_row = conn.execute("SELECT provider FROM tile_preferences WHERE deployment_id = ?", (deployment_id,)).fetchone()
    preferred = pref_row["provider"] if pref_row and pref_row["provider"] in totals else settings.tiles_default_provider
    pct = {p: (totals[p] / lim if lim else 1.0) for p, lim in settings.tiles_limits.items()}
    blocked = {p: pct[p] >= settings.tiles_switch_pct for p in pct}
    recommended = preferred if not blocked[preferred] else next((p for p in pct if not blocked[p]), None)
    allowed = not all(pct[p] >= settings.tiles_disable_pct for p in pct)
    warning = None
    if recommended is None:
        warning = f"every provider is at or above {settings.tiles_switch_pct:.0%} of its free tier for {month}"
    if not allowed:
        warning = f"satellite tiles disabled: every provider is over {settings.tiles_disable_pct:.0%} of its free tier for {month}"
    out = {"month": month, "deployment_id": deployment_id, "limits": settings.tiles_limits, "fleet": totals,
           "deployment": {p: mine.get(p, 0) for p in totals}, "pct": {p: round(v, 4) for p, v in pct.items()},
           "blocked": blocked, "preferred_provider": preferred, "recommended_provider": recommended,
           "satellite_allowed": allowed, "warning": warning,
           "thresholds": {"switch_pct": settings.tiles_switch_pct, "disable_pct": settings.tiles_disable_pct}}
    if source is not None:
        counted = _source_counts(conn, month, source)
        out["source"] = {"name": source, "counted": {p: counted.get(p, 0) for p in totals}, "cap": source_caps(settings)}
    return out
