"""The OpenAPI 3.1 document the service serves at /api/openapi.json (and the API tests use)."""

from __future__ import annotations

from typing import Any

from ovr_common.protocol import NODE_ID_PATTERN

from . import __version__

ID = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"}
NODE = {"type": "string", "pattern": NODE_ID_PATTERN}
DEPLOYMENT = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}
MS = {"type": ["integer", "null"]}
NUM = {"type": ["number", "null"]}
STR = {"type": ["string", "null"]}
OBJ = {"type": "object"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


SCHEMAS: dict[str, Any] = {
    "Error": obj(["error"], error={"type": "string"}),
    "Event": obj(["id", "name", "deployment_id", "state", "created_at", "started_at"],
                 id={"type": "string"}, name={"type": "string"}, deployment_id={"type": "string"},
                 state={"enum": ["active", "ended", "merged"]}, temp={"type": "boolean"}, merged_into=STR, source=STR,
                 created_at={"type": "integer"}, started_at={"type": "integer"}, ended_at=MS),
    "Node": obj(["node_id", "deployment_id", "state", "online", "systems", "active_events", "location_source"],
                node_id={"type": "string"}, deployment_id={"type": "string"},
                state={"enum": ["online", "stale", "offline", "unknown"]}, online={"type": "boolean"}, version=STR,
                last_seen=MS, latitude=NUM, longitude=NUM, location_source={"enum": ["gps", "gps-stale", "manual", "none"]},
                gps_at=MS, gps_age_s=MS, manual_location={"type": ["object", "null"]}, soc=NUM, power_in=NUM, power_out=NUM,
                alarms={"type": "integer"}, active_events=arr(obj(["id", "name"], id={"type": "string"}, name={"type": "string"})),
                systems=arr(OBJ), ui_url=STR),
    "ReportMeta": obj(["report_id", "node_id", "event_id", "hash", "received_at"],
                      report_id={"type": "string"}, node_id={"type": "string"}, event_id={"type": "string"},
                      event_id_original={"type": "string"}, system_id=STR, hash={"type": "string"},
                      generated_at=MS, received_at={"type": "integer"}, has_html={"type": "boolean"}),
}

ERR = {"description": "error", "content": {"application/json": {"schema": ref("Error")}}}


def ok(schema: dict[str, Any], code: str = "200", media: str = "application/json") -> dict[str, Any]:
    return {code: {"description": "ok", "content": {media: {"schema": schema}}}, "default": ERR}


def q(name: str, schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def p(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def op(summary: str, responses: dict[str, Any], params: list[dict[str, Any]] | None = None,
       request: dict[str, Any] | None = None, admin: bool = False, public: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": summary + (" (admin)" if admin else ""), "responses": responses}
    if params:
        out["parameters"] = params
    if request:
        out["requestBody"] = request
    if public:
        out["security"] = []
    return out


EVENT_ID = p("event_id", ID)
NODE_ID = p("node_id", NODE)

PATHS: dict[str, Any] = {
    "/api/health": {"get": op("liveness and database check", ok(obj(["status"], status={"const": "ok"}, version=STR)), public=True)},
    "/api/openapi.json": {"get": op("this document", ok(OBJ))},
    "/api/whoami": {"get": op("the authenticated operator", ok(obj(["name", "role"], name={"type": "string"},
                                                                    role={"enum": ["viewer", "admin"]})))},
    "/api/nodes": {"get": op("fleet list: every node with its systems, state, location, SoC, power, alarms, events",
                             ok(obj(["generated_at", "nodes"], generated_at={"type": "integer"}, nodes=arr(ref("Node")))),
                             [q("deployment_id", DEPLOYMENT), q("event_id", ID)])},
    "/api/nodes/{node_id}": {"get": op("one node with its events and reports",
                                       ok(obj(["node"], node=ref("Node"), events=arr(OBJ), reports=arr(ref("ReportMeta")))),
                                       [NODE_ID])},
    "/api/nodes/{node_id}/history": {"get": op(
        "history of one metric of a node from the cloud TSDB (bounded range and step)",
        ok(obj(["metric", "series"], metric={"type": "string"}, start={"type": "number"}, end={"type": "number"},
               step={"type": "number"}, series=arr(OBJ))),
        [NODE_ID, q("metric", {"type": "string", "pattern": r"^[a-z0-9_]{1,130}$"}, True), q("system_id", ID),
         q("start", {"type": "number"}), q("end", {"type": "number"}), q("step", {"type": "number", "minimum": 1})])},
    "/api/nodes/{node_id}/location": {
        "put": op("set a manual location (used when GPS is missing or stale)",
                  ok(OBJ), [NODE_ID], body(obj(["latitude", "longitude"],
                                               latitude={"type": "number", "minimum": -90, "maximum": 90},
                                               longitude={"type": "number", "minimum": -180, "maximum": 180},
                                               label={"type": "string", "maxLength": 120})), admin=True),
        "delete": op("clear the manual location", ok(OBJ), [NODE_ID], admin=True)},
    "/api/deployments": {"get": op("deployments with node and event counts", ok(obj(["deployments"], deployments=arr(OBJ))))},
    "/api/events": {
        "get": op("the event registry", ok(obj(["events"], events=arr(ref("Event")))),
                  [q("state", {"enum": ["active", "ended", "merged"]}), q("deployment_id", DEPLOYMENT)]),
        "post": op("create an event; a taken name is answered 409 with a suggestion", ok(ref("Event"), "201"), None,
                   body(obj(["name"], name={"type": "string", "minLength": 1, "maxLength": 120}, deployment_id=DEPLOYMENT,
                            started_at={"type": "integer", "minimum": 1})), admin=True)},
    "/api/events/{event_id}": {"get": op("one event with its nodes and aliases", ok(ref("Event")), [EVENT_ID])},
    "/api/events/{event_id}/end": {"post": op(
        "end an event: end markers, the broadcast ovr/events/<id>/end and the retained registry", ok(ref("Event")),
        [EVENT_ID], admin=True)},
    "/api/events/{event_id}/nodes": {"post": op(
        "add nodes to an event", ok(obj(["event_id", "added", "unknown"], event_id={"type": "string"}, added=arr({"type": "string"}),
                                         unknown=arr({"type": "string"}))),
        [EVENT_ID], body(obj(["node_ids"], node_ids={"type": "array", "minItems": 1, "maxItems": 1000, "items": NODE})), admin=True)},
    "/api/events/{event_id}/merge": {"post": op(
        "file another (temporary or duplicate) event id under this one: aliases, reports, align to the edges",
        ok(OBJ), [EVENT_ID], body(obj(["local_event_id"], local_event_id=ID, node_id=NODE)), admin=True)},
    "/api/events/{event_id}/aggregate": {"get": op("aggregate report of an event (JSON)", ok(OBJ),
                                                   [EVENT_ID, q("download", {"enum": ["0", "1"]})])},
    "/api/events/{event_id}/aggregate.html": {"get": op("aggregate report of an event (HTML with the node reports)",
                                                        ok({"type": "string"}, media="text/html"), [EVENT_ID])},
    "/api/alignments": {"get": op("name alignments waiting for an operator", ok(obj(["alignments"], alignments=arr(OBJ))),
                                  [q("all", {"enum": ["0", "1"]})])},
    "/api/alignments/{alignment_id}": {"post": op(
        "merge or keep separate", ok(OBJ), [p("alignment_id", {"type": "integer", "minimum": 1})],
        body(obj(["resolution"], resolution={"enum": ["merge", "keep_separate"]})), admin=True)},
    "/api/reports": {"get": op("reports, newest first, and the events that have some",
                               ok(obj(["reports", "events"], reports=arr(ref("ReportMeta")), events=arr(OBJ))),
                               [q("event_id", ID), q("node_id", NODE)])},
    "/api/reports/{report_id}": {"get": op("one node report (JSON)", ok(OBJ), [p("report_id", ID), q("download", {"enum": ["0", "1"]})])},
    "/api/reports/{report_id}/html": {"get": op("one node report as the edge rendered it", ok({"type": "string"}, media="text/html"),
                                                [p("report_id", ID)])},
    "/api/tiles/status": {"get": op("map tile budget and the provider to use; `source`: what the caller has counted and may count",
                                    ok(OBJ),
                                    [q("deployment_id", DEPLOYMENT), q("month", {"type": "string", "pattern": r"^\d{4}-\d{2}$"})])},
    "/api/tiles/usage": {"post": op("count tiles a map loaded (viewers too): at most 5000 per call, each operator at most 10% "
                                    "of a provider's monthly free tier (400 beyond)", ok(OBJ), None,
                                    body(obj(["provider", "count"], provider={"type": "string"},
                                             count={"type": "integer", "minimum": 1, "maximum": 5000},
                                             node_id=NODE, deployment_id=DEPLOYMENT)))},
    "/api/tiles/preferred": {"put": op("preferred tile provider of a deployment", ok(OBJ), None,
                                       body(obj(["provider"], provider={"type": "string"}, deployment_id=DEPLOYMENT)), admin=True)},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "ovr-fleet", "version": __version__,
                 "description": "Cloud fleet API of ovr-tele. Every endpoint but /api/health needs an operator (HTTP Basic); "
                                "endpoints marked (admin) need the admin role. Times are ms since the epoch (UTC)."},
        "servers": [{"url": "/"}],
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
        "security": [{"basic": []}],
        "paths": PATHS,
    }
