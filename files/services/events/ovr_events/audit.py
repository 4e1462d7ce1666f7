"""Reading the audit log (the rows are written by Store.audit)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ovr_common.sqlite import where

from .store import row_dict


def entries(conn: sqlite3.Connection, limit: int, system_id: str | None = None, action: str | None = None,
            exclude_logins: bool = False) -> list[dict[str, Any]]:
    """Newest first, with detail/before/after decoded from JSON."""
    # /api/status may be public: who tried which name stays in /api/audit (operators).
    clause, args = where({"system_id": system_id, "action": action}, *(["action != 'login'"] if exclude_logins else []))
    out = []
    for r in conn.execute(f"SELECT * FROM audit{clause} ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall():
        d = row_dict(r)
        for k in ("detail", "before", "after"):
            d[k] = None if d[k] is None else json.loads(d[k])
        out.append(d)
    return out
