"""FHIR operation `POST /fhir/Patient/{id}/$erase`: the right to erasure over HTTP.

It does what `carelog erase` does (api/erasure/erase.py): shreds the patient's data keys, purges
the FHIR store and the lake, and appends an AuditEvent of the request. It needs its own scope,
`system/erase.write`: no FHIR scope, not even `system/*.*`, grants it. The body is a FHIR
Parameters resource with a `reason` (valueString, required). The answer (200) is a Parameters
resource whose `report` part holds what was erased where, as JSON.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.errors import BadRequest, Forbidden, GatewayError, json_response
from api.fhir.checks import check_id
from api.gateway import gateway_of
from api.openapi import ID_PARAM, REQUEST_HEADERS, _outcome
from api.security.scopes import ERASE, Need
from schemas.outcome import Issue


class EraseRefused(GatewayError):
    status = 409
    code = "business-rule"
    stored_as_rejected = False


def _reason(body: bytes) -> str:
    try:
        parameters = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise BadRequest(Issue(f"the body is not JSON: {exc}", code="structure")) from None
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise BadRequest(Issue("$erase takes a Parameters resource", code="structure"))
    for part in parameters.get("parameter") or []:
        if isinstance(part, dict) and part.get("name") == "reason":
            reason = part.get("valueString")
            if isinstance(reason, str) and reason.strip():
                return reason.strip()[:1024]
    raise BadRequest(Issue("$erase needs a parameter `reason` (valueString): why the patient "
                           "is erased, kept in the AuditEvent", code="required",
                           location="Parameters.parameter"))  # fmt: skip


async def erase(request: Request) -> Response:
    from api.erasure.erase import ErasureError, erase_patient  # deltalake loads only when erasing

    gw = gateway_of(request)
    principal = await gw.guard.admit(request)
    gw.guard.require(principal, [Need(ERASE, "c")])
    if principal.patient is not None:
        raise Forbidden("$erase is a system operation: a token with a patient context cannot")
    patient_id = request.path_params["id"]
    check_id(patient_id)
    reason = _reason(await request.body())
    try:
        report = await asyncio.to_thread(
            erase_patient, gw.settings, patient_id, reason, principal.subject
        )
    except ErasureError as exc:
        raise EraseRefused(str(exc)) from None
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "request", "valueString": report.request_id},
            {"name": "report", "valueString": orjson.dumps(report.as_json()).decode()},
        ],
    }
    return json_response(body, 200)


routes = [Route("/fhir/Patient/{id}/$erase", erase, methods=["POST"])]


def erase_paths() -> dict[str, Any]:
    """The OpenAPI path of $erase, merged with the FHIR reads (api/fhir/openapi_reads.py)."""
    parameters = {"application/fhir+json": {"schema": {"type": "object", "description": (
        "Parameters with `reason` (valueString): why the patient is erased, kept in the "
        "AuditEvent.")}}}  # fmt: skip
    report = {"application/fhir+json": {"schema": {"type": "object", "description": (
        "Parameters: `request` (the erasure's id) and `report` (JSON: what was erased "
        "where).")}}}  # fmt: skip
    operation = {
        "summary": "Erase a patient: shred their keys, purge the FHIR store and the lake",
        "operationId": "erasePatient",
        "description": "Scope: system/erase.write (no other scope grants it); a token with a "
        "patient context is refused. Runs to its end before answering (docs/privacy.md).",
        "security": [{"bearerAuth": ["system/erase.write"]}],
        "parameters": [ID_PARAM, *REQUEST_HEADERS],
        "requestBody": {"required": True, "content": parameters},
        "responses": {
            "200": {"description": "Erased; the report says what, where.", "content": report},
            "400": _outcome("No Parameters body, or no `reason`."),
            "401": _outcome("No valid bearer token."),
            "403": _outcome("The token lacks system/erase.write, or has a patient context."),
            "409": _outcome(
                "The erasure could not finish (OperationOutcome names why); "
                "running it again is safe."
            ),
            "429": _outcome("Rate limit exceeded."),
        },
    }
    return {"/fhir/Patient/{id}/$erase": {"post": operation}}
