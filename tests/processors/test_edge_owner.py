"""The edge seals an HL7 v2 message with its patient's key when it names one patient only
(processors.ids.hl7v2_owner, from the frame alone), a device batch and a DICOM instance with
its patient's, and `carelog publish` a file as its channel would. That is right only if the worker maps
that message to that same Patient and to no other: then erasing the patient shreds the key
of everything the message became, and of the message, and of nobody else's data."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from api.dicomweb.header import read_dicom_header
from processors.device_readings import device_patient_id, translate_device
from processors.dicom_header import translate_dicom
from processors.hl7v2.errors import Hl7v2Error
from processors.hl7v2.mapping import map_hl7v2
from processors.ids import hl7v2_owner
from processors.inbound_owner import inbound_owner
from schemas.device_batch import read_batch
from schemas.events import Format
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import read_er7
from schemas.hl7v2.patient import message_patient
from streams.privacy.envelope import patients_in

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    [*ROOT.glob("tests/corpus/hl7v2*/*.hl7"), *(ROOT.parent / "shared/corpus").glob("hl7v2/*.hl7")]
)


def _cases() -> list[tuple[Path, bytes]]:
    cases = []
    for path in FILES:
        try:
            read_er7(path.read_bytes())
        except FormatError:
            continue  # refused at the edge: sealed as a rejection, never by a patient's key
        cases.append((path, path.read_bytes()))
    return cases


CASES = _cases()


def test_the_corpus_exercises_both_answers() -> None:
    owners = [hl7v2_owner(e, message_patient(e)) for e in (read_er7(p) for _, p in CASES)]
    assert sum(o is not None for o in owners) >= 50
    assert sum(o is None for o in owners) >= 5  # merges, links, swaps: two patients named


@pytest.mark.parametrize("path,payload", CASES, ids=[p.name for p, _ in CASES])
def test_the_edge_names_the_patient_the_worker_maps_and_no_other(
    path: Path, payload: bytes
) -> None:
    er7 = read_er7(payload)
    owner = hl7v2_owner(er7, message_patient(er7))
    try:
        mapped = map_hl7v2(payload)
    except Hl7v2Error:
        return  # rejected by the worker: a Rejected event, sealed with a message key
    named = set()
    for resource in mapped.resources:
        text = orjson.dumps(resource).decode()
        named |= patients_in(resource["resourceType"], resource["id"], text)
    if owner is not None:
        assert named <= {owner}, f"{path.name}: sealed for {owner}, maps {named}"
        patients = [r["id"] for r in mapped.resources if r["resourceType"] == "Patient"]
        assert patients in ([], [owner])
    else:
        pids = sum(s.startswith("PID|") for s in er7.segments)
        mrg = any(s.startswith("MRG|") for s in er7.segments)
        assert pids != 1 or mrg, path.name


DEVICE_FILES = sorted(
    [
        *ROOT.glob("tests/corpus/device/*.json"),
        *(ROOT.parent / "shared/corpus").glob("device/*.json"),
    ]
)


@pytest.mark.parametrize("path", DEVICE_FILES, ids=[p.name for p in DEVICE_FILES])
def test_a_device_batch_is_about_the_patient_the_edge_names(path: Path) -> None:
    payload = path.read_bytes()
    owner = device_patient_id(read_batch(payload).patient)
    resources = [t.resource for t in translate_device(payload, "e1").resources]
    named = set()
    for resource in resources:
        named |= patients_in(
            resource["resourceType"], resource["id"], orjson.dumps(resource).decode()
        )
    assert named == {owner}


def _dicom(name: str, **elements: object) -> bytes:
    ds = pydicom.dcmread(str(get_testdata_file(name)))
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _qualified(name: str) -> bytes:
    """An instance whose issuer is named by an ISO OID (IssuerOfPatientIDQualifiersSequence):
    the translator takes the OID as the identifier's system, over IssuerOfPatientID."""
    qualifier = Dataset()
    qualifier.UniversalEntityID, qualifier.UniversalEntityIDType = "1.2.840.99.7", "ISO"
    return _dicom(name, IssuerOfPatientID="NWH", IssuerOfPatientIDQualifiersSequence=[qualifier])


DICOM = {
    "ct": _dicom("CT_small.dcm"),
    "mr": _dicom("MR_small.dcm"),
    "ct-issuer": _dicom("CT_small.dcm", IssuerOfPatientID="NWH"),
    "mr-oid": _qualified("MR_small.dcm"),
}


@pytest.mark.parametrize("name", DICOM)
def test_a_dicom_instance_is_about_the_patient_the_edge_names(name: str) -> None:
    data = DICOM[name]
    owner = read_dicom_header(data).patient
    resources = [t.resource for t in translate_dicom(data, "e1").resources]
    named = set()
    for resource in resources:
        named |= patients_in(
            resource["resourceType"], resource["id"], orjson.dumps(resource).decode()
        )
    assert owner is not None and named == {owner}


def test_the_issuer_changes_the_patient_the_edge_names() -> None:
    owners = {read_dicom_header(data).patient for data in DICOM.values()}
    assert len(owners) == 4  # MR and CT differ; an issuer, and an OID, each name another


def test_a_dicom_instance_without_patient_id_names_no_patient() -> None:
    assert read_dicom_header(_dicom("CT_small.dcm", PatientID="")).patient is None


@pytest.mark.parametrize(
    "fmt,payload,expected",
    [
        (Format.dicom, DICOM["mr-oid"], read_dicom_header(DICOM["mr-oid"]).patient),
        (Format.dicom, b"\0" * 132, None),
        (Format.hl7v2, b"not hl7", None),
        (Format.device, b"{}", None),
        (Format.fhir, b'{"resourceType": "Patient", "id": "p1"}', None),
    ],
    ids=["dicom", "dicom-unreadable", "hl7v2-unreadable", "device-refused", "fhir"],
)
def test_a_published_file_is_owned_as_its_channel_would(
    fmt: Format, payload: bytes, expected: str | None
) -> None:
    assert inbound_owner(fmt, payload) == expected


def test_published_hl7v2_and_device_files_are_owned_as_the_edge_owns_them() -> None:
    for _, payload in CASES:
        er7 = read_er7(payload)
        assert inbound_owner(Format.hl7v2, payload) == hl7v2_owner(er7, message_patient(er7))
    for path in DEVICE_FILES:
        payload = path.read_bytes()
        assert inbound_owner(Format.device, payload) == device_patient_id(
            read_batch(payload).patient
        )
