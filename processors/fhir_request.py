"""The pieces of a FHIR write request shared by single writes and Bundle entries.

Target type and id, If-Match / If-None-Match: *, conditional create criteria, and the
resource body made ready for the log: the id carelog assigns, server-managed meta removed.
Validation is the translate stage's, as for every format (`processors.validation`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

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
# Search result parameters: they shape a search's answer, not which resources match.
RESULT_PARAMS = frozenset({"_count", "_offset", "_sort", "_include", "_revinclude", "_summary",
                           "_elements", "_total", "_contained", "_containedType", "_format",
                           "_pretty"})  # fmt: skip
# Event header set by the gateway only (never copied from a client): {entry index (0 for
# POST /fhir/{type}): id} of the conditional creates it resolved: the id of the one resource
# the criteria matched, or "" when the criteria's own id is held by a resource that does
# not match them (the create then takes the id a plain create gets).
IDS_HEADER = "carelog.if-none-exist.ids"


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


def parse_preconditions(if_match: Any, if_none_match: Any, where: str) -> int | None:
    """The version a write expects: If-Match's, 0 for If-None-Match: * (no current one).

    `where` is the location prefix of the two ("http." for headers, "...request." in a
    Bundle entry); a refusal names the field at fault.
    """
    headers = where == "http."
    expected = parse_if_match(if_match, where + ("if-match" if headers else "ifMatch"))
    if if_none_match is None:
        return expected
    location = where + ("if-none-match" if headers else "ifNoneMatch")
    if not (isinstance(if_none_match, str) and if_none_match.strip() == "*"):
        raise fail(f"If-None-Match {str(if_none_match)[:64]!r} on a write: only '*' (create "
                   "only if the resource does not exist) is supported", location, "not-supported")  # fmt: skip
    if expected is not None:
        raise fail("If-Match and If-None-Match: * contradict each other: send one", location)
    return 0


def criteria_params(criteria: Any, location: str) -> list[tuple[str, str]]:
    """The search parameters of conditional create criteria (If-None-Exist, ifNoneExist).

    Each must be name=value with both present; result parameters (_count, _sort, ...) shape
    an answer, not which resources match, and are refused.
    """
    params = parse_qsl(criteria, keep_blank_values=True) if isinstance(criteria, str) else []
    bad = [n for n, v in params if not n or not v or n.split(":")[0] in RESULT_PARAMS]
    if not params or bad:
        raise fail(
            f"conditional create criteria {str(criteria)[:128]!r} select nothing: expected "
            "search parameters such as 'identifier=system|value' (each name=value; no "
            "result parameters such as _count or _sort)",
            location,
            "not-supported",
        )
    return params


def conditional_id(resource_type: str, criteria: Any, location: str) -> str:
    """The deterministic id of a conditional create (If-None-Exist / request.ifNoneExist).

    The gateway searches its store replica for a match first (1 match: nothing is written;
    more: 412). Without one the create gets an id derived from the criteria, and the
    versioning stage makes it create-only, so concurrent identical requests converge on
    one resource with one version: `identifier=system|value` gives resource_id(type,
    system, value) (the id the other channels give that identifier), any other criteria
    resource_id(type, "?" + the parameters sorted and URL-encoded).
    api/fhir/write_targets.py repeats this rule for the gateway (a test proves them equal).
    """
    params = criteria_params(criteria, location)
    if len(params) == 1 and params[0][0] == "identifier":
        system, bar, value = params[0][1].partition("|")
        if bar and system and value:
            return resource_id(resource_type, system, value)
    return resource_id(resource_type, "?" + urlencode(sorted(params)))


def conditional_target(resource_type: str, criteria: Any, location: str,
                       resolved: str | None, plain_id: str) -> str:  # fmt: skip
    """The id of a conditional create: the one the gateway resolved it to (IDS_HEADER; ""
    gives `plain_id`), else the criteria's own (`conditional_id`, which checks them)."""
    own = conditional_id(resource_type, criteria, location)
    if resolved is None:
        return own
    return resolved or plain_id


def parse_resolved_ids(headers: dict[str, str]) -> dict[int, str]:
    """{entry index: id or ""} of the conditional creates the gateway resolved."""
    raw = headers.get(IDS_HEADER)
    if raw is None:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k.isdigit() and isinstance(v, str) and FHIR_ID.fullmatch(v or "x")
        for k, v in value.items()
    ):
        raise fail('expected a JSON object {"entry index": "id" or ""}', IDS_HEADER, "structure")
    return {int(k): v for k, v in value.items()}


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
