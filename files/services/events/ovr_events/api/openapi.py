"""The OpenAPI 3.0 document of the API, served at /api/openapi.json and used by the API tests."""

from __future__ import annotations

from typing import Any

from ovr_common.protocol import NODE_ID_PATTERN

from .. import __version__
from ..control import MODES, SETTINGS

ERR = {"$ref": "#/components/responses/Error"}
SID = {"type": "string", "pattern": NODE_ID_PATTERN, "example": "pro6005-1"}
UUID = {"type": "string", "format": "uuid"}
OBJ = {"type": "object"}
NULLNUM = {"type": "number", "nullable": True}


def _op(summary: str, ok_code: str = "200", ok_schema: dict | None = None, *, body: dict | None = None,
        params: list | None = None, auth: bool = False, errors: tuple[str, ...] = ("400",), tag: str = "",
        content: str = "application/json", ok_content: str = "application/json") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag] if tag else [], "responses": {
        ok_code: {"description": "OK", "content": {ok_content: {"schema": ok_schema or OBJ}}}}}
    for code in errors:
        op["responses"][code] = ERR
    if auth:
        op["security"] = [{"basic": []}, {"session": []}]
        op["responses"]["401"] = ERR
        op["responses"]["403"] = ERR
        op["responses"]["429"] = ERR  # HTTP Basic: too many failed password checks (Retry-After)
    if body is not None:
        op["requestBody"] = {"required": True, "content": {content: {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def _q(name: str, schema: dict, desc: str = "") -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}


def _p(name: str, schema: dict) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": schema}


LIMIT = _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000}, "at most this many")

CONTROL_LIVE = {
    "type": "object",
    "required": ["value", "updated_ms", "adjustable", "state", "text"],
    "properties": {
        "value": NULLNUM, "updated_ms": {"type": "integer", "nullable": True},
        "adjustable": {"type": "boolean", "nullable": True},
        "state": {"type": "string", "enum": ["live", "reading", "unknown"],
                  "description": "live: value known; reading: lost or not yet received, being read back from the "
                                 "GX; unknown: the GX is not connected"},
        "text": {"type": "string", "nullable": True, "description": "the state in words when there is no value"},
    },
}
SYSTEM_LIVE = {
    "type": "object",
    "required": ["system_id", "stale", "ts"],
    "properties": {
        "system_id": {"type": "string"}, "portal_id": {"type": "string"}, "type": {"type": "string"},
        "soc": NULLNUM, "voltage": NULLNUM, "current": NULLNUM, "battery_power": NULLNUM,
        "pin": NULLNUM, "pout": NULLNUM, "pin_phases": OBJ, "pout_phases": OBJ,
        "mode": {"type": "integer", "nullable": True}, "vebus_instance": {"type": "string", "nullable": True},
        "alarms": {"type": "array", "items": OBJ}, "gps": {"type": "object", "nullable": True},
        "controls": {"type": "object", "additionalProperties": CONTROL_LIVE},
        "reading": {"type": "array", "items": {"type": "string"},
                    "description": "GX paths the API needs that are unknown now and being read back"},
        "ts": {"type": "integer", "nullable": True}, "age_s": NULLNUM, "stale": {"type": "boolean"},
        "dropped_messages": {"type": "integer", "description": "malformed GX payloads dropped since the worker started"},
    },
}
EVENT = {
    "type": "object", "required": ["id", "name", "temp", "state", "systems"],
    "properties": {"id": UUID, "name": {"type": "string"}, "temp": {"type": "boolean"},
                   "state": {"type": "string", "enum": ["active", "ended"]}, "systems": {"type": "array", "items": OBJ}},
}
EVENT_RESULT = {"type": "object", "required": ["event"], "properties": {"event": EVENT}}
WRITE = {
    "type": "object", "required": ["id", "state", "setting", "value", "system_id"],
    "properties": {"id": UUID, "state": {"type": "string", "enum": ["queued", "pending", "confirmed", "timeout", "failed"]},
                   "setting": {"type": "string"}, "value": {"type": "number"}, "system_id": {"type": "string"},
                   "before": NULLNUM, "observed": NULLNUM, "error": {"type": "string", "nullable": True}},
}
SYSTEMS_BODY = {"type": "array", "items": SID, "minItems": 1, "maxItems": 50}
_PRINTABLE = "^[^\\u0000-\\u0008\\u000b-\\u001f]*$"
TEXT = {"type": "string", "maxLength": 200, "pattern": _PRINTABLE}
REQUIRED_TEXT = {"type": "string", "maxLength": 200,
                 "pattern": "^[^\\u0000-\\u0008\\u000b-\\u001f]*[^\\s\\u0000-\\u001f][^\\u0000-\\u0008\\u000b-\\u001f]*$"}
NOTE_TEXT = {**REQUIRED_TEXT, "maxLength": 4000}
ROW_ID = {"type": "integer", "minimum": 0, "maximum": 9007199254740991}


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/health": {"get": _op("Liveness and version", errors=(), tag="service")},
        "/api/health": {"get": _op("Liveness and version (same as /health, under /api for Caddy)", errors=(), tag="service")},
        "/api/openapi.json": {"get": _op("This document", errors=(), tag="service")},
        "/api/auth/login": {"post": _op(
            "Log in; sets a session cookie", body={"type": "object", "required": ["username", "password"],
                                                  "properties": {"username": {"type": "string", "minLength": 1, "maxLength": 64},
                                                                 "password": {"type": "string", "maxLength": 1024}}},
            errors=("400", "401", "429"), tag="auth")},
        "/api/auth/logout": {"post": _op("Log out", errors=(), tag="auth")},
        "/api/auth/me": {"get": _op("Who am I", errors=("401", "429"), tag="auth")},
        "/api/realtime": {"get": _op("Live values of every GX, from memory", ok_schema={
            "type": "object", "required": ["ts", "systems", "worker_ok"],
            "properties": {"ts": {"type": "integer"}, "worker_ok": {"type": "boolean"},
                           "systems": {"type": "array", "items": SYSTEM_LIVE}}}, errors=(), tag="realtime")},
        "/api/summary": {"get": _op("Compact live summary", params=[_q("system_id", SID)], errors=("400", "404"),
                                    tag="realtime")},
        "/api/dashboard": {"get": _op("Live values, GX list and active events in one call", errors=(), tag="realtime")},
        "/api/systems": {"get": _op("GX systems discovered on this node", errors=(), tag="realtime")},
        "/api/gps": {"get": _op("GPS fix of every system", errors=(), tag="realtime")},
        "/api/gps/{system_id}": {"get": _op("GPS fix of one system", params=[_p("system_id", SID)],
                                            errors=("400", "404"), tag="realtime")},
        "/api/gx/settings": {
            "get": _op("Control settings: live values, adjustable flags, allowed ranges", params=[_q("system_id", SID)],
                       errors=("400", "404"), tag="control"),
            "post": _op("Write one setting to a GX (202: queued; poll /api/gx/writes/{id})", "202",
                        {"type": "object", "required": ["write"], "properties": {"write": WRITE}},
                        body={"type": "object", "required": ["system_id", "setting", "value"], "properties": {
                            "system_id": SID, "setting": {"type": "string", "enum": list(SETTINGS)},
                            "value": {"oneOf": [{"type": "number"}, {"type": "string", "enum": list(MODES)}]}}},
                        auth=True, errors=("400", "404", "409", "503"), tag="control"),
        },
        "/api/gx/writes": {"get": _op("Recent GX writes", params=[_q("system_id", SID), LIMIT], errors=("400",), tag="control")},
        "/api/gx/writes/{write_id}": {"get": _op("State of one GX write (pending, confirmed, timeout, failed)",
                                                 ok_schema={"type": "object", "properties": {"write": WRITE}},
                                                 params=[_p("write_id", {"type": "string"})], errors=("404",), tag="control")},
        "/api/events": {
            "get": _op("Events", params=[_q("state", {"type": "string", "enum": ["active", "ended"]}), LIMIT],
                       errors=("400",), tag="events"),
            "post": _op("Start an event for one or more systems (by event_id, by name, or neither for a temporary name)",
                        "201", EVENT_RESULT, body={"type": "object", "required": ["systems"], "properties": {
                            "systems": SYSTEMS_BODY, "event_id": UUID, "name": {**TEXT, "maxLength": 120},
                            "location": TEXT, "note": {**TEXT, "maxLength": 4000}}},
                        auth=True, errors=("400", "404", "409"), tag="events"),
        },
        "/api/events/end-all": {"post": _op("End every active event", auth=True, errors=(), tag="events")},
        "/api/events/registry": {"get": _op("The cloud's event registry as last received", errors=(), tag="events")},
        "/api/events/{event_id}": {"get": _op("One event with its systems and reports", ok_schema=EVENT,
                                              params=[_p("event_id", UUID)], errors=("400", "404"), tag="events")},
        "/api/events/{event_id}/systems": {"post": _op(
            "Add systems to a running event", ok_schema=EVENT_RESULT, params=[_p("event_id", UUID)],
            body={"type": "object", "required": ["systems"], "properties": {"systems": SYSTEMS_BODY, "location": TEXT}},
            auth=True, errors=("400", "404", "409"), tag="events")},
        "/api/events/{event_id}/systems/{system_id}": {"delete": _op(
            "Remove a system from the event (the last one out ends it)", ok_schema=EVENT_RESULT,
            params=[_p("event_id", UUID), _p("system_id", SID)], auth=True, errors=("400", "404", "409"), tag="events")},
        "/api/events/{event_id}/systems/{system_id}/end": {"post": _op(
            "End the event for one system", ok_schema=EVENT_RESULT, params=[_p("event_id", UUID), _p("system_id", SID)],
            auth=True, errors=("400", "404", "409"), tag="events")},
        "/api/events/{event_id}/systems/{system_id}/location": {"put": _op(
            "Change a system's location", ok_schema=EVENT_RESULT, params=[_p("event_id", UUID), _p("system_id", SID)],
            body={"type": "object", "required": ["location"], "properties": {"location": REQUIRED_TEXT}},
            auth=True, errors=("400", "404", "409"), tag="events")},
        "/api/events/{event_id}/end": {"post": _op(
            "End the event for every system; its report is generated", ok_schema=EVENT_RESULT,
            params=[_p("event_id", UUID)], auth=True, errors=("400", "404", "409"), tag="events")},
        "/api/notes": {
            "get": _op("Notes", params=[_q("event_id", UUID), _q("system_id", SID), LIMIT], errors=("400", "404"), tag="notes"),
            "post": _op("Add a note (to the system's active event when event_id is not given)", "201",
                        body={"type": "object", "required": ["text"], "properties": {
                            "text": NOTE_TEXT, "event_id": UUID, "system_id": SID}},
                        auth=True, errors=("400", "404"), tag="notes"),
        },
        "/api/notes/{note_id}": {"delete": _op("Delete a note", params=[_p("note_id", ROW_ID)], auth=True,
                                               errors=("404",), tag="notes")},
        "/api/photos": {
            "get": _op("Photos", params=[_q("event_id", {"type": "string"}), _q("system_id", SID), LIMIT],
                       errors=("400",), tag="photos"),
            "post": _op("Upload a photo (JPEG, PNG, GIF, WebP, HEIC; size-limited)", "201",
                        body={"type": "object", "required": ["photo"], "properties": {
                            "photo": {"type": "string", "format": "binary"}, "caption": TEXT, "system_id": SID,
                            "event_id": UUID}},
                        content="multipart/form-data", auth=True, errors=("400", "404", "413", "415"), tag="photos"),
        },
        "/api/photos/{photo_id}": {
            "get": _op("One photo's metadata", params=[_p("photo_id", ROW_ID)], errors=("404",), tag="photos"),
            "patch": _op("Change a caption", params=[_p("photo_id", ROW_ID)],
                         body={"type": "object", "required": ["caption"], "properties": {"caption": TEXT}},
                         auth=True, errors=("400", "404"), tag="photos"),
            "delete": _op("Delete a photo", params=[_p("photo_id", ROW_ID)], auth=True, errors=("404",),
                          tag="photos"),
        },
        "/api/photos/{photo_id}/file": {"get": _op("The image", params=[_p("photo_id", ROW_ID)],
                                                   ok_schema={"type": "string", "format": "binary"}, ok_content="image/*",
                                                   errors=("404",), tag="photos")},
        "/api/status": {"get": _op("Active events and recent actions", params=[_q("system_id", SID)], errors=("400",),
                                   tag="events")},
        "/api/audit": {"get": _op("Audit log (operators only: it records failed logins)",
                                  params=[_q("action", {"type": "string", "pattern": "^[a-z_]{1,60}$"}), _q("system_id", SID), LIMIT],
                                  auth=True, errors=("400",), tag="audit")},
        "/api/reports": {
            "get": _op("Reports, newest first", params=[LIMIT], errors=("400",), tag="reports"),
            "post": _op("Generate a new report for an event", "202", body={"type": "object", "required": ["event_id"],
                                                                           "properties": {"event_id": UUID}},
                        auth=True, errors=("400", "404"), tag="reports"),
        },
        "/api/reports/{report_id}": {"get": _op("One report (JSON)", params=[_p("report_id", UUID)], errors=("400", "404"),
                                                tag="reports")},
        "/api/reports/{report_id}/html": {"get": _op("One report (HTML)", params=[_p("report_id", UUID)],
                                                     ok_schema={"type": "string"}, ok_content="text/html",
                                                     errors=("400", "404", "409"), tag="reports")},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "ovr-events (edge)", "version": __version__,
                 "description": "Realtime cache, guarded GX control, events, notes, photos, audit and reports of one edge node."},
        "paths": paths,
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "ovr_events_session"}},
            "responses": {"Error": {"description": "An error a human can act on", "content": {"application/json": {"schema": {
                "type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}}}}},
        },
    }
