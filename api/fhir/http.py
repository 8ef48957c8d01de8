"""HTTP around FHIR resources: the answer's media type (_format, Accept), ETag and
Last-Modified, and the conditional read (If-None-Match, If-Modified-Since -> 304)."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response

from api.errors import NotAcceptable
from api.negotiation import negotiate
from projections.fhir_store import StoredResource

ANSWER_TYPES = ("application/fhir+json", "application/json")
# _format values (FHIR R4 3.1.0.1.10) that ask for JSON; anything else is not served.
_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}


def answer_type(request: Request) -> str:
    """application/fhir+json (or application/json) as _format or Accept allow, else 406."""
    wanted = request.query_params.get("_format")
    if wanted is not None:
        if wanted.strip().lower().split(";")[0] not in _JSON_FORMATS:
            raise NotAcceptable(f"_format {wanted[:64]!r} is not served; this server answers "
                                "JSON (_format=json)")  # fmt: skip
        return ANSWER_TYPES[0]
    return negotiate(request, ANSWER_TYPES)


def etag(version: int) -> str:
    return f'W/"{version}"'


def http_date(moment: datetime) -> str:
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def version_headers(resource: StoredResource) -> dict[str, str]:
    return {"ETag": etag(resource.version), "Last-Modified": http_date(resource.last_updated)}


def not_modified(request: Request, resource: StoredResource) -> bool:
    """True when the client's copy is current (If-None-Match wins over If-Modified-Since)."""
    none_match = request.headers.get("if-none-match")
    if none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in none_match.split(",")}
        return "*" in tags or f'"{resource.version}"' in tags
    since = request.headers.get("if-modified-since")
    if since is not None:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if when.tzinfo is None:
            return False
        return resource.last_updated.replace(microsecond=0) <= when
    return False


def resource_response(
    request: Request,
    resource: StoredResource,
    media: str,
    status: int = 200,
    extra: dict[str, str] | None = None,
) -> Response:
    """The stored JSON as is (byte for byte from the log), with its version headers."""
    headers = {**version_headers(resource), **(extra or {})}
    if status == 200 and not_modified(request, resource):
        return Response(status_code=304, headers=headers)
    return Response(resource.json, status, headers, media_type=media)
