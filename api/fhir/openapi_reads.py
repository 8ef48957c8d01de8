"""OpenAPI paths of the FHIR REST reads (api/fhir/read_routes.py, routes_fhir_search.py,
routes_fhir_meta.py), merged into the gateway's document by api/app.py."""

from __future__ import annotations

from typing import Any

from api.fhir.erase_routes import erase_paths
from api.fhir.openapi_bulk_export import bulk_export_paths
from api.openapi import ID_PARAM, JSON_TYPES, REQUEST_HEADERS, TYPE_PARAM, _outcome

_ANY = {"schema": {"type": "object", "additionalProperties": True}}
_FORMAT = {"name": "_format", "in": "query", "required": False, "schema": {"type": "string"},
           "description": "json (or application/fhir+json); other formats answer 406."}  # fmt: skip
_VID = {"name": "vid", "in": "path", "required": True, "description": "Version number.",
        "schema": {"type": "string"}}  # fmt: skip
_HISTORY = [{"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
            for n in ("_since", "_at", "_count", "_offset")]  # fmt: skip
_AT = {"name": "_at", "in": "query", "required": False, "schema": {"type": "string"},
       "description": "Point in time (FHIR date): the version current then."}  # fmt: skip
_TEXT = {
    304: "Not modified (If-None-Match / If-Modified-Since).",
    400: "Bad request: unknown or unsupported parameter, bad value or id.",
    401: "No valid bearer token.",
    403: "The token lacks the read scope, or its patient context excludes this type "
    "(AuditEvent is never served to a token with a patient context).",
    404: "Not known (or not in the token's patient compartment).",
    406: "Only JSON is served (Accept, _format).",
    410: "Deleted.",
    413: "The body is larger than CARELOG_MAX_REQUEST_BYTES.",
    415: "A _search body must be application/x-www-form-urlencoded.",
    429: "Rate limit exceeded.",
    503: "No FHIR store on this node yet (`carelog projection` keeps it).",
}


def _read(summary: str, op_id: str, params: list[dict[str, Any]], statuses: tuple[int, ...],
          body: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {t: _ANY for t in JSON_TYPES}}
    }
    for status in statuses:
        responses[str(status)] = (
            {"description": _TEXT[status]} if status == 304 else _outcome(_TEXT[status])
        )
    operation: dict[str, Any] = {
        "summary": summary, "operationId": op_id,
        "description": "Scope: patient/, user/ or system/<Type>.read (v2: r or s). Appends an "
        "AuditEvent to carelog.audit.",
        "security": [{"bearerAuth": ["user/<Type>.read"]}],
        "parameters": [*params, _FORMAT, *REQUEST_HEADERS],
        "responses": responses,
    }  # fmt: skip
    if body is not None:
        operation["requestBody"] = body
    return operation


def fhir_read_paths() -> dict[str, Any]:
    common = (400, 401, 403, 404, 406, 429, 503)
    form = {"required": False, "content": {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "additionalProperties": {"type": "string"}}}}}  # fmt: skip
    meta = {"200": {"description": "OK", "content": {"application/json": _ANY}}}
    cap = {"200": {"description": "OK", "content": {t: _ANY for t in JSON_TYPES}}}
    return {
        "/fhir/metadata": {"get": {"summary": "CapabilityStatement", "operationId": "fhirMetadata",
                                   "security": [], "parameters": [_FORMAT],
                                   "responses": {**cap, "406": _outcome(_TEXT[406])}}},
        "/.well-known/smart-configuration": {"get": {
            "summary": "SMART configuration", "operationId": "smartConfiguration",
            "security": [], "responses": meta}},
        "/fhir/.well-known/smart-configuration": {"get": {
            "summary": "SMART configuration", "operationId": "fhirSmartConfiguration",
            "security": [], "responses": meta}},
        "/fhir/_history": {"get": _read("System history", "fhirHistorySystem", _HISTORY, common)},
        "/fhir/{type}/_history": {"get": _read("Type history", "fhirHistoryType",
                                               [TYPE_PARAM, *_HISTORY], common)},
        "/fhir/{type}/{id}/_history": {"get": _read("Instance history", "fhirHistoryInstance",
                                                    [TYPE_PARAM, ID_PARAM, *_HISTORY], common)},
        "/fhir/{type}/{id}/_history/{vid}": {"get": _read(
            "Read a version", "fhirVread", [TYPE_PARAM, ID_PARAM, _VID], (304, 410, *common))},
        "/fhir/Patient/{id}/$everything": {"get": _read(
            "Patient/$everything", "fhirEverything", [ID_PARAM], (410, *common))},
        "/fhir/{type}/_search": {"post": _read(
            "Search (form body)", "fhirSearchPost", [TYPE_PARAM], (413, 415, *common), form)},
        "/fhir/Subscription/{id}/$status": {"get": _notifier(
            "Subscription $status (backport IG)", "fhirSubscriptionStatus")},
        "/fhir/Subscription/{id}/$get-ws-binding-token": {
            "get": _notifier("Websocket binding token", "fhirSubscriptionTokenGet"),
            "post": _notifier("Websocket binding token", "fhirSubscriptionTokenPost")},
    }  # fmt: skip


def _notifier(summary: str, op_id: str) -> dict[str, Any]:
    """An operation answered by `carelog notifier` (api/fhir/subscription_routes.py)."""
    operation = _read(summary, op_id, [ID_PARAM], (400, 401, 403, 404, 429))
    operation["responses"]["503"] = _outcome("The notifier does not answer; retry later.")
    return operation


def merge_reads(paths: dict[str, Any]) -> dict[str, Any]:
    """`paths` with GET (read, search) added beside the writes of the same templates."""
    reads = {**fhir_read_paths(), **bulk_export_paths(), **erase_paths()}
    out = {**paths, **reads}
    out["/fhir/{type}"] = {**paths.get("/fhir/{type}", {}), "get": _read(
        "Search", "fhirSearch", [TYPE_PARAM], (400, 401, 403, 406, 429, 503))}  # fmt: skip
    out["/fhir/{type}/{id}"] = {**paths.get("/fhir/{type}/{id}", {}), "get": _read(
        "Read", "fhirRead", [TYPE_PARAM, ID_PARAM, _AT], (304, 410, *(400, 401, 403, 404, 406, 429, 503)))}  # fmt: skip
    return out
