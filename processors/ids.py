"""Deterministic FHIR ids: the same business identifiers always give the same id.

An id is a UUIDv5 in carelog's own namespace over `ResourceType|part|part...`, so the
same message processed twice yields the same resources with the same ids. This module is
the rule (every translator and api/fhir/write_targets.py follow it; README, "HL7 v2 → FHIR: what
is translated", Identity, tells which identifiers each id comes from).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, Final
from urllib.parse import quote

from schemas.hl7v2.frame import Er7
from schemas.hl7v2.patient import PatientIdentifier, about_one_patient

# uuid5(NAMESPACE_URL, "https://carelog/fhir-ids"). Fixed forever: changing it would change
# every id carelog has ever assigned.
CARELOG_NAMESPACE = uuid.UUID("fe8b97e0-0491-5218-945f-cd1ec0551b25")

# Identifier.system of an assigning authority known only by its name (HL7 CX-4.1, a device
# batch's assigner, DICOM IssuerOfPatientID), unless configured to a URI of its own.
LOCAL_SYSTEM_BASE = "urn:carelog:sid:"


def resource_id(resource_type: str, *parts: str) -> str:
    """The id of the `resource_type` resource identified by `parts` (authority, value, ...).

    Parts are trimmed; an empty part stays, so ("A", "") and ("", "A") differ.
    """
    name = "|".join([resource_type, *(p.strip() for p in parts)])
    return uuid5_text(CARELOG_NAMESPACE, name)


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """`str(uuid.uuid5(namespace, name))` without building the UUID object (an ORU^R01
    takes some forty of them): the SHA-1 of namespace and name, version 5, RFC 4122 variant."""
    digest = bytearray(hashlib.sha1(_bytes_of(namespace) + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    x = digest.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


@cache
def _bytes_of(namespace: uuid.UUID) -> bytes:
    """UUID.bytes is computed on every read; carelog has a handful of namespaces."""
    return namespace.bytes


# Assigning authorities whose name stands for a well-known identifier system.
KNOWN_AUTHORITIES: Final = {
    "NPI": "http://hl7.org/fhir/sid/us-npi",
    "SSA": "http://hl7.org/fhir/sid/us-ssn",
}


def local_system(authority: str, base: str = LOCAL_SYSTEM_BASE) -> str:
    """The Identifier.system carelog gives an authority known only by its name."""
    return base + quote(authority, safe="")


def authority_system(
    authority: str, configured: Mapping[str, str] | None = None, base: str = LOCAL_SYSTEM_BASE
) -> str:
    """The Identifier.system of an assigning authority named by its name: HL7 CX-4.1 / HD-1,
    a device batch's assigner, DICOM IssuerOfPatientID. One rule for all of them, so that
    the same name gives the same system (and so the same Patient id) whatever the source:
    the system configured for that name, else the well-known system it stands for (SSA is
    http://hl7.org/fhir/sid/us-ssn), else local_system(name)."""
    configured_system = (configured or {}).get(authority)
    return configured_system or KNOWN_AUTHORITIES.get(authority) or local_system(authority, base)


def patient_id(system: str, value: str) -> str:
    """Every translator derives a Patient's id the same way, from Identifier.system|value, so
    one patient sent as HL7, DICOM, device readings or FHIR lands on one resource."""
    return resource_id("Patient", system, value)


def hl7v2_owner(er7: Er7, patient: PatientIdentifier | None) -> str | None:
    """The id of the Patient an HL7 v2 message is about, when it is about one only
    (`about_one_patient`; `patient` is its `message_patient`): the id the mapping gives its PID
    (processors/hl7v2/mappers/common.py, default MappingContext), known at the edge from the
    frame alone. The edge seals the message with that patient's key."""
    if patient is None or not about_one_patient(er7):
        return None
    return patient_id(patient.system(authority_system), patient.value)


# HL7 table 0203 (identifier type), as FHIR names it.
IDENTIFIER_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v2-0203"


def order_identifier(
    number: tuple[str, str], kind: str, system_of: Callable[[str], str]
) -> dict[str, Any] | None:
    """An order number (EI-1 value, EI-2 namespace) as an Identifier typed `kind` (PLAC, FILL;
    table 0203), or None without a value. The namespace is an assigning authority like any
    other: `system_of` is the configured rule (MappingContext.authority_system, i.e.
    authority_system with the configured systems and base), never a prefix of its own."""
    value, namespace = number
    if not value:
        return None
    identifier: dict[str, Any] = {
        "type": {"coding": [{"system": IDENTIFIER_TYPE_SYSTEM, "code": kind}]},
        "value": value,
    }
    if namespace:
        identifier["system"] = system_of(namespace)
    return identifier
