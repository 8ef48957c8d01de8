"""What a FHIR Consent denies, judged from the resource alone (no store, no Kafka).

The one interpretation of Consent in carelog: the FHIR API's reads (api/security/consent.py)
and the de-identified lake export (projections/lake/consent.py) both ask `denies`.
An active Consent with `provision.type` deny denies an asker when
- `provision.actor[].reference` names it, by reference `<Type>/<subject>` or by
  `identifier.value` = the subject; no actor: every asker;
- `provision.purpose[]` (v3 PurposeOfUse codes, e.g. HRESCH) holds its purpose; no purpose:
  every purpose.
`provision.period`, nested provisions and permit exceptions are not interpreted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Asker:
    """Who reads and why, as a Consent judges it."""

    subject: str
    purpose: str | None


def denies(consent: dict[str, Any], asker: Asker) -> bool:
    """Whether this Consent resource denies `asker`."""
    provision = consent.get("provision") or {}
    if consent.get("status") != "active" or provision.get("type") != "deny":
        return False
    purposes = {p.get("code") for p in provision.get("purpose") or [] if isinstance(p, dict)}
    if purposes and asker.purpose not in purposes:
        return False
    actors = [a.get("reference") or {} for a in provision.get("actor") or [] if isinstance(a, dict)]
    if not actors:
        return True
    for ref in actors:
        reference = str(ref.get("reference") or "")
        identifier = (ref.get("identifier") or {}).get("value")
        if identifier == asker.subject or reference.rpartition("/")[2] == asker.subject:
            return True
    return False


def consent_patient(consent: dict[str, Any]) -> str | None:
    """The id of the patient a Consent is about (`patient`: Patient/<id>), else None."""
    reference = (consent.get("patient") or {}).get("reference")
    if not isinstance(reference, str):
        return None
    kind, _, rest = reference.rpartition("Patient/")
    if rest and (not kind or kind.endswith("/")) and "/" not in rest:
        return rest
    return None
