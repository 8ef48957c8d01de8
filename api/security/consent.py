"""Patient consent honoured by FHIR reads: an active Consent that denies access.

Scope (documented in the README): a `Consent` with `status` active and `provision.type` deny,
for `patient` Patient/x, hides every resource of x's compartment from the readers it names:
- `provision.actor[].reference` names them, by reference (`Device/<token subject>`, or any
  `<Type>/<token subject>`) or by `identifier.value` = the token subject; no actor: everyone;
- `provision.purpose[]` (v3 PurposeOfUse codes, e.g. HRESCH) limits it to requests made for
  those purposes, declared in the `X-Purpose-Of-Use` header; no purpose: every purpose.
A read of such a resource answers 403; searches and $everything leave them out. The Consent
itself stays readable. What a Consent denies is judged by schemas/consent.py, which the
de-identified lake export (projections/lake/consent.py) asks too.
"""

from __future__ import annotations

import orjson

from api.errors import Forbidden
from projections.fhir_store import FhirStore, StoredResource
from projections.fhir_store.compartment import patients_of
from schemas.consent import Asker, denies

PURPOSE_HEADER = "x-purpose-of-use"


def denied_patients(store: FhirStore, patients: set[str], asker: Asker) -> dict[str, str]:
    """Of `patients`, those an active Consent denies to `asker`: patient id -> Consent id."""
    denied: dict[str, str] = {}
    for patient in sorted(patients):
        for consent in store.referring("Consent", "patient", "Patient", patient):
            if denies(orjson.loads(consent.json), asker):
                denied[patient] = consent.id
                break
    return denied


def _patients(item: StoredResource) -> frozenset[str]:
    if item.deleted or item.resource_type == "Consent":  # a Consent stays readable to audit it
        return frozenset()
    return patients_of(item.resource_type, orjson.loads(item.json))


def consented(
    store: FhirStore, asker: Asker, items: list[StoredResource]
) -> tuple[list[StoredResource], dict[str, str]]:
    """`items` less those of patients whose Consent denies `asker`; and those denials."""
    owners = {item.key: _patients(item) for item in items}
    denied = denied_patients(store, set().union(*owners.values()) if owners else set(), asker)
    if not denied:
        return items, {}
    return [i for i in items if not owners[i.key] & denied.keys()], denied


def refuse_denied(
    store: FhirStore, asker: Asker, resource_type: str, resource_id: str,
    current: StoredResource | None,
) -> None:  # fmt: skip
    """Raises 403 when `current`, the current version of the resource (None: there is none),
    belongs to a patient whose Consent denies `asker`."""
    if current is None:
        return
    _, denied = consented(store, asker, [current])
    if denied:
        consent = next(iter(denied.values()))
        raise Forbidden(f"{resource_type}/{resource_id}: the patient's Consent/{consent} denies "
                        "this reader (or this purpose of use) access")  # fmt: skip
