"""Just enough of a DICOM Part 10 object to file it: a frame check and a few header UIDs.

Checks the 128-byte preamble and the "DICM" prefix, then reads the header with pydicom
(stopping before pixel data, big values deferred, only the tags asked for). It never
changes or re-encodes the object: the exact bytes received are what carelog keeps.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
from pydicom.errors import InvalidDicomError

from processors.dicom_header import PATIENT_TAGS, header_patient_id

_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    *PATIENT_TAGS,
]
_REQUIRED = {
    "SOPClassUID": "(0008,0016) SOP Class UID",
    "SOPInstanceUID": "(0008,0018) SOP Instance UID",
    "StudyInstanceUID": "(0020,000D) Study Instance UID",
}


class DicomHeaderError(ValueError):
    """Not a DICOM Part 10 object, or one without the UIDs carelog files it by."""


@dataclass(frozen=True, slots=True)
class DicomHeader:
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    issuer_of_patient_id: str
    transfer_syntax_uid: str
    patient: str | None  # the id of the Patient the worker makes of it (header_patient_id)


def read_dicom_header(data: bytes) -> DicomHeader:
    if len(data) < 132 or data[128:132] != b"DICM":
        raise DicomHeaderError(
            "not a DICOM Part 10 object: no 128-byte preamble followed by 'DICM'"
        )
    try:
        ds = pydicom.dcmread(
            io.BytesIO(data), stop_before_pixels=True, defer_size=4096, specific_tags=_TAGS
        )
    except InvalidDicomError as exc:
        raise DicomHeaderError(f"unreadable DICOM header: {exc}") from exc
    except Exception as exc:  # untrusted bytes: pydicom fails in many ways (struct, EOF, ...)
        raise DicomHeaderError(f"unreadable DICOM header: {exc}") from exc

    def text(keyword: str) -> str:
        value = ds.get(keyword)
        return str(value).strip() if value is not None else ""

    missing = [label for keyword, label in _REQUIRED.items() if not text(keyword)]
    if missing:
        raise DicomHeaderError("missing " + ", ".join(missing))
    meta = getattr(ds, "file_meta", None)
    return DicomHeader(
        sop_class_uid=text("SOPClassUID"),
        sop_instance_uid=text("SOPInstanceUID"),
        study_instance_uid=text("StudyInstanceUID"),
        series_instance_uid=text("SeriesInstanceUID"),
        patient_id=text("PatientID"),
        issuer_of_patient_id=text("IssuerOfPatientID"),
        transfer_syntax_uid=str(meta.get("TransferSyntaxUID", "")) if meta is not None else "",
        patient=header_patient_id(ds),
    )
