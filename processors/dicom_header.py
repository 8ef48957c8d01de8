"""A DICOM object's header to FHIR R4 ImagingStudy and Patient (pydicom, no pixel data).

One event holds one SOP instance, so the ImagingStudy translated from it lists only that
instance's series and instance (numberOfSeries 1, numberOfInstances 1). Events of a study
share its key (ImagingStudy/id), so they reach one partition in order, and the versioning
stage merges each into the current study (processors/version_policy.py,
`imaging_study_merge.merge_imaging_study`: series and instances unioned by UID).

Ids: ImagingStudy resource_id("ImagingStudy", StudyInstanceUID); Patient
ids.patient_id(system, PatientID), the system being the ISO OID of
IssuerOfPatientIDQualifiersSequence as urn:oid:..., else ids.authority_system of
IssuerOfPatientID (as HL7 PID-3 CX-4 names it), else "" (an object without an issuer is
placed in one unqualified namespace: PACS should send the issuer).

The Patient here carries only what the header says (identifier, name, birth date, sex).
The versioning stage uses it only to create a patient not known yet: when HL7 ADT or a FHIR
write already gave that patient (same authority and id), the header changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from io import BytesIO
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset

from processors import ids
from processors.dicom_values import day, human_name, moment, number, text, uid, where
from processors.ids import resource_id
from processors.translation import TranslatedResource, Translation, TranslationError
from schemas.outcome import Issue

MAPPING_VERSION = "dicom-fhir/1.0.0"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
_GENDER = {"M": "male", "F": "female", "O": "other"}
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def translate_dicom(data: bytes, event_id: str) -> Translation:
    """Patient and ImagingStudy of one DICOM Part 10 object; TranslationError names elements.

    `event_id` is not part of any id: the ids come from the DICOM UIDs and PatientID.
    """
    try:
        ds = dcmread(BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types on malformed input
        raise TranslationError(
            [Issue(f"not a readable DICOM Part 10 object: {exc}", "structure", "error", "DICOM")]
        ) from None
    issues: list[Issue] = []
    patient = _patient(ds, issues)
    study, started = _study(ds, patient["id"] if patient else "", issues)
    if issues:
        raise TranslationError(issues)
    assert patient is not None and study is not None
    resources = [TranslatedResource(patient), TranslatedResource(study)]
    return Translation(resources, started, MAPPING_VERSION)


def _patient(ds: Dataset, issues: list[Issue]) -> dict[str, Any] | None:
    patient_id = text(ds, "PatientID", issues, required=True)
    issuer = text(ds, "IssuerOfPatientID", issues)
    name = human_name(ds, "PatientName", issues)
    born = day(ds, "PatientBirthDate", issues)
    sex = text(ds, "PatientSex", issues)
    if sex is not None and sex not in _GENDER:
        issues.append(
            Issue(f"{sex[:16]!r} is not M, F or O", "code-invalid", "error", where("PatientSex"))
        )
    if patient_id is None:
        return None
    identifier: dict[str, Any] = {"value": patient_id}
    system = _system(ds, issuer)
    if system:
        identifier = {"system": system, **identifier}
    if issuer:
        identifier["assigner"] = {"display": issuer}
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": ids.patient_id(identifier.get("system", ""), patient_id),
        "identifier": [identifier],
    }
    if name:
        patient["name"] = [name]
    if sex in _GENDER:
        patient["gender"] = _GENDER[sex]
    if born:
        patient["birthDate"] = born.isoformat()
    return patient


# What `header_patient_id` reads: a reader that stops at some tags (specific_tags) asks these.
PATIENT_TAGS = ["PatientID", "IssuerOfPatientID", "IssuerOfPatientIDQualifiersSequence"]


def header_patient_id(ds: Dataset) -> str | None:
    """The id of the Patient `translate_dicom` makes of this header (None without a
    PatientID): the edge seals an instance with that patient's key."""
    issues: list[Issue] = []  # a malformed element fails the translation, not this
    patient_id = text(ds, "PatientID", issues)
    if patient_id is None:
        return None
    return ids.patient_id(_system(ds, text(ds, "IssuerOfPatientID", issues)) or "", patient_id)


def _system(ds: Dataset, issuer: str | None) -> str | None:
    """The identifier system of the header's PatientID (see the module docstring)."""
    return _issuer_oid(ds) or (ids.authority_system(issuer) if issuer else None)


def _issuer_oid(ds: Dataset) -> str | None:
    """urn:oid:... of the issuer's ISO universal entity id, if the header carries one."""
    try:
        qualifiers = ds.get("IssuerOfPatientIDQualifiersSequence") or []
        for item in qualifiers:
            entity = str(item.get("UniversalEntityID") or "").strip()
            if str(item.get("UniversalEntityIDType") or "").strip() == "ISO" and entity:
                return f"urn:oid:{entity}"
    except Exception:  # an unreadable qualifier only loses the system, not the object
        return None
    return None


def _study(
    ds: Dataset, patient_id: str, issues: list[Issue]
) -> tuple[dict[str, Any] | None, datetime | None]:
    study_uid = uid(ds, "StudyInstanceUID", issues)
    series_uid = uid(ds, "SeriesInstanceUID", issues)
    sop_uid = uid(ds, "SOPInstanceUID", issues)
    sop_class = uid(ds, "SOPClassUID", issues)
    modality = text(ds, "Modality", issues, required=True)
    started, instant = moment(ds, "StudyDate", "StudyTime", issues)
    accession = text(ds, "AccessionNumber", issues)
    description = text(ds, "StudyDescription", issues)
    series = _series(ds, series_uid, modality, sop_uid, sop_class, issues)
    if study_uid is None or series is None or modality is None:
        return None, None
    identifiers: list[dict[str, Any]] = [
        {"use": "official", "system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}
    ]
    if accession:
        identifiers.append(
            {"type": {"coding": [{"system": _V2_0203, "code": "ACSN"}]}, "value": accession}
        )
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": resource_id("ImagingStudy", study_uid),
        "identifier": identifiers,
        "status": "available",
        "modality": [{"system": DCM, "code": modality}],
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if started:
        study["started"] = started
    study["numberOfSeries"] = 1
    study["numberOfInstances"] = 1
    if description:
        study["description"] = description
    study["series"] = [series]
    return study, instant


def _series(
    ds: Dataset,
    series_uid: str | None,
    modality: str | None,
    sop_uid: str | None,
    sop_class: str | None,
    issues: list[Issue],
) -> dict[str, Any] | None:
    series_number = number(ds, "SeriesNumber", issues)
    instance_number = number(ds, "InstanceNumber", issues)
    description = text(ds, "SeriesDescription", issues)
    body_part = text(ds, "BodyPartExamined", issues)
    if series_uid is None or modality is None or sop_uid is None or sop_class is None:
        return None
    instance: dict[str, Any] = {
        "uid": sop_uid,
        "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{sop_class}"},
    }
    if instance_number is not None:
        instance["number"] = instance_number
    series: dict[str, Any] = {"uid": series_uid}
    if series_number is not None:
        series["number"] = series_number
    series["modality"] = {"system": DCM, "code": modality}
    if description:
        series["description"] = description
    series["numberOfInstances"] = 1
    if body_part:
        # BodyPartExamined is a defined term, not a code; DICOM PS3.16 Annex L maps it to
        # SNOMED CT. Carried as display text until that map ships with the project.
        series["bodySite"] = {"display": body_part}
    series["instance"] = [instance]
    return series
