"""Orders, results, pharmacy, problems, financial and referral messages through the real
worker on the real broker: every corpus message of tests/corpus/hl7v2_orders becomes its
resources on carelog.fhir.changes, none is rejected, and a type carelog does not translate
is kept on carelog.rejected as not-supported; a malformed optional field reaches the change
events as a warning naming it."""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from processors.hl7v2.mapping import map_hl7v2
from schemas.events import Channel, Format, InboundMessage, Rejected, ResourceChanged
from streams.event_codec import encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import FHIR_CHANGES, REJECTED, inbound_topic
from tests.processors.worker_harness import SharedWorker, Worker, read_all, wait_for

pytestmark = pytest.mark.kafka

CORPUS = Path(__file__).resolve().parents[1] / "corpus" / "hl7v2_orders"
FILES = sorted(CORPUS.glob("*.hl7"))
UNSUPPORTED = (
    b"MSH|^~\\&|APP|NWH|CARELOG|CARELOG|20261110090000-0500||QRY^A19^QRY_A19|NWH-QRY-0001|P|2.5.1\r"
    b"QRD|20261110090000|R|I|Q1|||10^RD|MRN6610^^^NWH^MR|DEM\r"
)

# OBX-14 of the first OBX is not a date/time: dropped, the rest mapped, a warning on the events.
TOLERATED = (
    b"MSH|^~\\&|LAB|NWH|CARELOG|CARELOG|20261110090000-0500||ORU^R01^ORU_R01|NWH-TOL-0001|P|2.5.1\r"
    b"PID|1||MRN7710^^^NWH^MR||Tolerant^Tess||19700101|F\r"
    b"OBR|1||FTOL-1^LAB|718-7^Hemoglobin^LN|||20261110080000-0500||||||||||||||||||F\r"
    b"OBX|1|NM|718-7^Hemoglobin^LN||13.9|g/dL|||||F|||yesterday\r"
    b"OBX|2|NM|4544-3^Hematocrit^LN||41|%|||||F\r"
)


def _event(payload: bytes) -> InboundMessage:
    control = payload.split(b"\r", 1)[0].split(b"|")[9].decode()
    return InboundMessage.received(
        payload, channel=Channel.mllp, format=Format.hl7v2,
        content_type="x-application/hl7-v2+er7", sender="NWH", idempotency_key=control,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sent(
    kafka_settings: Settings, shared_worker: SharedWorker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, dict[str, InboundMessage]]]:
    """The shared worker; every corpus message (and one unsupported type) published once, in
    order."""
    events = {f.name: _event(f.read_bytes()) for f in FILES}
    events["unsupported"] = _event(UNSUPPORTED)
    events["tolerated"] = _event(TOLERATED)
    worker = shared_worker.running(lambda: tmp_path_factory.mktemp("worker"))
    with EventProducer(kafka_settings) as producer:
        producer.send_many(
            Outgoing(inbound_topic(Format.hl7v2), "NWH|MRN6610", encode_event(e))
            for e in events.values()
        )
    yield worker, events


def _changed_ids(settings: Settings) -> set[str]:
    return {
        e.resource_id for _, e in read_all(settings, FHIR_CHANGES) if isinstance(e, ResourceChanged)
    }


def _rejections(settings: Settings) -> dict[str, list[Rejected]]:
    """Rejections on the log, by the id of the event rejected."""
    found: dict[str, list[Rejected]] = defaultdict(list)
    for _, e in read_all(settings, REJECTED):
        if isinstance(e, Rejected) and e.original_event_id:
            found[e.original_event_id].append(e)
    return found


def _resource_ids(path: Path) -> set[str]:
    return {r["id"] for r in map_hl7v2(path.read_bytes()).resources}


Outcome = tuple[set[str], dict[str, list[Rejected]]]


@pytest.fixture(scope="module")
def outcome(kafka_settings: Settings, sent: tuple[Worker, dict[str, InboundMessage]]) -> Outcome:
    """Wait once (at most 180 s) until every message's resources changed and the unsupported
    type was rejected, then read the log once for all the tests: (changed ids, rejections)."""
    worker, events = sent
    expected = set().union(*map(_resource_ids, FILES))
    unsupported = events["unsupported"].event_id

    def settled() -> bool:
        return expected <= _changed_ids(kafka_settings) and unsupported in _rejections(
            kafka_settings
        )

    with contextlib.suppress(AssertionError):  # a test names what is missing, with the log
        wait_for(settled, 180, worker)
    return _changed_ids(kafka_settings), _rejections(kafka_settings)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_message_becomes_its_resources_through_the_worker(
    sent: tuple[Worker, dict[str, InboundMessage]], outcome: Outcome, path: Path
) -> None:
    worker, events = sent
    changed, rejections = outcome
    assert _resource_ids(path) <= changed, worker.tail()
    assert rejections.get(events[path.name].event_id, []) == []


def test_a_type_carelog_does_not_translate_is_kept_as_not_supported(
    sent: tuple[Worker, dict[str, InboundMessage]], outcome: Outcome
) -> None:
    worker, events = sent
    (rejection,) = outcome[1].get(events["unsupported"].event_id, []) or [None]
    assert rejection is not None, worker.tail()
    assert "not-supported" in rejection.operation_outcome
    assert "QRY^A19" in rejection.reason


def test_a_malformed_optional_field_arrives_as_a_warning_on_the_changes(
    kafka_settings: Settings, sent: tuple[Worker, dict[str, InboundMessage]]
) -> None:
    worker, events = sent
    event = events["tolerated"]
    shared = {"Organization"}  # the lab: the other results changed it first
    expected = {r["id"] for r in map_hl7v2(TOLERATED).resources if r["resourceType"] not in shared}

    def changes() -> list[ResourceChanged]:
        return [
            e
            for _, e in read_all(kafka_settings, FHIR_CHANGES)
            if isinstance(e, ResourceChanged) and e.inbound_event_id == event.event_id
        ]

    wait_for(lambda: expected <= {c.resource_id for c in changes()}, 180, worker)
    assert _rejections(kafka_settings).get(event.event_id, []) == []
    for change in changes():
        outcome = orjson.loads(change.warnings or "{}")
        assert [(i["severity"], i["location"]) for i in outcome["issue"]] == [
            ("warning", ["OBX[1]-14"])
        ], change.resource_type
