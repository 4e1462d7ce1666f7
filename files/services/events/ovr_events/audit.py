"""Reading the audit log (the rows are written by Store.audit)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .store import row_dict


def entries(conn: sqlite3.Connection, limit: int, system_id: str | None = None, action: str | None = None,
            exclude_logins: bool = False) -> list[dict[str, Any]]:
    """Newest first, with detail/before/after decoded from JSON."""
    sql, args = "SELECT * FROM audit WHERE 1=1", []
    if exclude_logins:  # /api/status may be public: who tried which name stays in /api/audit (operators)
        sql += " AND action != 'login'"
    if system_id:
        sql += " AND system_id = ?"
        args.append(system_id)
    if action:
        sql += " AND action = ?"
        args.append(action)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(limit)
    out = []
    for r in conn.execute(sql, args).fetchall():
        d = row_dict(r)
        for k in ("detail", "before", "after"):
            d[k] = None if d[k] is None else json.loads(d[k])
        out.append(d)
    return out
