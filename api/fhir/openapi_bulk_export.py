"""OpenAPI paths of Bulk Data $export (api/fhir/bulk_export_routes.py), merged into the gateway's
document with the FHIR reads (api/fhir/openapi_reads.py)."""

from __future__ import annotations

from typing import Any

from api.openapi import ID_PARAM, REQUEST_HEADERS, _outcome

_STRING = {"type": "string"}
_KICK_OFF_PARAMS = [
    {"name": "Prefer", "in": "header", "required": True, "schema": {"const": "respond-async"},
     "description": "Required: the export runs asynchronously."},
    {"name": "_type", "in": "query", "required": False, "schema": _STRING,
     "description": "Comma-separated resource types (default: every type the token reads)."},
    {"name": "_since", "in": "query", "required": False, "schema": _STRING,
     "description": "Only resources last updated at or after this instant."},
    {"name": "_outputFormat", "in": "query", "required": False, "schema": _STRING,
     "description": "application/fhir+ndjson (the only format)."},
]  # fmt: skip
_JOB = {"name": "job", "in": "path", "required": True, "schema": _STRING,
        "description": "The export job (from the kick-off's Content-Location)."}  # fmt: skip
_FILE = {"name": "name", "in": "path", "required": True, "schema": _STRING,
         "description": "A file named in the manifest."}  # fmt: skip
_SCOPE = ("Scope: system/*.read, or system/<Type>.read for each type exported (v2: r); a "
          "token with a patient context is refused.")  # fmt: skip
_TEXT = {
    400: "Bad request: no Prefer: respond-async, an unsupported parameter (_typeFilter, "
    "_elements...) or value, a type outside the patient compartment.",
    401: "No valid bearer token.",
    403: "The token lacks a system read scope for a type asked, or has a patient context.",
    404: "No such job (another client's, deleted or expired), group or file.",
    410: "The Group was deleted.",
    429: "Rate limit exceeded.",
    500: "The export failed (OperationOutcome names why).",
    503: "No FHIR store on this node yet (`carelog projection` keeps it).",
}


def _answers(ok: dict[str, Any], statuses: tuple[int, ...]) -> dict[str, Any]:
    return {**ok, **{str(s): _outcome(_TEXT[s]) for s in statuses}}


def _kick_off(summary: str, op_id: str, params: list[dict[str, Any]],
              statuses: tuple[int, ...]) -> dict[str, Any]:  # fmt: skip
    started = _outcome("Started: poll the Content-Location.",
                       {"Content-Location": {"schema": _STRING}})  # fmt: skip
    return {"summary": summary, "operationId": op_id, "description": _SCOPE,
            "security": [{"bearerAuth": ["system/*.read"]}],
            "parameters": [*params, *_KICK_OFF_PARAMS, *REQUEST_HEADERS],
            "responses": _answers({"202": started}, statuses)}  # fmt: skip


def bulk_export_paths() -> dict[str, Any]:
    common = (400, 401, 403, 429, 503)
    owner = "The token of the client that started the job (same subject)."
    running = {"description": "Running.", "headers": {"X-Progress": {"schema": _STRING},
                                                      "Retry-After": {"schema": _STRING}}}  # fmt: skip
    manifest = {"description": "Done: the manifest (output files, transactionTime, "
                "extension.carelog:position = the log position of the snapshot).",
                "content": {"application/json": {"schema": {"type": "object"}}}}  # fmt: skip
    ndjson = {"description": "The NDJSON file.",
              "content": {"application/fhir+ndjson": {"schema": _STRING}}}  # fmt: skip
    deleted = _outcome("Deleted (stopped if running).")
    job = [_JOB, *REQUEST_HEADERS]
    return {
        "/fhir/$export": {"get": _kick_off("System $export", "fhirExport", [], common)},
        "/fhir/Patient/$export": {"get": _kick_off(
            "Patient $export (every patient's compartment)", "fhirPatientExport", [], common)},
        "/fhir/Group/{id}/$export": {"get": _kick_off(
            "Group $export (its Patient members' compartments)", "fhirGroupExport",
            [ID_PARAM], (*common, 404, 410))},
        "/fhir/$export-status/{job}": {
            "get": {"summary": "$export status", "operationId": "fhirExportStatus",
                    "description": owner, "security": [{"bearerAuth": []}], "parameters": job,
                    "responses": _answers({"200": manifest, "202": running},
                                          (401, 404, 429, 500))},
            "delete": {"summary": "Delete an $export job", "operationId": "fhirExportDelete",
                       "description": owner, "security": [{"bearerAuth": []}],
                       "parameters": job, "responses": _answers({"202": deleted}, (401, 404, 429))},
        },
        "/fhir/$export-file/{job}/{name}": {"get": {
            "summary": "$export file", "operationId": "fhirExportFile",
            "description": f"{owner} {_SCOPE}", "security": [{"bearerAuth": ["system/*.read"]}],
            "parameters": [_JOB, _FILE, *REQUEST_HEADERS],
            "responses": _answers({"200": ndjson}, (401, 403, 404, 429))}},
    }  # fmt: skip
