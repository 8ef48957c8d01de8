"""FHIR REST writes to the log: create, update, delete, and transaction or batch Bundles.

The gateway appends the request as it came (body bytes, "http.method", "http.path",
optional "http.if-match", "http.if-none-exist", "http.prefer"); this pure function says
which resources it writes. Prefer only shapes the HTTP answer and is ignored here.

- POST /fhir/{type}: create; any client id is ignored (FHIR R4 3.1.0.7) and the id is
  resource_id(type, event_id), so replaying the event recreates the same resource.
  With If-None-Exist the id derives from the criteria (or is the one the gateway resolved)
  and the create is create-only: an existing resource is left as it is (see
  `fhir_request.conditional_id`).
- PUT /fhir/{type}/{id}: update, or create with the client's id; a body id must match.
- DELETE /fhir/{type}/{id}: operation "delete".
- PUT or DELETE of an AuditEvent: refused, it is append-only (processors/append_only.py).
- POST /fhir: a transaction or batch Bundle (`fhir_bundle`).

If-Match W/"n" travels as `if_match` for the versioning stage, If-None-Match: * as
`if_match` 0 (the resource must not exist). business_time is None: a
REST write states no time of its own; the event's received time stands in for it.
"""

from __future__ import annotations

from typing import Any, Literal

from processors.append_only import check_appendable
from processors.fhir_bundle import translate_bundle
from processors.fhir_request import (
    check_id,
    check_type,
    conditional_target,
    fail,
    parse_json_object,
    parse_preconditions,
    parse_resolved_ids,
    prepared,
)
from processors.ids import resource_id
from processors.translation import TranslatedResource, Translation

MAPPING_VERSION = "fhir-input/1.0.0"
_BASE = "/fhir"


def translate_fhir(payload: bytes, headers: dict[str, str], event_id: str) -> Translation:
    """The resources a FHIR write request creates, updates or deletes.

    Raises:
        TranslationError: the request is invalid; issues name the FHIRPath or the request
            header at fault. The resources are validated by the translate stage.
    """
    method = headers.get("http.method", "").upper()
    path = headers.get("http.path", "")
    if not (path == _BASE or path.startswith(_BASE + "/")):
        raise fail(f"{path[:128]!r} is not under {_BASE}", "http.path", "not-supported")
    if headers.get("http.query"):
        raise fail(
            "conditional update and delete (search parameters in the URL) are not supported",
            "http.query",
            "not-supported",
        )
    parts = [p for p in path[len(_BASE) :].split("/") if p]
    if_match = parse_preconditions(
        headers.get("http.if-match"), headers.get("http.if-none-match"), "http."
    )
    if method == "POST" and not parts:
        return translate_bundle(payload, event_id, MAPPING_VERSION, parse_resolved_ids(headers))
    if method == "POST" and len(parts) == 1:
        check_type(parts[0], "http.path")
        criteria = headers.get("http.if-none-exist")
        new_id = resource_id(parts[0], event_id)
        if criteria is not None:
            resolved = parse_resolved_ids(headers).get(0)
            new_id = conditional_target(parts[0], criteria, "http.if-none-exist", resolved, new_id)
        body = parse_json_object(payload, parts[0])
        resource = prepared(body, parts[0], new_id, parts[0])
        return _one(resource, "upsert", if_match, if_none_exist=criteria is not None)
    if method in ("PUT", "DELETE") and len(parts) == 2:
        resource_type, target_id = parts
        check_type(resource_type, "http.path")
        check_id(target_id, "http.path")
        check_appendable(method, resource_type, "http.method")
        if method == "DELETE":
            return _one({"resourceType": resource_type, "id": target_id}, "delete", if_match)
        body = parse_json_object(payload, resource_type)
        if "id" in body and body["id"] != target_id:
            raise fail("the resource id must equal the id in the URL", f"{resource_type}.id")
        return _one(prepared(body, resource_type, target_id, resource_type), "upsert", if_match)
    raise fail(
        f"{method} {path[:128]} is not a FHIR write carelog accepts", "http.path", "not-supported"
    )


def _one(
    resource: dict[str, Any],
    operation: Literal["upsert", "delete"],
    if_match: int | None,
    if_none_exist: bool = False,
) -> Translation:
    item = TranslatedResource(resource, operation, if_match, if_none_exist=if_none_exist)
    return Translation([item], None, MAPPING_VERSION)
