"""Frame checks of FHIR writes: is it a JSON resource of the type the URL names (Bundles:
api/fhir/write_requests.py). Validation proper happens downstream, in processors/fhir."""

from __future__ import annotations

import re
from typing import Any

import orjson

from api.errors import BadRequest
from schemas.outcome import Issue

RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
RESOURCE_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # FHIR R4 id datatype


def _bad(diagnostics: str, location: str | None = None, code: str = "invalid") -> BadRequest:
    return BadRequest(Issue(diagnostics, code=code, location=location))


def check_type(resource_type: str) -> None:
    if not RESOURCE_TYPE.fullmatch(resource_type):
        raise _bad(f"{resource_type[:64]!r} is not a FHIR resource type", code="not-supported")


def check_id(resource_id: str) -> None:
    if not RESOURCE_ID.fullmatch(resource_id):
        raise _bad("the id in the URL is not a valid FHIR id ([A-Za-z0-9-.]{1,64})", code="value")


def parse_resource(body: bytes) -> dict[str, Any]:
    """The JSON object of a resource with a resourceType, else 400."""
    if not body.strip():
        raise _bad(
            "the request body is empty; a FHIR resource in JSON is expected", code="required"
        )
    try:
        resource = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"the body is not valid JSON: {exc}", code="structure") from None
    if not isinstance(resource, dict):
        raise _bad("the body must be a JSON object (a FHIR resource)", code="structure")
    if not isinstance(resource.get("resourceType"), str):
        raise _bad("resourceType is missing", "resourceType", code="required")
    return resource


def check_resource(
    resource: dict[str, Any], resource_type: str, resource_id: str | None = None
) -> None:
    """The body matches the URL: same resourceType, and for an update the same id."""
    if resource["resourceType"] != resource_type:
        raise _bad(f"resourceType {resource['resourceType'][:64]!r} does not match the URL "
                   f"type {resource_type!r}", "resourceType")  # fmt: skip
    if resource_id is not None and resource.get("id") != resource_id:
        raise _bad("the resource id must equal the id in the URL", "id")
