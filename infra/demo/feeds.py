"""The non-HL7 feeds of the demo (pure): bedside device readings, DICOM instances of
imaging studies, and FHIR writes from a care app."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from io import BytesIO
from typing import Any

import orjson
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian

from infra.demo.people import FACILITY, PATIENT_SYSTEM, Person

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"
DEMO_NAMESPACE = uuid.UUID("5d6f0c52-9a4e-4d0e-8f3a-3c1f2b7d9e01")


def readings(p: Person, batch: int, rng: random.Random) -> bytes:
    """POST /devices/readings body: one bedside monitor sample of `p`, hourly from admission."""
    at = (p.admitted + timedelta(hours=1 + batch, minutes=rng.randint(0, 5))).isoformat()
    fever = rng.random() < 0.2
    systolic = rng.randint(100, 165)
    values = [
        ("8867-4", LOINC, "Heart rate", rng.randint(58, 118), "/min"),
        ("150456", MDC, "MDC_PULS_OXIM_SAT_O2", rng.randint(89, 100), "%"),
        ("8480-6", LOINC, "Systolic blood pressure", systolic, "mm[Hg]"),
        ("8462-4", LOINC, "Diastolic blood pressure", systolic - rng.randint(30, 55), "mm[Hg]"),
        (
            "8310-5",
            LOINC,
            "Body temperature",
            round(rng.uniform(38.1, 39.4) if fever else rng.uniform(36.2, 37.4), 1),
            "Cel",
        ),
        ("9279-1", LOINC, "Respiratory rate", rng.randint(12, 26), "/min"),
    ]
    return orjson.dumps(
        {
            "device": {
                "id": f"MON-{p.bed.unit}-{p.bed.room}{p.bed.bed}",
                "type": "bedside-monitor",
                "manufacturer": "Acme Medical",
                "serial": f"AM-{p.bed.room}-{p.bed.bed}",
            },
            "patient": {"system": PATIENT_SYSTEM, "value": p.mrn, "assigner": FACILITY},
            "readings": [
                {"code": c, "system": s, "display": d, "value": v, "unit": u, "time": at}
                for c, s, d, v, u in values
            ],
        }
    )


# (modality, SOP Class UID, study description, body part) of the studies the demo orders.
STUDIES = (
    ("CR", "1.2.840.10008.5.1.4.1.1.1", "XR CHEST 2 VIEWS", "CHEST"),
    ("CT", "1.2.840.10008.5.1.4.1.1.2", "CT HEAD WO CONTRAST", "HEAD"),
    ("CT", "1.2.840.10008.5.1.4.1.1.2", "CT ABDOMEN PELVIS W CONTRAST", "ABDOMEN"),
    ("MR", "1.2.840.10008.5.1.4.1.1.4", "MRI LUMBAR SPINE WO CONTRAST", "LSPINE"),
)


def demo_uid(*parts: object) -> str:
    """A DICOM UID under the 2.25 arc (a UUID as an integer), the same for the same parts."""
    return f"2.25.{uuid.uuid5(DEMO_NAMESPACE, '|'.join(map(str, parts))).int}"


def study_uid(p: Person) -> str:
    return demo_uid("study", p.mrn)


def instances(p: Person) -> list[bytes]:
    """The DICOM Part 10 instances of `p`'s imaging study: one series, a 4x4 pixel image each."""
    modality, sop_class, description, body_part = STUDIES[p.index % len(STUDIES)]
    taken = p.admitted + timedelta(hours=3)
    return [
        dicom_instance(p, modality, sop_class, description, body_part, taken, n)
        for n in range(1, p.imaging + 1)
    ]


def dicom_instance(
    p: Person,
    modality: str,
    sop_class: str,
    description: str,
    body_part: str,
    taken: datetime,
    number: int,
    *,
    sex: str | None = None,
) -> bytes:
    sop_instance = demo_uid("instance", p.mrn, number)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_instance
    ds.PatientName = f"{p.family}^{p.given}^{p.middle}"
    ds.PatientID, ds.IssuerOfPatientID = p.mrn, FACILITY
    ds.PatientBirthDate = p.birth.strftime("%Y%m%d")
    ds.PatientSex = sex or p.sex
    ds.StudyInstanceUID = study_uid(p)
    ds.SeriesInstanceUID = demo_uid("series", p.mrn)
    ds.StudyDate = ds.SeriesDate = taken.strftime("%Y%m%d")
    ds.StudyTime = taken.strftime("%H%M%S")
    ds.TimezoneOffsetFromUTC = taken.strftime("%z")
    ds.AccessionNumber = f"ACC{p.mrn[2:]}"
    ds.StudyDescription = ds.SeriesDescription = description
    ds.Modality, ds.BodyPartExamined = modality, body_part
    ds.SeriesNumber, ds.InstanceNumber = 1, number
    # A tiny image keeps the objects valid for viewers while the demo stays light.
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = bytes((i * 16 + number) % 256 for i in range(16))
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def multipart(parts: list[bytes], boundary: str) -> tuple[bytes, str]:
    """A STOW-RS body and its Content-Type."""
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    )
    body += f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


# SNOMED CT problems a care app records.
PROBLEMS = (
    ("38341003", "Hypertensive disorder"),
    ("44054006", "Diabetes mellitus type 2"),
    ("195967001", "Asthma"),
    ("13645005", "Chronic obstructive lung disease"),
)


def subject(p: Person) -> dict[str, str]:
    return {"reference": f"Patient/{p.fhir_id}"}


def weight(p: Person, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """PUT target and body: a body weight the app recorded, with an id of the app's own."""
    oid = f"demo-weight-{p.mrn.lower()}"
    return f"Observation/{oid}", {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
        "subject": subject(p),
        "effectiveDateTime": (p.admitted + timedelta(hours=1)).isoformat(),
        "valueQuantity": {
            "value": round(rng.uniform(48, 115), 1),
            "unit": "kg",
            "system": UCUM,
            "code": "kg",
        },
    }


def problem(p: Person) -> tuple[str, dict[str, Any]]:
    """If-None-Exist criteria and body: a problem-list Condition (created once)."""
    code, display = PROBLEMS[p.index % len(PROBLEMS)]
    identifier = {"system": "urn:carelog:demo:problem", "value": f"{p.mrn}-{code}"}
    return f"identifier={identifier['system']}|{identifier['value']}", {
        "resourceType": "Condition",
        "identifier": [identifier],
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]
        },
        "subject": subject(p),
        "recordedDate": (p.admitted + timedelta(hours=2)).date().isoformat(),
    }


def intake_bundle(p: Person, rng: random.Random) -> dict[str, Any]:
    """A transaction: height and pain score from an intake form, written together."""
    entries = []
    for code, display, value, unit in (
        ("8302-2", "Body height", round(rng.uniform(150, 195)), "cm"),
        (
            "72514-3",
            "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
            rng.randint(0, 8),
            "{score}",
        ),
    ):
        oid = f"demo-{code}-{p.mrn.lower()}"
        resource = {
            "resourceType": "Observation",
            "id": oid,
            "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "subject": subject(p),
            "effectiveDateTime": (p.admitted + timedelta(minutes=40)).isoformat(),
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        }
        entries.append(
            {
                "fullUrl": f"Observation/{oid}",
                "resource": resource,
                "request": {"method": "PUT", "url": f"Observation/{oid}"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
