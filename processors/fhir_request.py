"""The pieces of a FHIR write request shared by single writes and Bundle entries.

Target type and id, If-Match, conditional create criteria, and the resource body made ready
for the log: the id carelog assigns, server-managed meta removed. Validation is the translate
stage's, as for every format (`processors.validation`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import orjson

from processors.ids import resource_id
from processors.translation import TranslationError
from processors.validation import resource_model
from schemas.outcome import Issue

RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # the R4 id data type
_ETAG = re.compile(r'(?:W/)?"(\d{1,18})"')
# meta elements the server owns: the versioning stage sets them, a client cannot.
_SERVER_META = ("versionId", "lastUpdated")


def fail(diagnostics: str, location: str | None = None, code: str = "invalid") -> TranslationError:
    return TranslationError([Issue(diagnostics, code=code, location=location)])


def parse_json_object(payload: bytes, location: str) -> dict[str, Any]:
    """The JSON object in `payload`, else a TranslationError located at `location`."""
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise fail(f"not valid JSON: {exc}", location, "structure") from None
    if not isinstance(value, dict):
        raise fail("a JSON object (a FHIR resource) is expected", location, "structure")
    return value


def check_type(resource_type: str, location: str) -> None:
    if not RESOURCE_TYPE.fullmatch(resource_type) or resource_model(resource_type) is None:
        raise fail(f"{resource_type[:64]!r} is not a FHIR resource type", location, "not-supported")


def check_id(value: str, location: str) -> None:
    if not FHIR_ID.fullmatch(value):
        raise fail(
            f"{value[:70]!r} is not a valid FHIR id ([A-Za-z0-9-.]{{1,64}})", location, "value"
        )


def parse_if_match(value: Any, location: str) -> int | None:
    """The version an If-Match ETag (W/"3") expects, or None without one."""
    if value is None:
        return None
    match = _ETAG.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise fail(f'{str(value)[:64]!r} is not a version ETag such as W/"3"', location, "value")
    return int(match.group(1))


def conditional_id(resource_type: str, criteria: Any, location: str) -> str:
    """The deterministic id of a conditional create (If-None-Exist / request.ifNoneExist).

    carelog has no store to search when it translates, so it does not look for a match: an
    identifier search `identifier=system|value` gives the id resource_id(type, system,
    value), and running the create again converges on that same resource. Unlike a FHIR
    server, a repeat with different content then updates that resource (a new version)
    instead of leaving the match untouched. Other criteria cannot be made deterministic
    without a search, and are refused rather than turned into a plain create.
    """
    params = parse_qsl(criteria, keep_blank_values=True) if isinstance(criteria, str) else []
    if len(params) == 1 and params[0][0] == "identifier":
        system, bar, value = params[0][1].partition("|")
        if bar and system and value:
            return resource_id(resource_type, system, value)
    raise fail(
        f"conditional create criteria {str(criteria)[:128]!r} not supported: only "
        "'identifier=system|value' is",
        location,
        "not-supported",
    )


def check_body_type(body: Any, resource_type: str, where: str) -> dict[str, Any]:
    """`body` as a resource of `resource_type`, the type the request URL names (what is done
    is read from the URL, so a body of another type is refused, never acted on)."""
    if not isinstance(body, dict):
        raise fail("a FHIR resource (JSON object) is expected", where, "structure")
    if body.get("resourceType") != resource_type:
        raise fail(
            f"resourceType {str(body.get('resourceType'))[:64]!r} does not match "
            f"{resource_type!r}, the type the request URL names",
            f"{where}.resourceType",
        )
    return body


def prepared(body: Any, resource_type: str, new_id: str, where: str) -> dict[str, Any]:
    """A copy of `body` with id `new_id` and no server-managed meta (not yet validated).

    Client meta (profile, tag, security, source) is kept: security labels are clinical
    data. The versioning stage adds versionId and lastUpdated to what remains.
    """
    body = check_body_type(body, resource_type, where)
    resource = {"resourceType": resource_type, "id": new_id}
    resource.update((k, v) for k, v in body.items() if k not in ("resourceType", "id"))
    meta = resource.pop("meta", None)
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in _SERVER_META}
        if kept:
            resource["meta"] = kept
    elif meta is not None:
        resource["meta"] = meta  # not an object: let validation name it
    return resource
