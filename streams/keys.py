"""Kafka keys of inbound events: they decide which messages keep their order.

One patient's messages from one sender share a key, so they stay on one partition in order.
For HL7 v2 the patient is the HL7 v2 contract's choice from PID-3 (schemas.hl7v2.patient),
the one the processor derives the Patient id from, made pseudonymous
(streams/privacy/pseudonym.py): keys are in clear on the log and survive an erasure, so they
must not name the patient.
"""

from __future__ import annotations

from schemas.events import Format
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import Er7, read_er7
from schemas.hl7v2.patient import PatientIdentifier, message_patient
from streams.privacy.pseudonym import pseudonym


def inbound_key(fmt: Format, payload: bytes, sender: str) -> str:
    """`facility|pseudonym(value^authority)` for HL7 v2 with a PID, else the facility (MSH-4)
    or sender."""
    if fmt is Format.hl7v2:
        try:
            er7 = read_er7(payload)
        except FormatError:
            return sender
        return hl7v2_key(er7, sender, message_patient(er7))
    return sender


def hl7v2_key(er7: Er7, sender: str, patient: PatientIdentifier | None) -> str:
    """`inbound_key` of an HL7 v2 message already read, `patient` its `message_patient`."""
    facility = er7.header.sending_facility or sender
    return f"{facility}|{pseudonym(patient.key)}" if patient else facility
