"""Device reading batches (POST /devices/readings) to FHIR R4 Device and Observations.

The batch: device {id, type?, manufacturer?, serial?}, patient {system, value, assigner?},
readings [{code, system, display?, value, unit, time}] (tests/corpus/device/ has one).

- Device: id resource_id("Device", device.id).
- Patient: only referenced, never emitted. Its id is derived as the HL7 PID-3 path derives
  it, ids.patient_id(authority's system, value), so readings land on the patient ADT
  created: `assigner`, when sent, names the assigning authority as PID-3's CX-4.1 does,
  and ids.authority_system gives its system (NWH -> urn:carelog:sid:NWH, SSA -> the US SSN
  system); without an assigner, `system` is the authority's own URI (as CX-4.2 with an ISO
  or URI type). `system` as sent stays on Observation.subject.identifier. A device knows
  nothing else about the patient; a Patient carrying only an identifier would, as a new
  version of the whole resource, wipe the name, birth date and addresses that ADT gave it.
- Observation per reading: status final, category vital-signs, LOINC code (an MDC code is
  kept as a further coding, mapped to LOINC where `device_codes` knows it), valueQuantity
  in UCUM, effectiveDateTime, subject and device. id resource_id("Observation", device.id,
  LOINC code (else the MDC code), time in UTC). Two readings of one measurement at one
  time (a monitor sending 59408-5 and MDC 150456 alike) are one Observation with both
  codings; if their values differ the batch is contradictory and rejected.
- Blood pressure stays one Observation per systolic / diastolic / mean reading, not the
  85354-9 panel with components: readings map one to one, and a systolic arriving without
  its diastolic needs no special case. (The R4 bp profile wants the panel; a later
  projection can build it.)

business_time is the latest reading time: the batch is complete as of then.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from processors.ids import authority_system, patient_id, resource_id
from processors.translation import TranslatedResource, Translation, TranslationError
from schemas.device_batch import (
    BatchRefused,
    Device,
    PatientRef,
    Reading,
    measurement_key,
    read_batch,
)
from schemas.device_codes import LOINC, MDC, MDC_TO_LOINC, UCUM, VITAL_SIGNS

MAPPING_VERSION = "device-fhir/1.0.0"
_CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ]
}


def translate_device(payload: bytes, event_id: str) -> Translation:
    """The Device and Observations of one batch; TranslationError names each bad JSON path.

    The batch is read by the contract the gateway checked it with (schemas.device_batch).
    `event_id` is not part of any id: the same readings sent twice are the same resources.
    """
    try:
        batch = read_batch(payload)
    except BatchRefused as exc:
        raise TranslationError(exc.issues) from None
    subject = _subject(batch.patient)
    device_id = batch.device.id
    observations: dict[str, dict[str, Any]] = {}
    for reading in batch.readings:
        observation = _observation(reading, device_id, subject)
        earlier = observations.setdefault(observation["id"], observation)
        if earlier is not observation:  # one measurement sent twice: one Observation, every coding
            _add_codings(earlier, observation["code"]["coding"])
    resources = [_device(batch.device), *observations.values()]
    latest = max(r.time for r in batch.readings)
    return Translation([TranslatedResource(r) for r in resources], latest, MAPPING_VERSION)


def device_patient_id(patient: PatientRef) -> str:
    """The id of the Patient a batch's readings are about (the edge seals the batch with
    that patient's key: every resource it becomes is that patient's or its Device's)."""
    authority = (
        authority_system(patient.assigner) if patient.assigner is not None else patient.system
    )
    return patient_id(authority, patient.value)


def _subject(patient: PatientRef) -> dict[str, Any]:
    identifier: dict[str, Any] = {"system": patient.system, "value": patient.value}
    if patient.assigner is not None:
        identifier["assigner"] = {"display": patient.assigner}
    return {"reference": f"Patient/{device_patient_id(patient)}", "identifier": identifier}


def _observation(reading: Reading, device_id: str, subject: dict[str, Any]) -> dict[str, Any]:
    time: datetime = reading.time
    observation_id = resource_id("Observation", *measurement_key(device_id, reading))
    code: dict[str, Any] = {"coding": _codings(reading)}
    if reading.display:
        code["text"] = reading.display
    observation = {
        "resourceType": "Observation",
        "id": observation_id,
        "status": "final",
        "category": [copy.deepcopy(_CATEGORY)],
        "code": code,
        "subject": copy.deepcopy(subject),
        "effectiveDateTime": time.isoformat(),
        "valueQuantity": {
            "value": reading.value,
            "unit": reading.unit,
            "system": UCUM,
            "code": reading.ucum,
        },
        "device": {"reference": f"Device/{resource_id('Device', device_id)}"},
    }
    return observation


def _codings(reading: Reading) -> list[dict[str, Any]]:
    """LOINC first (with the display LOINC gives it), then the MDC coding if sent as MDC."""
    codings: list[dict[str, Any]] = []
    loinc = reading.loinc
    known = VITAL_SIGNS.get(loinc) if loinc else None
    if loinc:
        display = known.display if known else reading.display
        codings.append(_coding(LOINC, loinc, display))
        codings.extend(_coding(LOINC, c, d) for c, d in (known.also if known else ()))
    if reading.system == MDC:
        name = MDC_TO_LOINC.get(reading.code, (reading.display, None))[0]
        codings.append(_coding(MDC, reading.code, name))
    return codings


def _coding(system: str, code: str, display: str | None) -> dict[str, Any]:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _add_codings(observation: dict[str, Any], codings: list[dict[str, Any]]) -> None:
    have = observation["code"]["coding"]
    seen = {(c["system"], c["code"]) for c in have}
    have.extend(c for c in codings if (c["system"], c["code"]) not in seen)


def _device(device: Device) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": resource_id("Device", device.id),
        "identifier": [{"value": device.id}],
    }
    for value, element in ((device.manufacturer, "manufacturer"), (device.serial, "serialNumber")):
        if value and value.strip():
            resource[element] = value
    if device.type and device.type.strip():
        resource["type"] = {"text": device.type}
    return resource
