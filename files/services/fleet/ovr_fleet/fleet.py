"""Fleet state: what each node is doing now, kept by the worker from the retained
ovr/<node>/status and ovr/<node>/realtime (plus node/system labels from the cloud TSDB), and
read by the API from SQLite — never from VictoriaMetrics per request.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from . import protocol, registry
from .config import Settings
from .store import now_ms


def _gps(obj: Any) -> tuple[float, float, int | None] | None:
    if not isinstance(obj, dict):
        return None
    lat = protocol.number(obj.get("lat", obj.get("latitude")))
    lon = protocol.number(obj.get("lon", obj.get("longitude", obj.get("lng"))))
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lat, lon, protocol.ts_ms(obj.get("ts", obj.get("updated_at")))


def _alarm_count(value: Any) -> int:
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        return sum(1 for v in value.values() if v not in (0, None, False, "ok"))
    n = protocol.number(value)
    return int(n) if n and n > 0 else 0


def _scalar(value: Any) -> str | float | bool | None:
    if isinstance(value, bool) or value is None:
        return value
    return protocol.text(value, 64) if isinstance(value, str) else protocol.number(value)


def _alarms(value: Any) -> list[Any] | dict[str, Any]:
    """A node's alarms, kept to what the map shows: up to 32 entries, each a scalar or a flat
    object of up to 8 scalar fields (nothing nested, no NaN, bounded text)."""
    def entry(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k)[:32]: _scalar(x) for k, x in list(v.items())[:8] if not isinstance(x, list | dict)}
        return None if isinstance(v, list) else _scalar(v)
    if isinstance(value, dict):
        return {str(k)[:64]: entry(v) for k, v in list(value.items())[:32]}
    if isinstance(value, list):
        return [entry(v) for v in value[:32]]
    return []


def normalize_systems(raw: Any) -> list[dict[str, Any]]:
    """systems as a list of objects (or a map by system_id) -> a list of known fields only."""
    items: list[tuple[str, Any]] = []
    if isinstance(raw, dict):
        items = [(str(k), v) for k, v in raw.items()]
    elif isinstance(raw, list):
        items = [(str(s.get("system_id") or s.get("id") or ""), s) for s in raw if isinstance(s, dict)]
    out = []
    for system_id, s in items[:64]:
        if not system_id or not isinstance(s, dict):
            continue
        gps = _gps(s.get("gps"))
        alarms = s.get("alarms")
        out.append({
            "system_id": system_id[:128],
            "type": protocol.text(s.get("type"), 32) or "gx",
            "soc": protocol.number(s.get("soc")),
            "voltage": protocol.number(s.get("voltage")),
            "power_in": protocol.number(s.get("power_in", s.get("pin"))),
            "power_out": protocol.number(s.get("power_out", s.get("pout"))),
            "mode": None if isinstance(s.get("mode"), bool) else _scalar(s.get("mode")),
            "alarms": _alarms(alarms),
            "alarms_count": _alarm_count(alarms),
            "gps": {"lat": gps[0], "lon": gps[1], "ts": gps[2]} if gps else None,
            "stale": bool(s.get("stale")),
        })
    return out


def _event_ids(data: dict[str, Any]) -> list[str]:
    raw = data.get("events", data.get("active_events"))
    ids: list[str] = []
    if isinstance(raw, list):
        for e in raw:
            i = e.get("id") if isinstance(e, dict) else e
            if isinstance(i, str) and protocol.ID_RE.match(i):
                ids.append(i)
    for key in ("event_id",):
        if isinstance(data.get(key), str) and protocol.ID_RE.match(data[key]):
            ids.append(data[key])
    return ids[:32]


def _deployment(data: dict[str, Any]) -> str | None:
    d = data.get("deployment_id")
    return d[:64] if isinstance(d, str) and d.strip() else None


def ingest_status(conn: sqlite3.Connection, node_id: str, data: dict[str, Any]) -> None:
    state = data.get("state")
    if state not in ("online", "offline"):
        raise protocol.BadMessage(f"state {state!r} is not online or offline")
    conn.execute(
        "INSERT INTO nodes (node_id, deployment_id, state, version, status_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (node_id) DO UPDATE SET state = excluded.state, status_at = excluded.status_at, "
        "version = COALESCE(excluded.version, nodes.version), deployment_id = COALESCE(excluded.deployment_id, nodes.deployment_id)",
        (node_id, _deployment(data), state, protocol.text(data.get("version"), 64), now_ms()))


def ingest_bridge(conn: sqlite3.Connection, node_id: str, payload: bytes) -> None:
    """The edge bridge's notification: b"1" connected, b"0" gone (its will at the cloud)."""
    state = {b"1": "online", b"0": "offline"}.get(payload.strip())
    if state is None:
        raise protocol.BadMessage(f"bridge state {payload[:20]!r} is not 1 or 0")
    conn.execute(
        "INSERT INTO nodes (node_id, state, status_at) VALUES (?, ?, ?) "
        "ON CONFLICT (node_id) DO UPDATE SET state = excluded.state, status_at = excluded.status_at",
        (node_id, state, now_ms()))


def ingest_realtime(conn: sqlite3.Connection, node_id: str, data: dict[str, Any]) -> list[str]:
    """Store a realtime summary; returns what was refused from it (the rest is kept)."""
    refused = []
    systems = normalize_systems(data.get("systems"))
    fixes = [(s["gps"]["ts"] or 0, s["gps"]) for s in systems if s["gps"]]
    node_gps = _gps(data.get("gps"))
    if node_gps:
        fixes.append((node_gps[2] or 0, {"lat": node_gps[0], "lon": node_gps[1], "ts": node_gps[2]}))
    received = now_ms()
    gps = max(fixes, key=lambda f: f[0])[1] if fixes else None
    gps_at = (gps["ts"] or protocol.ts_ms(data.get("ts")) or received) if gps else None
    socs = [s["soc"] for s in systems if s["soc"] is not None]
    pin = [s["power_in"] for s in systems if s["power_in"] is not None]
    pout = [s["power_out"] for s in systems if s["power_out"] is not None]
    canonical = sorted({registry.resolve_local(conn, node_id, i) or i for i in _event_ids(data)})
    url = protocol.http_url(data.get("ui_url"))
    if url is None and data.get("ui_url") is not None:
        refused.append(f"ui_url {str(data.get('ui_url'))[:80]!r} is not an absolute http(s) URL; ignored")
    conn.execute(
        "INSERT INTO nodes (node_id, deployment_id, state, realtime_at, realtime_ts, systems, active_events, gps_lat, gps_lon, "
        "gps_at, soc, power_in, power_out, alarms, ui_url) VALUES (?, ?, 'online', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (node_id) DO UPDATE SET deployment_id = COALESCE(excluded.deployment_id, nodes.deployment_id), "
        "realtime_at = excluded.realtime_at, realtime_ts = excluded.realtime_ts, systems = excluded.systems, "
        "active_events = excluded.active_events, gps_lat = COALESCE(excluded.gps_lat, nodes.gps_lat), "
        "gps_lon = COALESCE(excluded.gps_lon, nodes.gps_lon), gps_at = COALESCE(excluded.gps_at, nodes.gps_at), "
        "soc = excluded.soc, power_in = excluded.power_in, power_out = excluded.power_out, alarms = excluded.alarms, "
        "ui_url = COALESCE(excluded.ui_url, nodes.ui_url)",
        (node_id, _deployment(data), received, protocol.ts_ms(data.get("ts")), json.dumps(systems, separators=(",", ":")),
         json.dumps(canonical), gps["lat"] if gps else None, gps["lon"] if gps else None, gps_at,
         socs[0] if socs else None, sum(pin) if pin else None, sum(pout) if pout else None,
         sum(s["alarms_count"] for s in systems), url))
    return refused


def sync_vm_labels(conn: sqlite3.Connection, label_sets: list[dict[str, str]]) -> int:
    """Replace vm_nodes from (node_id, deployment_id, system_id) label sets seen in the TSDB."""
    by_node: dict[str, dict[str, Any]] = {}
    for labels in label_sets:
        node = labels.get("node_id", "")
        if not protocol.NODE_RE.match(node):
            continue
        entry = by_node.setdefault(node, {"deployment_id": None, "systems": set()})
        if labels.get("deployment_id"):
            entry["deployment_id"] = labels["deployment_id"][:64]
        if labels.get("system_id"):
            entry["systems"].add(labels["system_id"][:128])
    at = now_ms()
    conn.execute("DELETE FROM vm_nodes")
    conn.executemany("INSERT INTO vm_nodes (node_id, deployment_id, systems, synced_at) VALUES (?, ?, ?, ?)",
                     [(n, e["deployment_id"], json.dumps(sorted(e["systems"])), at) for n, e in by_node.items()])
    return len(by_node)


def known_nodes(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT node_id FROM nodes UNION SELECT node_id FROM vm_nodes")}


@functools.lru_cache(maxsize=4096)
def _ids(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _nodes(conn: sqlite3.Connection, settings: Settings, deployment_id: str | None, event_id: str | None,
           node_id: str | None) -> Iterator[tuple[dict[str, Any], str]]:
    """Each node as (its fields but systems, its systems as JSON text). The systems stay the text
    the worker stored, so the fleet list does not parse and re-serialise the bulk of its data."""
    now = now_ms()
    stale_ms, gps_stale_ms = settings.stale_seconds * 1000, settings.gps_stale_seconds * 1000
    vm = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT node_id, deployment_id, systems FROM vm_nodes")}
    manual = {r[0]: tuple(r[1:]) for r in conn.execute("SELECT node_id, latitude, longitude, label, updated_at FROM manual_locations")}
    names = dict(conn.execute("SELECT id, name FROM events WHERE state = 'active'").fetchall())
    sql = ("SELECT node_id, deployment_id, state, version, status_at, realtime_at, systems, active_events, gps_lat, gps_lon, "
           "gps_at, soc, power_in, power_out, alarms, ui_url FROM nodes" + (" WHERE node_id = ?" if node_id else ""))
    rows = {r[0]: r for r in conn.execute(sql, (node_id,) if node_id else ())}
    ids = set(rows) | (set(vm) if not node_id else ({node_id} & set(vm)))
    template = settings.node_url_template
    for nid in sorted(ids):
        r, v, m = rows.get(nid), vm.get(nid), manual.get(nid)
        dep = (r[1] if r else None) or (v[0] if v else None) or settings.default_deployment
        if deployment_id and dep != deployment_id:
            continue
        active = [e for e in _ids(r[7]) if e in names] if r and r[7] != "[]" else []
        if event_id and event_id not in active:
            continue
        heard = max(r[4] or 0, r[5] or 0) if r else 0
        if r is None or (r[2] == "unknown" and not heard):
            state = "unknown"
        elif r[2] == "offline":
            state = "offline"
        else:
            state = "online" if now - heard <= stale_ms else "stale"
        systems = r[6] if r else "[]"
        if v and v[1] != "[]":
            listed = json.loads(systems)
            seen = {x["system_id"] for x in listed}
            listed += [{"system_id": x, "type": "gx", "from": "vm"} for x in json.loads(v[1]) if x not in seen]
            systems = json.dumps(listed, separators=(",", ":"))
        gps_at = r[10] if r else None
        gps_fresh = bool(gps_at and now - gps_at <= gps_stale_ms)
        if gps_fresh or (r and r[8] is not None and m is None):
            lat, lon, source = r[8], r[9], "gps" if gps_fresh else "gps-stale"  # type: ignore[index]
        elif m is not None:
            lat, lon, source = m[0], m[1], "manual"
        else:
            lat = lon = None
            source = "none"
        # A stored URL is checked again (rows from before ui_url was checked on arrival).
        url = (protocol.http_url(r[15]) if r else None) or (
            template.replace("{node_id}", quote(nid, safe="")).replace("{deployment_id}", quote(dep, safe="")) if template else None)
        yield {
            "node_id": nid, "deployment_id": dep, "state": state, "online": state == "online",
            "version": r[3] if r else None, "last_seen": heard or None,
            "latitude": lat, "longitude": lon, "location_source": source,
            "gps_at": gps_at, "gps_age_s": round((now - gps_at) / 1000) if gps_at else None,
            "manual_location": {"latitude": m[0], "longitude": m[1], "label": m[2], "updated_at": m[3]} if m else None,
            "soc": r[11] if r else None, "power_in": r[12] if r else None,
            "power_out": r[13] if r else None, "alarms": r[14] if r else 0,
            "active_events": [{"id": e, "name": names[e]} for e in active],
            "ui_url": url,
        }, systems


def list_nodes(conn: sqlite3.Connection, settings: Settings, deployment_id: str | None = None,
               event_id: str | None = None, node_id: str | None = None) -> list[dict[str, Any]]:
    return [node | {"systems": json.loads(systems)} for node, systems in _nodes(conn, settings, deployment_id, event_id, node_id)]


def list_nodes_json(conn: sqlite3.Connection, settings: Settings, deployment_id: str | None = None,
                    event_id: str | None = None) -> str:
    """The fleet list as the JSON text GET /api/nodes answers: {generated_at, nodes: [...]}.
    One encoder pass over all nodes, each node's systems spliced in as the stored text (through a
    placeholder with a random token no node-supplied string can match)."""
    token = secrets.token_hex(8)
    systems: list[str] = []
    nodes = []
    for node, raw in _nodes(conn, settings, deployment_id, event_id, None):
        node["systems"] = f"{token}:{len(systems)}"
        systems.append(raw)
        nodes.append(node)
    text = json.dumps({"generated_at": now_ms(), "nodes": nodes}, separators=(",", ":"))
    return re.sub(f'"{token}:(\\d+)"', lambda m: systems[int(m[1])], text)


def deployments(conn: sqlite3.Connection, settings: Settings) -> list[dict[str, Any]]:
    counts: dict[str, dict[str, int]] = {}
    for n in list_nodes(conn, settings):
        c = counts.setdefault(n["deployment_id"], {"nodes": 0, "online": 0, "active_events": 0})
        c["nodes"] += 1
        c["online"] += n["online"]
    for r in conn.execute("SELECT deployment_id, count(*) AS n FROM events WHERE state = 'active' GROUP BY deployment_id"):
        counts.setdefault(r["deployment_id"], {"nodes": 0, "online": 0, "active_events": 0})["active_events"] = r["n"]
    return [{"deployment_id": d, **c} for d, c in sorted(counts.items())]


def node_deployment(conn: sqlite3.Connection, node_id: str, default: str) -> str:
    row = conn.execute("SELECT COALESCE((SELECT deployment_id FROM nodes WHERE node_id = ?), "
                       "(SELECT deployment_id FROM vm_nodes WHERE node_id = ?))", (node_id, node_id)).fetchone()
    return row[0] or default


def set_manual(conn: sqlite3.Connection, node_id: str, lat: float, lon: float, label: str | None, actor: str) -> dict[str, Any]:
    at = now_ms()
    conn.execute("INSERT INTO manual_locations (node_id, latitude, longitude, label, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (node_id) DO UPDATE SET latitude = excluded.latitude, longitude = excluded.longitude, "
                 "label = excluded.label, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                 (node_id, lat, lon, label, at, actor))
    return {"node_id": node_id, "latitude": lat, "longitude": lon, "label": label, "updated_at": at}


def clear_manual(conn: sqlite3.Connection, node_id: str) -> bool:
    return conn.execute("DELETE FROM manual_locations WHERE node_id = ?", (node_id,)).rowcount > 0
