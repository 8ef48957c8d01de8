"""Kafka keys of inbound events: they decide which messages keep their order.

One patient's messages from one sender share a key, so they stay on one partition in order.
The patient identifier in it is pseudonymous (privacy/pseudonym.py): keys are in clear on the
log and survive an erasure, so they must not name the patient.
"""

from __future__ import annotations

from privacy.pseudonym import pseudonym
from schemas.events import Format
from streams.hl7_header import HeaderError, MshHeader, patient_identifier, read_msh


def inbound_key(fmt: Format, payload: bytes, sender: str) -> str:
    """`facility|pseudonym(patient)` for HL7 v2 with a PID, else the sender (or MSH-4
    facility)."""
    if fmt is Format.hl7v2:
        try:
            header = read_msh(payload)
        except HeaderError:
            return sender
        return hl7v2_key(payload, header, sender)
    return sender


def hl7v2_key(payload: bytes, header: MshHeader, sender: str) -> str:
    """`inbound_key` of an HL7 v2 message whose MSH was already read (no second read)."""
    facility = header.sending_facility or sender
    patient = patient_identifier(payload, header)
    return f"{facility}|{pseudonym(patient)}" if patient else facility
