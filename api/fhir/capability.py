"""The CapabilityStatement (FHIR 4.0.1): exactly what this server does, from the store's
own list of types and search parameters."""

from __future__ import annotations

from typing import Any

from api.fhir.write_requests import APPEND_ONLY
from projections.fhir_store import FhirStore
from streams.settings import Settings

SMART_CAPABILITIES = [
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
    "context-ehr-patient",
    "context-standalone-patient",
    "client-confidential-asymmetric",
]
_INTERACTIONS = [
    "read",
    "vread",
    "update",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
]
_EVERYTHING = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
_BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition"
_AT_DOC = (
    "Point in time (api/fhir/point_in_time.py): a read with _at answers the version current "
    "then (404 before it existed, 410 while deleted); history keeps the versions current "
    "during the period; a search with _at takes only _id, _count and _offset, any other "
    "parameter answers 400."
)


def _oauth(settings: Settings) -> list[dict[str, Any]]:
    uris = [
        ("authorize", settings.auth.smart_authorization_endpoint),
        ("token", settings.auth.smart_token_endpoint),
    ]
    extension = [{"url": name, "valueUri": uri} for name, uri in uris if uri]
    if not extension:
        return []
    url = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    return [{"url": url, "extension": extension}]


_APPEND_ONLY_DOC = (
    "Append-only audit records: read and search them; an audit source may create one "
    "(POST, with the system/audit.write scope); update and delete answer 405."
)


def _resource(rtype: str, params: list[tuple[str, str, str]]) -> dict[str, Any]:
    append_only = rtype == APPEND_ONLY  # api/fhir/write_requests.py
    kept = [c for c in _INTERACTIONS if not (append_only and c in ("update", "delete"))]
    entry: dict[str, Any] = {
        "type": rtype,
        **({"documentation": _APPEND_ONLY_DOC} if append_only else {}),
        "interaction": [{"code": code} for code in kept],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": not append_only,
        # If-None-Exist with any search of the type (api/fhir/if_none_exist.py); If-None-Match: *
        # on update has no flag here (the rest documentation says it).
        "conditionalCreate": True,
        "conditionalRead": "full-support",  # If-None-Match / If-Modified-Since: 304
        "conditionalUpdate": False,  # PUT/DELETE with search parameters: refused
        "conditionalDelete": "not-supported",
        "searchInclude": ["*"],
        "searchRevInclude": ["*"],
        "searchParam": [
            {"name": n, "type": t, **({"documentation": d} if d else {})} for n, t, d in params
        ]
        + [{"name": "_at", "type": "date", "documentation": _AT_DOC}],
    }
    if rtype == "Patient":
        entry["operation"] = [
            {"name": "everything", "definition": _EVERYTHING},
            {"name": "export", "definition": f"{_BULK}/patient-export"},
        ]
    return entry


def capability_statement(store: FhirStore | None, settings: Settings, base: str) -> dict[str, Any]:
    """The statement; with no store yet it lists no resource types."""
    params = store.supported_search_params() if store is not None else {}
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "carelog",
        "kind": "instance",
        "software": {"name": "carelog"},
        "implementation": {
            "description": "carelog FHIR R4 server (a projection of the log)",
            "url": base,
        },
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Writes are appended to the log and answered once the store shows "
                "them (201/200 with Location and ETag), or 202 with Prefer: "
                "respond-async. Transactions are applied per resource, not "
                "atomically. Conditional create (If-None-Exist, request.ifNoneExist): "
                "no match creates, one match answers 200 with it and writes nothing, "
                'several answer 412. If-Match W/"n" and If-None-Match: * (create '
                "only) are checked where versions are assigned: 412 when they fail.",
                "security": {
                    "cors": False,
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "extension": _oauth(settings),
                },
                "resource": [_resource(t, params[t]) for t in sorted(params)],
                "interaction": [
                    {"code": "transaction"},
                    {"code": "batch"},
                    {"code": "history-system"},
                ],
                # Bulk Data $export (api/fhir/bulk_export_routes.py); Group/{id}/$export too.
                "operation": [
                    {"name": "export", "definition": f"{_BULK}/export"},
                    {"name": "group-export", "definition": f"{_BULK}/group-export"},
                ],
            }
        ],
    }


def smart_configuration(settings: Settings) -> dict[str, Any]:
    """/.well-known/smart-configuration (SMART App Launch 2.0)."""
    config: dict[str, Any] = {
        "capabilities": SMART_CAPABILITIES,
        "scopes_supported": [
            "patient/*.read",
            "user/*.read",
            "system/*.read",
            "patient/*.rs",
            "user/*.rs",
            "system/*.rs",
            "system/*.write",
            "system/*.cud",
        ],
        "response_types_supported": ["token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
    }
    if settings.auth.issuer:
        config["issuer"] = settings.auth.issuer
    if settings.auth.jwks_url:
        config["jwks_uri"] = settings.auth.jwks_url
    if settings.auth.smart_authorization_endpoint:
        config["authorization_endpoint"] = settings.auth.smart_authorization_endpoint
    if settings.auth.smart_token_endpoint:
        config["token_endpoint"] = settings.auth.smart_token_endpoint
        config["grant_types_supported"] = ["authorization_code", "client_credentials"]
    return config
