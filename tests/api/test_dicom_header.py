"""The DICOM frame check and header read, on pydicom's own test files (pydicom.data)."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from api.dicomweb.header import DicomHeaderError, read_dicom_header

CT = Path(str(get_testdata_file("CT_small.dcm"))).read_bytes()


def test_reads_the_uids_and_patient() -> None:
    header = read_dicom_header(CT)
    assert header.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert header.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert header.study_instance_uid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert header.patient_id == "1CT1" and header.issuer_of_patient_id == ""


@pytest.mark.parametrize("data", [b"", b"DICM", b"\0" * 128 + b"DICX" + b"\0" * 100, CT[128:]])
def test_no_preamble_or_prefix_is_refused(data: bytes) -> None:
    with pytest.raises(DicomHeaderError, match="preamble"):
        read_dicom_header(data)


def test_missing_uids_are_named() -> None:
    ds = pydicom.dcmread(io.BytesIO(CT))
    del ds.SOPInstanceUID
    del ds.StudyInstanceUID
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    with pytest.raises(DicomHeaderError, match=r"SOP Instance UID, \(0020,000D\) Study"):
        read_dicom_header(out.getvalue())


def test_issuer_of_patient_id_is_read() -> None:
    ds = pydicom.dcmread(io.BytesIO(CT))
    ds.IssuerOfPatientID = "NWH"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    assert read_dicom_header(out.getvalue()).issuer_of_patient_id == "NWH"
