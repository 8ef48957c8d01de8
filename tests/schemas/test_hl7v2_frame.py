from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import Format
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import read_er7, read_msh
from schemas.hl7v2.patient import message_patient
from streams.keys import hl7v2_key, inbound_key


def test_reads_the_msh_of_every_corpus_message(corpus: Path) -> None:
    for path in sorted((corpus / "hl7v2").glob("*.hl7")):
        header = read_msh(path.read_bytes())
        assert header.message_type and header.control_id and header.version, path.name


def test_latin1_message_keeps_its_character_set(corpus: Path) -> None:
    payload = (corpus / "hl7v2" / "adt_a01_latin1_zseg_v2.6.hl7").read_bytes()
    header = read_msh(payload)
    assert header.character_set == "8859/1"
    assert header.trigger == ("ADT", "A01")
    patient = message_patient(read_er7(payload))
    assert patient is not None and patient.key == "SE0099812^SAINT_ETIENNE"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (b"PID|1||X", "MSH"),
        (b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|CTRL|P", "MSH-12"),
        (b"MSH|^~\\&|A|B|C|D|20260101|||CTRL|P|2.5", "MSH-9"),
        (b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01||P|2.5", "MSH-10"),
        (b"MSH|", "MSH-2"),
        (b"MSHA^~\\&|", "MSH-1"),
        (b"MSH|^^\\&|A|B|C|D|20260101||ADT^A01|CTRL|P|2.5", "MSH-2"),
        (b"MSH|^|\\&|A|B|C|D|20260101||ADT^A01|CTRL|P|2.5", "MSH-2"),
        (b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|C|P|2.5||||||NOPE", "MSH-18"),
    ],
)
def test_missing_required_msh_fields_are_named(message: bytes, field: str) -> None:
    with pytest.raises(FormatError) as err:
        read_msh(message)
    assert err.value.location == field


def test_key_keeps_one_patient_of_one_facility_together() -> None:
    a = b"MSH|^~\\&|APP|FAC|R|R|2026||ADT^A01|1|P|2.5\rPID|1||123^^^AUTH^MR~999^^^SSA\r"
    b = b"MSH|^~\\&|APP|FAC|R|R|2026||ADT^A08|2|P|2.5\rPID|1||123^^^AUTH^MR\r"
    key = inbound_key(Format.hl7v2, a, "x")
    assert key == inbound_key(Format.hl7v2, b, "y")
    # The MRN is pseudonymous on the log (it outlives an erasure), still one key per patient.
    assert key.startswith("FAC|p-") and "AUTH" not in key
    c = b"MSH|^~\\&|APP|FAC|R|R|2026||ADT^A01|1|P|2.5\rPID|1||124^^^AUTH^MR\r"
    assert inbound_key(Format.hl7v2, c, "x") != key
    assert inbound_key(Format.fhir, b"{}", "app-1") == "app-1"


@given(st.binary(max_size=300))
def test_any_bytes_give_a_header_or_a_format_error(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        read_msh(data)
    with contextlib.suppress(FormatError):
        read_er7(data)


def test_key_from_a_read_header_is_the_inbound_key_for_every_corpus_message(corpus: Path) -> None:
    messages = sorted((corpus / "hl7v2").glob("*.hl7"))
    assert len(messages) >= 5
    for path in messages:
        payload = path.read_bytes()
        assert hl7v2_key(read_er7(payload), "s", message_patient(read_er7(payload))) == inbound_key(
            Format.hl7v2, payload, "s"
        ), path
