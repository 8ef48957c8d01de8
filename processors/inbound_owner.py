"""The patient an inbound payload is about, when it is about one only: what a message is
sealed with when it is read from a file (`carelog publish`). The gateway and MLLP derive
the same from what each channel has parsed already, by the same functions."""

from __future__ import annotations

from io import BytesIO

from pydicom import dcmread

from processors.device_readings import device_patient_id
from processors.dicom_header import PATIENT_TAGS, header_patient_id
from processors.ids import hl7v2_owner
from schemas.device_batch import BatchRefused, read_batch
from schemas.events import Format
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import read_er7
from schemas.hl7v2.patient import message_patient


def inbound_owner(fmt: Format, payload: bytes) -> str | None:
    """The Patient id the worker will map `payload` to, if one only; None when it names
    none or several, or cannot be read (then it is sealed with a key of its own)."""
    if fmt is Format.hl7v2:
        try:
            er7 = read_er7(payload)
        except FormatError:
            return None
        return hl7v2_owner(er7, message_patient(er7))
    if fmt is Format.device:
        try:
            return device_patient_id(read_batch(payload).patient)
        except BatchRefused:
            return None
    if fmt is Format.dicom:
        try:
            header = dcmread(BytesIO(payload), stop_before_pixels=True,
                             specific_tags=PATIENT_TAGS)  # fmt: skip
        except Exception:  # untrusted bytes: pydicom fails in many ways
            return None
        return header_patient_id(header)
    return None  # FHIR from a file is no REST write: the worker rejects it
