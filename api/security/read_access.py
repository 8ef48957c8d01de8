"""Who may read what: the token, its SMART read scopes, and its patient compartment.

A token with a `patient` claim sees only that patient's compartment (R4 Patient
CompartmentDefinition, as the store indexes it): a resource of a type that can never be in
it answers 403, one that is not in it answers 404 (its existence is not revealed). Every
version shown to it must itself have been in the compartment (the store judges each
version by its own JSON), besides the resource as it stands now.

Audit events are never shown to a token with a `patient` claim, whatever its scopes: an
AuditEvent names every resource a read returned and the query text, so one in a patient's
compartment also names other patients. Asking for AuditEvent answers 403; $everything and
_include/_revinclude leave them out. Tokens without a patient context read them with an
AuditEvent read scope. What _include/_revinclude adds is also limited to the types the
token's scopes can read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request

from api.errors import Forbidden, GatewayError
from api.fhir.checks import check_type
from api.gateway import gateway_of
from api.security.auth import Principal
from api.security.consent import PURPOSE_HEADER, consented, refuse_denied
from api.security.scopes import Need
from api.security.smart import lacking, require_read
from projections.fhir_store import FhirStore, StoredResource
from projections.fhir_store.search_limits import MAX_OR_VALUES
from schemas.consent import Asker

HIDDEN_FROM_PATIENTS = frozenset({"AuditEvent"})


class NotFound(GatewayError):
    code = "not-found"
    status = 404
    stored_as_rejected = False


class Gone(GatewayError):
    code = "deleted"
    status = 410
    stored_as_rejected = False


@dataclass(frozen=True, slots=True)
class Reader:
    principal: Principal
    scopes_checked: bool = True  # False: authentication is disabled
    purpose: str | None = (
        None  # X-Purpose-Of-Use, judged by patients' Consents (api/security/consent.py)
    )

    @property
    def compartment(self) -> tuple[str, str] | None:
        """("Patient", id) when the token is kept to a patient's compartment."""
        return ("Patient", self.principal.patient) if self.principal.patient else None

    def hides(self, resource_type: str) -> bool:
        """True for types never shown to this token's context (audit events to patients)."""
        return self.compartment is not None and resource_type in HIDDEN_FROM_PATIENTS

    def may_read(self, resource_type: str) -> bool:
        """Whether the token's scopes and context let it read `resource_type` at all."""
        if self.hides(resource_type):
            return False
        return not self.scopes_checked or not lacking(self.principal, [Need(resource_type, "r")])


async def admit_read(request: Request, resource_types: list[str], action: str) -> Reader:
    """The caller, allowed `action` (r or s) on every type; raises 401/403/429."""
    gw = gateway_of(request)
    principal = await gw.guard.admit(request)
    for resource_type in resource_types:
        if resource_type != "*":
            check_type(resource_type)  # before it is named in a WWW-Authenticate header
    checked = gw.guard.verifier is not None
    require_read(principal, [Need(t, action) for t in resource_types], checked)
    reader = Reader(principal, checked, request.headers.get(PURPOSE_HEADER))
    refuse_hidden(reader, resource_types)
    return reader


def refuse_hidden(reader: Reader, resource_types: Iterable[str]) -> None:
    """Raises 403 when one of `resource_types` is never shown to this token's context."""
    hidden = sorted({t for t in resource_types if reader.hides(t)})
    if hidden:
        raise Forbidden(f"{', '.join(hidden)} resources are not served to a token limited to a "
                        "patient's compartment (audit records name other patients); use a "
                        "token without a patient context and with AuditEvent read scope")  # fmt: skip


def _asker(reader: Reader) -> Asker:
    return Asker(reader.principal.subject, reader.purpose)


def check_visible(
    store: FhirStore, reader: Reader, resource_type: str, resource_id: str,
    current: StoredResource | None,
) -> None:  # fmt: skip
    """Raises 403/404 unless the resource is in the reader's compartment (if it has one),
    and 403 when its patient's Consent denies the reader. `current`: the resource's current
    version as the caller read it (None: there is none)."""
    refuse_denied(store, _asker(reader), resource_type, resource_id, current)
    compartment = reader.compartment
    if compartment is None:
        return
    if resource_type != "Patient" and resource_type not in store.compartment_params():
        raise Forbidden(f"this token is limited to Patient/{compartment[1]}'s compartment, "
                        f"which holds no {resource_type} resources")  # fmt: skip
    found = store.search(resource_type, [("_id", resource_id), ("_total", "none")], compartment)
    if not found.matches:
        raise NotFound(f"{resource_type}/{resource_id} is not known in this patient's compartment")


def without_denied(
    store: FhirStore, reader: Reader, items: list[StoredResource]
) -> list[StoredResource]:
    """`items` less those of patients whose Consent denies this reader (api/security/consent.py)."""
    return consented(store, _asker(reader), items)[0] if items else items


def readable(store: FhirStore, reader: Reader, items: list[StoredResource]) -> list[StoredResource]:
    """What of `items` (current versions) the reader may see: types its scopes read, and
    within its compartment when it has one."""
    allowed = {t: reader.may_read(t) for t in {i.resource_type for i in items}}
    items = without_denied(store, reader, [i for i in items if allowed[i.resource_type]])
    compartment = reader.compartment
    if compartment is None or not items:
        return items
    by_type: dict[str, list[StoredResource]] = {}
    for item in items:
        by_type.setdefault(item.resource_type, []).append(item)
    kept: set[str] = set()
    for rtype, group in by_type.items():
        if rtype != "Patient" and rtype not in store.compartment_params():
            continue
        for start in range(0, len(group), MAX_OR_VALUES):  # one search per allowed OR list
            ids = ",".join(r.id for r in group[start : start + MAX_OR_VALUES])
            found = store.search(rtype, [("_id", ids), ("_total", "none"),
                                         ("_count", str(MAX_OR_VALUES))], compartment)  # fmt: skip
            kept.update(r.key for r in found.matches)
    return [i for i in items if i.key in kept]
