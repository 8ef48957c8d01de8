"""Deterministic FHIR ids: UUIDv5 of business identifiers under carelog's namespace.

The same business identifiers always give the same id, so the same message processed twice
(or a later update of the same patient, order or result) lands on the same resource. Each
name is "ResourceType|part|part...", parts trimmed; an empty part stays empty so that
("A", "") and ("", "A") differ.
"""

from __future__ import annotations

from processors.ids import patient_id, resource_id

# One rule for every translator (processors/ids.py).
patient = patient_id


def encounter_by_visit(system: str, visit_number: str) -> str:
    return resource_id("Encounter", system, visit_number)


def encounter_by_admit(patient_id: str, admit_time: str) -> str:
    return resource_id("Encounter", "patient", patient_id, admit_time)


def observation(report_key: str, set_id: str, code: str) -> str:
    return resource_id("Observation", report_key, set_id, code)


def diagnostic_report(order_key: str) -> str:
    return resource_id("DiagnosticReport", order_key)


def service_request(placer_key: str) -> str:
    return resource_id("ServiceRequest", placer_key)


def medication_request(order_key: str) -> str:
    return resource_id("MedicationRequest", order_key)


def medication_dispense(order_key: str, *parts: str) -> str:
    return resource_id("MedicationDispense", order_key, *parts)


def medication_administration(order_key: str, *parts: str) -> str:
    return resource_id("MedicationAdministration", order_key, *parts)


def problem(instance_key: str) -> str:
    return resource_id("Condition", "problem", instance_key)


def account(system: str, value: str) -> str:
    return resource_id("Account", system, value)


def charge_item(account_id: str, *parts: str) -> str:
    return resource_id("ChargeItem", account_id, *parts)


def coverage(patient_id: str, *parts: str) -> str:
    return resource_id("Coverage", patient_id, *parts)


def specimen(specimen_key: str) -> str:
    return resource_id("Specimen", specimen_key)


def immunization(*parts: str) -> str:
    return resource_id("Immunization", *parts)


def appointment(appointment_key: str) -> str:
    return resource_id("Appointment", appointment_key)


def document_reference(document_key: str) -> str:
    return resource_id("DocumentReference", document_key)


def practitioner(system: str, value: str) -> str:
    return resource_id("Practitioner", system, value)


def organization(system: str, value: str) -> str:
    return resource_id("Organization", system, value)


def location(facility: str, poc: str, room: str, bed: str) -> str:
    return resource_id("Location", facility, poc, room, bed)


def related_person(patient_id: str, set_id: str) -> str:
    return resource_id("RelatedPerson", patient_id, set_id)


def allergy(patient_id: str, system: str, code: str) -> str:
    return resource_id("AllergyIntolerance", patient_id, system, code)


def condition(patient_id: str, system: str, code: str) -> str:
    return resource_id("Condition", patient_id, system, code)
