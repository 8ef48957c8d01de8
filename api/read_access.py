"""Who may read what: the token, its SMART read scopes, and its patient compartment.

A token with a `patient` claim sees only that patient's compartment (R4 Patient
CompartmentDefinition, as the store indexes it): a resource of a type that can never be in
it answers 403, one that is not in it answers 404 (its existence is not revealed). Every
version shown to it must itself have been in the compartment (the store judges each
version by its own JSON), besides the resource as it stands now.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from api.auth import Principal
from api.errors import Forbidden, GatewayError
from api.fhir_checks import check_type
from api.gateway import gateway_of
from api.scopes import Need
from api.smart import require_read
from projections.fhir_store import FhirStore


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

    @property
    def compartment(self) -> tuple[str, str] | None:
        """("Patient", id) when the token is kept to a patient's compartment."""
        return ("Patient", self.principal.patient) if self.principal.patient else None


async def admit_read(request: Request, resource_types: list[str], action: str) -> Reader:
    """The caller, allowed `action` (r or s) on every type; raises 401/403/429."""
    gw = gateway_of(request)
    principal = await gw.guard.admit(request)
    for resource_type in resource_types:
        if resource_type != "*":
            check_type(resource_type)  # before it is named in a WWW-Authenticate header
    require_read(
        principal, [Need(t, action) for t in resource_types], gw.guard.verifier is not None
    )
    return Reader(principal)


def check_visible(store: FhirStore, reader: Reader, resource_type: str, resource_id: str) -> None:
    """Raises 403/404 unless the resource is in the reader's compartment (if it has one)."""
    compartment = reader.compartment
    if compartment is None:
        return
    if resource_type != "Patient" and resource_type not in store.compartment_params():
        raise Forbidden(f"this token is limited to Patient/{compartment[1]}'s compartment, "
                        f"which holds no {resource_type} resources")  # fmt: skip
    found = store.search(resource_type, [("_id", resource_id), ("_total", "none")], compartment)
    if not found.matches:
        raise NotFound(f"{resource_type}/{resource_id} is not known in this patient's compartment")
