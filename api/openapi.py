"""The OpenAPI 3.1 document of the gateway, written out rather than inferred, so that every
status a route can answer, and the scope it needs, is stated where clients read it.

Other route modules add their operations through `extra_paths` (see api/app.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.devices import routes as routes_devices
from api.fhir import write_routes as routes_fhir
from api.hl7v2 import routes as routes_hl7v2
from schemas.device_batch import DeviceBatch

JSON_TYPES = ("application/fhir+json", "application/json")
OUTCOME = {"$ref": "#/components/schemas/OperationOutcome"}


def _outcome(description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {t: {"schema": OUTCOME} for t in JSON_TYPES},
    }
    if headers:
        response["headers"] = dict(headers)
    return response


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                               "schema": {"type": "string"}}}  # fmt: skip
WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "Bearer challenge (RFC 6750).",
                                         "schema": {"type": "string"}}}  # fmt: skip
ALLOW = {"Allow": {"description": "The methods this resource takes.",
                   "schema": {"type": "string"}}}  # fmt: skip
X_EVENT_ID = {"X-Event-Id": {"description": "Id of the InboundMessage event appended.",
                             "schema": {"type": "string", "format": "uuid"}}}  # fmt: skip
REQUEST_HEADERS = [
    {"name": "X-Request-ID", "in": "header", "required": False,
     "description": "Correlation id: echoed, carried into the event; generated when absent.",
     "schema": {"type": "string", "pattern": "^[A-Za-z0-9._:@+=/-]{1,128}$"}},
]  # fmt: skip
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Sender's key for this write; lets processors drop resends.",
    "schema": {"type": "string", "maxLength": 256},
}  # fmt: skip


def _refusals(*statuses: int) -> dict[str, Any]:
    texts = {
        400: ("The content is not acceptable as sent; kept on carelog.rejected.", None),
        401: ("No valid bearer token.", WWW_AUTHENTICATE),
        403: ("The token lacks the scope this request needs.", WWW_AUTHENTICATE),
        406: ("The Accept header allows no type this route answers with.", None),
        413: ("The body is larger than CARELOG_MAX_REQUEST_BYTES.", None),
        415: ("Content-Type not accepted; the body is kept on carelog.rejected.", None),
        422: ("The body fails the schema; kept on carelog.rejected.", None),
        429: ("Rate limit exceeded.", RETRY_AFTER),
        503: ("Kafka did not confirm: nothing was stored, retry later.", RETRY_AFTER),
    }
    return {str(s): _outcome(*texts[s]) for s in statuses}


def _hl7_operation() -> dict[str, Any]:
    er7 = {"schema": {"type": "string", "description": "HL7 v2 ER7, segments ended by CR."}}
    ack = {t: er7 for t in routes_hl7v2.CONTENT_TYPES}

    def answer(description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"description": description, "content": ack}
        if headers:
            out["headers"] = dict(headers)
        return out

    return {
        "post": {
            "summary": "Ingest HL7 v2 messages (one, several, or an FHS/BHS batch)",
            "description": "Each message is frame-checked (MSH-9, MSH-10, MSH-12 present) and "
            "appended as one InboundMessage with its exact bytes; idempotency key MSH-10. The "
            "answer is one ACK per message (batch-wrapped when the request was). "
            "Scope: `system/hl7v2.write`.",
            "operationId": "ingestHl7v2",
            "security": [{"bearerAuth": ["system/hl7v2.write"]}],
            "parameters": REQUEST_HEADERS,
            "requestBody": {"required": True, "content": ack},
            "responses": {
                "200": answer("Every message stored: ACK AA."),
                "400": answer("Some message refused (AR, with ERR); kept on carelog.rejected."),
                "401": answer("No valid bearer token (AR).", WWW_AUTHENTICATE),
                "403": answer("Token lacks system/hl7v2.write (AR).", WWW_AUTHENTICATE),
                "406": answer("The Accept header allows no HL7 v2 type (AR)."),
                "413": answer("Body larger than CARELOG_MAX_REQUEST_BYTES (AR)."),
                "415": answer("Content-Type not accepted (AR); kept on carelog.rejected."),
                "429": answer("Rate limit exceeded (AE).", RETRY_AFTER),
                "503": answer("Kafka did not confirm (AE): not stored, retry.", RETRY_AFTER),
            },
        }
    }


def _fhir_write(
    summary: str, op_id: str, scope: str, body: bool, params: list[dict[str, Any]]
) -> dict[str, Any]:
    conditional = [
        {"name": h, "in": "header", "required": False, "schema": {"type": "string"},
         "description": why}
        for h, why in (
            ("If-Match", 'W/"n": the version to replace (412 when it is not the current one).'),
            ("If-None-Exist", "Conditional create (POST): search criteria such as "
             "identifier=system|value; one match answers 200 with it and writes nothing, "
             "several answer 412."),
            ("If-None-Match", "*: create only; 412 when the resource exists."),
            ("Prefer", "respond-async (202 at once), return=minimal|representation|"
             "OperationOutcome."),
        )
    ]  # fmt: skip
    append_only = {} if op_id == "fhirCreate" else {"405": _outcome(
        "AuditEvent is append-only: an update, a delete or a Bundle entry writing one is "
        "refused whatever the token holds.", ALLOW)}  # fmt: skip
    operation: dict[str, Any] = {
        "summary": summary,
        "description": "Appended as an InboundMessage (format fhir) carrying the method, path "
        "and conditional headers; applied downstream. Answered once the FHIR store shows it "
        "(201/200/204 with Location and ETag, a transaction-response), with the downstream "
        "rejection (400/412/422), or 202 (Prefer: respond-async, or not shown in time). "
        f"Scope: `{scope}` or `system/*.write` (SMART v2 letters c/u/d accepted), for the "
        "type the URL names (a Bundle entry: its request.url). AuditEvent is append-only: "
        "created only with `system/audit.write`, which no FHIR write scope grants; an "
        "update, a delete or a Bundle entry writing one answers 405.",
        "operationId": op_id,
        "security": [{"bearerAuth": [scope]}],
        "parameters": [*params, *REQUEST_HEADERS, IDEMPOTENCY_KEY, *conditional],
        "responses": {
            "200": {"description": "Updated or unchanged (a Bundle: its response)."},
            "201": {"description": "Created; Location names the version."},
            "204": {"description": "Deleted."},
            "202": _outcome("Accepted: on the log; X-Event-Id names the event.", X_EVENT_ID),
            **_refusals(400, 401, 403, 406, 413, 415, 422, 429, 503),
            "412": _outcome(
                "If-Match names a version that is not the current one, "
                "If-None-Match: * met an existing resource, or If-None-Exist "
                "matched several."
            ),
            **append_only,
            "500": _outcome("A processor failed on this write (kept on carelog.rejected)."),
        },
    }
    if body:
        schema = {
            "$ref": "#/components/schemas/Bundle"
            if op_id == "fhirBundle"
            else "#/components/schemas/Resource"
        }
        operation["requestBody"] = {
            "required": True,
            "content": {t: {"schema": schema} for t in routes_fhir.CONTENT_TYPES},
        }
    return operation


TYPE_PARAM = {"name": "type", "in": "path", "required": True, "description": "FHIR resource type.",
              "schema": {"type": "string", "pattern": "^[A-Z][A-Za-z]{1,63}$"}}  # fmt: skip
ID_PARAM = {"name": "id", "in": "path", "required": True, "description": "FHIR resource id.",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"}}  # fmt: skip


def _device_operation() -> dict[str, Any]:
    accepted = {
        "type": "object", "required": ["status", "eventId", "topic", "readings"],
        "properties": {"status": {"const": "accepted"}, "eventId": {"type": "string"},
                       "topic": {"type": "string"}, "readings": {"type": "integer"}},
    }  # fmt: skip
    return {
        "post": {
            "summary": "Ingest a batch of device readings",
            "description": "The batch is schema-checked and appended whole as one InboundMessage "
            "(format device). Scope: `system/device.write`.",
            "operationId": "ingestDeviceReadings",
            "security": [{"bearerAuth": ["system/device.write"]}],
            "parameters": [*REQUEST_HEADERS, IDEMPOTENCY_KEY],
            "requestBody": {"required": True, "content": {
                t: {"schema": {"$ref": "#/components/schemas/DeviceBatch"}}
                for t in routes_devices.CONTENT_TYPES}},
            "responses": {
                "202": {"description": "Accepted: on the log.", "headers": X_EVENT_ID,
                        "content": {t: {"schema": accepted} for t in routes_devices.ANSWER_TYPES}},
                **_refusals(400, 401, 403, 406, 413, 415, 422, 429, 503),
            },
        }
    }  # fmt: skip


def _probe(
    summary: str, op_id: str, content: dict[str, Any], extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    responses = {"200": {"description": "OK", "content": content}, **(extra or {})}
    return {
        "get": {"summary": summary, "operationId": op_id, "security": [], "responses": responses}
    }


def _schemas() -> dict[str, Any]:
    device = DeviceBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = device.pop("$defs", {})
    issue = {
        "type": "object", "required": ["severity", "code"],
        "properties": {
            "severity": {"enum": ["fatal", "error", "warning", "information"]},
            "code": {"type": "string"}, "diagnostics": {"type": "string"},
            "location": {"type": "array", "items": {"type": "string"}},
            "expression": {"type": "array", "items": {"type": "string"}},
        },
    }  # fmt: skip
    return {
        "OperationOutcome": {
            "type": "object", "required": ["resourceType", "issue"],
            "properties": {"resourceType": {"const": "OperationOutcome"},
                           "issue": {"type": "array", "minItems": 1, "items": issue}},
        },
        "Resource": {
            "type": "object", "required": ["resourceType"], "additionalProperties": True,
            "properties": {"resourceType": {"type": "string"}, "id": {"type": "string"}},
        },
        "Bundle": {
            "type": "object", "required": ["resourceType", "type"], "additionalProperties": True,
            "properties": {
                "resourceType": {"const": "Bundle"}, "type": {"enum": ["transaction", "batch"]},
                "entry": {"type": "array", "items": {"type": "object", "properties": {
                    "resource": {"$ref": "#/components/schemas/Resource"},
                    "request": {"type": "object", "required": ["method", "url"], "properties": {
                        "method": {"enum": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]},
                        "url": {"type": "string"}}}}}},
            },
        },
        "DeviceBatch": device,
        **defs,
    }  # fmt: skip


def openapi_document(extra_paths: Mapping[str, Any] | None = None) -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    paths: dict[str, Any] = {
        "/hl7v2": _hl7_operation(),
        "/fhir": {"post": _fhir_write("Transaction or batch Bundle", "fhirBundle",
                                      "system/<Type>.write per entry", True, [])},
        "/fhir/{type}": {"post": _fhir_write("Create a resource", "fhirCreate",
                                             "system/<Type>.write", True, [TYPE_PARAM])},
        "/fhir/{type}/{id}": {
            "put": _fhir_write("Update a resource", "fhirUpdate", "system/<Type>.write", True,
                               [TYPE_PARAM, ID_PARAM]),
            "delete": _fhir_write("Delete a resource (empty payload)", "fhirDelete",
                                  "system/<Type>.write", False, [TYPE_PARAM, ID_PARAM]),
        },
        "/devices/readings": _device_operation(),
        "/healthz": _probe("Liveness: the process answers", "healthz", text),
        "/readyz": _probe("Readiness: Kafka reachable (cached ~1 s)", "readyz", text,
                          {"503": {"description": "Kafka unreachable", "content": text}}),
        "/metrics": _probe("Prometheus metrics", "metrics", text),
        "/openapi.json": _probe("This document", "openapi",
                                {"application/json": {"schema": {"type": "object"}}}),
        **(extra_paths or {}),
    }  # fmt: skip
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "carelog gateway",
            "version": "1",
            "description": "Ingest HL7 v2, FHIR R4 writes and device readings into carelog's "
            "Kafka log. Every success is answered only after the broker confirmed (acks=all).",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                               "description": "OAuth 2.0 access token with SMART system scopes."},
            },
            "schemas": _schemas(),
        },
    }  # fmt: skip
