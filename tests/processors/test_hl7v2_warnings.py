"""A malformed optional HL7 v2 field reaches the change events as a warning (ResourceTranslated
v3 / ResourceChanged v2 `warnings`), through both stages and the Avro codec; a clean message
carries none, and a bad required field is still a Rejected with its reason."""

from __future__ import annotations

import orjson

from schemas.events import Channel, Format, InboundMessage
from tests.processors.pipeline_driver import Pipeline

MSH = "MSH|^~\\&|LAB|NWH|CARELOG|CARELOG|20261020101500-0500||{type}|{control}|P|2.5.1"
PID = "PID|1||W100^^^NWH^MR||Doe^Jane||19800101|F"


def _event(*segments: str) -> InboundMessage:
    payload = "\r".join(segments).encode()
    return InboundMessage.received(
        payload, channel=Channel.http, format=Format.hl7v2, content_type="application/hl7-v2",
        sender="test",
    )  # fmt: skip


def test_a_dropped_optional_field_is_carried_on_every_change_of_the_message() -> None:
    message = _event(
        MSH.format(type="ADT^A08^ADT_A01", control="W1"),
        "EVN|A08|20261020101500-0500",
        PID,
        "PV1|1|I|3EAST^301^A^NWH||||||||||||||||V100^^^NWH^VN",
        "AL1|1|DA|PCN^Penicillin^L|SV|hives|MI",
    )
    changes, rejected = Pipeline().run(message)
    assert rejected == []
    kinds = {c.resource_type for c in changes}
    assert {"Patient", "Encounter", "AllergyIntolerance"} <= kinds
    allergy = next(c for c in changes if c.resource_type == "AllergyIntolerance")
    assert "onsetDateTime" not in orjson.loads(allergy.resource or "{}")
    for change in changes:
        assert change.warnings is not None
        outcome = orjson.loads(change.warnings)
        assert outcome["resourceType"] == "OperationOutcome"
        assert [(i["severity"], i["location"]) for i in outcome["issue"]] == [
            ("warning", ["AL1[1]-6"])
        ]
        assert "'MI'" in outcome["issue"][0]["diagnostics"]


def test_a_clean_message_carries_no_warnings() -> None:
    message = _event(
        MSH.format(type="ADT^A08^ADT_A01", control="W2"),
        "EVN|A08|20261020101500-0500",
        PID,
        "AL1|1|DA|PCN^Penicillin^L|SV|hives|20200101",
    )
    changes, rejected = Pipeline().run(message)
    assert rejected == [] and changes
    assert all(c.warnings is None for c in changes)


def test_a_bad_required_field_is_rejected_with_the_reason() -> None:
    message = _event(MSH.format(type="ADT^A08^ADT_A01", control="W3"), "PID|1||||Doe^Jane")
    changes, rejected = Pipeline().run(message)
    assert changes == []
    assert len(rejected) == 1
    outcome = orjson.loads(rejected[0].operation_outcome)
    assert outcome["issue"][0]["location"] == ["PID-3"]
