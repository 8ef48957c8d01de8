"""FHIR Bulk Data export (Bulk Data Access IG v2), asynchronous, from the FHIR store.

GET    /fhir/$export, /fhir/Patient/$export, /fhir/Group/{id}/$export   kick-off (202)
GET    /fhir/$export-status/{job}       202 + X-Progress while running, 200 + manifest
DELETE /fhir/$export-status/{job}       cancel and delete the files (202)
GET    /fhir/$export-file/{job}/{name}  one NDJSON file (the same token's subject)

Kick-off needs `Prefer: respond-async` and SMART system read scopes (`system/*.read`, or
`system/<Type>.read` for each type exported; without `_type`, the types the token can
read are exported). Tokens with a patient context are refused: bulk export is a system
interaction. Patient level exports every patient's compartment, Group level the
compartments of the Group's Patient members. Parameters: _type, _since (resources last
updated at or after it), _outputFormat (application/fhir+ndjson); _typeFilter and
_elements are refused (400), never ignored. The jobs live in files (api/fhir/bulk_jobs.py) so
every gateway process answers for every job; the manifest names the store snapshot's log
position in `extension.carelog:position` ({"topic:partition": last offset applied}).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from api.errors import BadRequest, Forbidden, GatewayError, json_response
from api.fhir.audit import audit
from api.fhir.bulk_jobs import Job, JobDirectory
from api.fhir.bundles import base_url
from api.fhir.checks import check_id, check_type
from api.fhir.store_handle import store_of
from api.gateway import gateway_of
from api.security.auth import Principal
from api.security.read_access import Gone, NotFound
from api.security.scopes import PSEUDO_TYPES, Need, missing
from projections.fhir_store.bulk_export import Level, compartment_types
from projections.fhir_store.definitions import load_registry
from projections.fhir_store.fhir_dates import DateFormatError, instant_us
from schemas.outcome import Issue, operation_outcome

NDJSON = "application/fhir+ndjson"
_OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
_KICK_OFF_PARAMS = frozenset({"_type", "_since", "_outputFormat"})
_RETRY_AFTER_SECONDS = "2"
_INSTANT = re.compile(r"[0-9-]+T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})")  # date_range checks the rest


class ServerError(GatewayError):
    code = "exception"
    status = 500
    stored_as_rejected = False


def _jobs(request: Request) -> JobDirectory:
    settings = gateway_of(request).settings
    return JobDirectory(settings.bulk_export_root, settings.bulk_export.expire_seconds)


def _checked(request: Request) -> bool:
    return gateway_of(request).guard.verifier is not None


def _readable(principal: Principal, types: list[str], checked: bool) -> list[str]:
    """Those of `types` some system scope of the token reads."""
    if not checked:
        return types
    return [t for t in types if not missing(principal.scopes, [Need(t, "r")])]


def _scope_type(scope: str) -> str:
    context, _, rest = scope.partition("/")
    return rest.rpartition(".")[0] if context == "system" else ""


def _since(value: str) -> int:
    """A FHIR instant (with a time and a zone) as microseconds, else 400."""
    if not _INSTANT.fullmatch(value):
        raise BadRequest(Issue("_since must be an instant with a time zone "
                               "(2024-01-02T03:04:05Z)", code="value", location="_since"))  # fmt: skip
    try:
        return instant_us(value)
    except DateFormatError as exc:
        raise BadRequest(Issue(str(exc), code="value", location="_since")) from None


def _export_types(principal: Principal, asked: list[str], level: Level, checked: bool) -> list[str]:
    """The types to export: those asked (each needs a read scope, else 403), or without
    _type every type the token's system scopes read ([] meaning all of them)."""
    registry = load_registry()  # the definitions the store is checked against when opened
    if level != "system":
        outside = sorted(set(asked) - set(compartment_types(registry)))
        if outside:
            raise BadRequest(Issue(f"{', '.join(outside)} resources are never in a patient's "
                                   "compartment", code="value", location="_type"))  # fmt: skip
    types = sorted(set(asked))
    lacking = sorted(set(types) - set(_readable(principal, types, checked)))
    if lacking:
        raise Forbidden("insufficient scope: exporting " + ", ".join(lacking)
                        + " needs system/<Type>.read or system/*.read")  # fmt: skip
    if not types and checked and missing(principal.scopes, [Need("*", "r")]):
        # Not every type: export those the token names (system/Patient.read...).
        named = sorted({_scope_type(s) for s in principal.scopes} - {"", "*"} - PSEUDO_TYPES)
        if level != "system":
            named = [t for t in named if t in compartment_types(registry)]
        types = _readable(principal, named, checked)
        if not types:
            raise Forbidden("insufficient scope: $export needs system/*.read or "
                            "system/<Type>.read")  # fmt: skip
    return types


async def _kick_off(request: Request, level: Level, group: str | None = None) -> Response:
    gw = gateway_of(request)
    principal = await gw.guard.admit(request)
    checked = _checked(request)
    if principal.patient is not None:
        raise Forbidden("bulk export is a system interaction: a token with a patient context "
                        "cannot start one")  # fmt: skip
    if "respond-async" not in request.headers.get("prefer", ""):
        raise BadRequest(Issue("$export runs asynchronously: send Prefer: respond-async",
                               code="required"))  # fmt: skip
    params = request.query_params
    unknown = sorted(set(params) - _KICK_OFF_PARAMS)
    if unknown:
        raise BadRequest(Issue(f"$export does not support {', '.join(unknown)}; it takes "
                               "_type, _since and _outputFormat", code="not-supported"))  # fmt: skip
    output_format = params.get("_outputFormat", NDJSON)
    if output_format not in _OUTPUT_FORMATS:
        raise BadRequest(Issue(f"_outputFormat {output_format[:64]!r} is not supported; use "
                               f"{NDJSON}", code="not-supported", location="_outputFormat"))  # fmt: skip
    since_us = _since(params["_since"]) if "_since" in params else None
    asked = [t for v in params.getlist("_type") for t in v.split(",") if t]
    for rtype in asked:
        check_type(rtype)
    if group is not None:
        check_id(group)
    types = _export_types(principal, asked, level, checked)
    store = store_of(request).require()  # after the scopes: a 503 tells nothing to strangers
    if group is not None:
        found = store.read("Group", group)
        if found is None:
            raise NotFound(f"Group/{group} is not known")
        if found.deleted:
            raise Gone(f"Group/{group} was deleted")
    jobs = _jobs(request)
    jobs.expire()
    job = jobs.create({
        "owner": principal.subject, "request": str(request.url), "requires_token": checked,
        "request_args": {"level": level, "types": types, "since_us": since_us, "group": group,
                         "max_per_file": gw.settings.bulk_export.file_max_resources},
        "exported": 0,
    })  # fmt: skip
    jobs.start(job, store.path)
    await audit(
        request, principal, "operation", [], f"$export {request.url.path}?{request.url.query}"
    )
    location = f"{base_url(request)}/$export-status/{job.id}"
    body = operation_outcome(Issue(f"export {job.id} started; poll {location}",
                                   code="informational", severity="information"))  # fmt: skip
    return json_response(body, 202, {"Content-Location": location})


async def system_export(request: Request) -> Response:
    """GET /fhir/$export."""
    return await _kick_off(request, "system")


async def patient_export(request: Request) -> Response:
    """GET /fhir/Patient/$export."""
    return await _kick_off(request, "patient")


async def group_export(request: Request) -> Response:
    """GET /fhir/Group/{id}/$export."""
    return await _kick_off(request, "group", request.path_params["id"])


async def _own_job(request: Request) -> tuple[Principal, Job, JobDirectory]:
    """The caller and its job; another client's job is not revealed (404)."""
    principal = await gateway_of(request).guard.admit(request)
    jobs = _jobs(request)
    job = jobs.get(request.path_params["job"])
    if job is None or (_checked(request) and job.status["owner"] != principal.subject):
        raise NotFound("no such export job (finished jobs expire)")
    return principal, job, jobs


def _iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def status(request: Request) -> Response:
    """GET /fhir/$export-status/{job}."""
    _, job, jobs = await _own_job(request)
    state = job.state
    if state == "running":
        progress = f"{job.status['exported']} resources written"
        return Response(status_code=202, headers={"X-Progress": progress,
                                                  "Retry-After": _RETRY_AFTER_SECONDS})  # fmt: skip
    if state == "lost":
        raise ServerError("the export stopped: its process is gone (a restart?); start again")
    if state == "error":
        raise ServerError(*job.status["error"])
    files = f"{base_url(request)}/$export-file/{job.id}"
    manifest = {
        "transactionTime": job.status["transactionTime"] or _iso(job.status["created"]),
        "request": job.status["request"],
        "requiresAccessToken": job.status["requires_token"],
        "output": [{"type": f["type"], "url": f"{files}/{quote(f['file'])}", "count": f["count"]}
                   for f in job.status["output"]],
        "error": [],
        "extension": {"carelog:position": job.status["position"]},
    }  # fmt: skip
    expires = job.status["finished"] + jobs.expire_seconds
    headers = {"Expires": _http_date(expires)}
    return Response(orjson.dumps(manifest), 200, headers, media_type="application/json")


def _http_date(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


async def delete(request: Request) -> Response:
    """DELETE /fhir/$export-status/{job}: stops it if running, deletes its files."""
    _, job, jobs = await _own_job(request)
    jobs.delete(job)
    body = operation_outcome(Issue(f"export {job.id} deleted", code="informational",
                                   severity="information"))  # fmt: skip
    return json_response(body, 202)


async def download(request: Request) -> Response:
    """GET /fhir/$export-file/{job}/{name}."""
    principal, job, _ = await _own_job(request)
    name = request.path_params["name"]
    listed = {f["file"]: f["type"] for f in job.status.get("output", [])}
    if job.state != "done" or name not in listed:  # only listed names: no path escapes
        raise NotFound(f"export {job.id} has no file {name[:80]!r}")
    if _readable(principal, [listed[name]], _checked(request)) != [listed[name]]:
        raise Forbidden(f"insufficient scope: this file holds {listed[name]} resources")
    await audit(request, principal, "operation", [], f"$export-file {job.id}/{name}")
    return FileResponse(job.directory / name, media_type=NDJSON)


routes = [
    Route("/fhir/$export", system_export, methods=["GET"]),
    Route("/fhir/Patient/$export", patient_export, methods=["GET"]),
    Route("/fhir/Group/{id}/$export", group_export, methods=["GET"]),
    Route("/fhir/$export-status/{job}", status, methods=["GET"]),
    Route("/fhir/$export-status/{job}", delete, methods=["DELETE"]),
    Route("/fhir/$export-file/{job}/{name}", download, methods=["GET"]),
]
