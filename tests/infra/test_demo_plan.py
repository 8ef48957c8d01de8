"""The demo's synthetic stream, without a broker: deterministic, and every message means
what it should to the processors (translated, or rejected with a reason for the bad ones)."""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest

from api.dicomweb.header import read_dicom_header
from infra.demo.outgoing import Outgoing
from infra.demo.plan import Plan, make_plan
from infra.demo.rejections import held_bytes
from processors.pipeline import Record, translate_record
from schemas.events import Channel, InboundMessage, Rejected
from schemas.hl7v2.frame import read_msh
from streams.event_codec import decode_event, encode_event
from streams.topics import REJECTED


@cache
def plan(seed: int = 7, patients: int = 12) -> Plan:
    return make_plan(seed, patients)


def translated(message: Outgoing, part: bytes) -> list[Rejected] | Counter[str]:
    """What processors/pipeline does with the event the gateway makes of `part`: the
    Rejected events, or the count of translated resources by type."""
    event = InboundMessage.received(
        part, channel=Channel.http, format=message.format,
        content_type=message.content_type or "x-application/hl7-v2+er7", sender="demo-test",
        headers=message.event_headers,
    )  # fmt: skip
    outputs = translate_record(Record("carelog.inbound.x", 0, 0, b"k", encode_event(event)))
    rejected = [decode_event(o.value) for o in outputs if o.topic == REJECTED]
    if rejected:
        return [r for r in rejected if isinstance(r, Rejected)]
    return Counter(o.key.decode().split("/")[0] for o in outputs if o.key)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first, again = make_plan(3, 8), make_plan(3, 8)
    assert [m.body for m in first.messages] == [m.body for m in again.messages]
    assert [m.label for m in first.messages] == [m.label for m in again.messages]
    other = make_plan(4, 8)
    assert [m.body for m in other.messages] != [m.body for m in first.messages]
    assert first.shown.fhir_id == again.shown.fhir_id != other.shown.fhir_id


def test_the_stream_covers_every_channel_and_scales_with_patients() -> None:
    small, big = make_plan(7, 4), make_plan(7, 40)
    streams = Counter(m.stream for m in small.messages)
    assert set(streams) == {
        "ADT over MLLP", "labs over HTTP", "labs over MLLP", "bedside vitals",
        "imaging (STOW-RS)", "FHIR app writes", "deliberately bad",
    }  # fmt: skip
    assert len(big.messages) > 5 * len(small.messages) // 2
    assert len(small.bad) == len(big.bad) >= 5
    triggers = Counter(m.label.split()[-1] for m in big.messages if m.stream == "ADT over MLLP")
    assert triggers["ADT^A01"] == 40 and triggers["ADT^A08"] and triggers["ADT^A02"]
    assert triggers["ADT^A03"]
    # One patient's ADT events go out in order on one connection.
    order = [m.label.split()[-1] for m in big.messages if m.label.startswith(big.shown.mrn)
             and m.stream == "ADT over MLLP"]  # fmt: skip
    assert order == ["ADT^A01", "ADT^A08", "ADT^A02", "ADT^A03"]


def test_every_good_message_translates_and_every_bad_one_is_rejected_with_a_reason() -> None:
    resources: Counter[str] = Counter()
    for message in plan().messages:
        for part in message.parts:
            outcome = translated(message, part)
            if message.bad:
                assert isinstance(outcome, list) and outcome, message.label
                assert all(r.reason and r.stage == "translate" for r in outcome), message.label
                assert message.tag.encode() in held_bytes(outcome[0]), message.label
            else:
                assert isinstance(outcome, Counter), (message.label, outcome)
                resources.update(outcome)
    assert {"Patient", "Encounter", "Observation", "DiagnosticReport", "ImagingStudy",
            "Condition", "AllergyIntolerance", "Device"} <= set(resources)  # fmt: skip


def test_the_shown_patient_is_one_patient_across_every_channel() -> None:
    p = plan()
    pid = p.shown.fhir_id
    about = [m for m in p.messages if not m.bad and (
        p.shown.mrn in m.label or p.shown.mrn.lower() in m.label)]  # fmt: skip
    kinds = {m.stream for m in about}
    assert {"ADT over MLLP", "bedside vitals", "imaging (STOW-RS)", "FHIR app writes"} <= kinds
    for message in about:
        for part in message.parts:
            event = InboundMessage.received(
                part, channel=Channel.http, format=message.format, content_type="x",
                sender="t", headers=message.event_headers,
            )  # fmt: skip
            outputs = translate_record(Record("t", 0, 0, None, encode_event(event)))
            keys = {o.key.decode() for o in outputs if o.key}
            # the resources are sealed on the log: read them as a consumer does
            refs = "".join(getattr(decode_event(o.value), "resource", None) or "" for o in outputs)
            assert f"Patient/{pid}" in keys or f"Patient/{pid}" in refs, message.label


@pytest.mark.parametrize("index", range(3))
def test_gateway_frame_checks_pass_for_good_messages(index: int) -> None:
    """What the gateway checks at the door (MSH, DICOM header) passes for good messages."""
    for message in plan(seed=index, patients=3).messages:
        if message.bad:
            continue
        for part in message.parts:
            if message.format.value == "hl7v2":
                assert read_msh(part).control_id
            elif message.format.value == "dicom":
                assert read_dicom_header(part).study_instance_uid in message.path


def test_a_demo_needs_a_patient() -> None:
    with pytest.raises(ValueError, match="at least one patient"):
        make_plan(1, 0)
