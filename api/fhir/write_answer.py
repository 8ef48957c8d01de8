"""The answer to a FHIR write once the wait is over (api/fhir/write_wait.py).

Single writes: 201 (created) or 200 (updated, unchanged, or a conditional create that found
its match) with Location
(.../Type/id/_history/n), ETag and Last-Modified and the resource (Prefer: return=minimal
leaves the body out, return=OperationOutcome sends one); a delete answers 204. A Bundle
answers a transaction-response (or batch-response) with one entry per request entry. A
write refused downstream answers the OperationOutcome the processors recorded: 412 for a
stale If-Match (stage "version", issue "conflict"), 500 for a processor failure
("exception"), 400 for what cannot be read ("structure", "not-supported"), else 422.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from starlette.requests import Request
from starlette.responses import Response

from api.errors import FHIR_JSON, json_response
from api.fhir.bundles import base_url
from api.fhir.http import version_headers
from api.fhir.write_targets import Target
from api.fhir.write_wait import Applied
from projections.fhir_store import Rejection, StoredResource
from schemas.outcome import Issue, operation_outcome

_BAD_REQUEST = {"structure", "not-supported", "too-long"}


def rejection_status(rejection: Rejection) -> int:
    try:
        codes = {i.get("code") for i in orjson.loads(rejection.operation_outcome).get("issue", [])}
    except (orjson.JSONDecodeError, AttributeError):
        codes = set()
    if rejection.stage == "version" and "conflict" in codes:
        return 412
    if "exception" in codes:
        return 500
    return 400 if codes & _BAD_REQUEST or rejection.stage == "decode" else 422


def refused(rejection: Rejection, event_id: str) -> Response:
    return Response(rejection.operation_outcome, rejection_status(rejection),
                    {"X-Event-Id": event_id}, media_type=FHIR_JSON)  # fmt: skip


def _status(target: Target, stored: StoredResource | None, changed: bool) -> int:
    if target.method == "DELETE":
        return 204
    return 201 if changed and stored is not None and stored.version == 1 else 200


def _location(request: Request, stored: StoredResource) -> str:
    return f"{base_url(request)}/{stored.key}/_history/{stored.version}"


def single(request: Request, target: Target, applied: Applied, event_id: str | None,
           media: str, readable: bool = True) -> Response:  # fmt: skip
    """The answer to one write; `event_id` None when nothing was appended (a conditional
    create that matched), `readable` False leaves the resource out (as return=minimal)."""
    stored, changed = applied.results[0]
    status = _status(target, stored, changed)
    headers = {"X-Event-Id": event_id} if event_id is not None else {}
    if stored is not None:
        headers.update(version_headers(stored))
        if not stored.deleted:
            headers["Location"] = _location(request, stored)
    if status == 204 or stored is None or stored.deleted:
        return Response(status_code=204 if status == 204 else status, headers=headers)
    prefer = request.headers.get("prefer", "")
    if "return=minimal" in prefer or not readable:
        return Response(status_code=status, headers=headers)
    if "return=OperationOutcome" in prefer:
        what = "created" if status == 201 else "updated" if changed else "unchanged"
        body = operation_outcome(Issue(f"{stored.key} {what}: version {stored.version}",
                                       code="informational", severity="information"))  # fmt: skip
        response = json_response(body, status, headers)
    else:
        response = Response(stored.json, status, headers, media_type=FHIR_JSON)
    response.headers["content-type"] = media
    return response


def bundle(request: Request, kind: str, targets: Sequence[Target | None], applied: Applied,
           event_id: str, media: str) -> Response:  # fmt: skip
    found = iter(applied.results)
    entries: list[dict[str, object]] = []
    for target in targets:
        if target is None:
            entries.append({"response": {"status": "400"}})
            continue
        stored, changed = next(found)
        response: dict[str, object] = {"status": str(_status(target, stored, changed))}
        if stored is not None:
            response["etag"] = f'W/"{stored.version}"'
            response["lastModified"] = stored.last_updated.isoformat()
            if not stored.deleted:
                response["location"] = _location(request, stored)
        entries.append({"response": response})
    body = {"resourceType": "Bundle", "type": f"{kind}-response", "entry": entries}
    answer = json_response(body, 200, {"X-Event-Id": event_id})
    answer.headers["content-type"] = media
    return answer
