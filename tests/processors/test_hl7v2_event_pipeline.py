"""Every ADT / SIU / MDM trigger event added for issue 13 (part A) through the real worker on the
real broker: one message per type (tests/corpus/hl7v2_events), each with identifiers of its own
so that no message is an unchanged repeat of another (but for the places, clinicians
and payors they share), must come out as the ResourceChanged
events of the resources the translator maps, and never as a Rejected."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from processors.hl7v2.mapping import map_hl7v2
from schemas.events import Channel, Format, InboundMessage, Rejected, ResourceChanged
from streams.event_codec import encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import FHIR_CHANGES, REJECTED, inbound_topic
from tests.processors.worker_harness import SharedWorker, read_all, wait_for

pytestmark = pytest.mark.kafka

EVENTS = Path(__file__).resolve().parents[1] / "corpus" / "hl7v2_events"
CASES = sorted(EVENTS.glob("*.hl7"))
# Business identifiers in the corpus messages: patients, visits, accounts, documents, slots.
_IDENTIFIER = re.compile(rb"\b(MRN\d+|V\d{4}|ACC\d+|DOC-\d+|APT-\d+|TMP\d+)\b")


# Places, clinicians and payors several messages name: only the first one changes them.
_SHARED = frozenset({"Location", "Practitioner", "Organization"})


def _own_identifiers(payload: bytes, tag: str) -> bytes:
    return _IDENTIFIER.sub(lambda m: m.group(1) + b"-" + tag.encode(), payload)


def _expected(event: InboundMessage) -> set[str]:
    return {
        f"{r['resourceType']}/{r['id']}"
        for r in map_hl7v2(event.payload or b"").resources
        if r["resourceType"] not in _SHARED
    }


def _outcomes(settings: Settings) -> tuple[dict[str, set[str]], set[str]]:
    """(inbound event id -> ResourceType/id changed, inbound event ids rejected)."""
    changed: dict[str, set[str]] = defaultdict(set)
    for _, event in read_all(settings, FHIR_CHANGES):
        if isinstance(event, ResourceChanged):
            changed[event.inbound_event_id].add(f"{event.resource_type}/{event.resource_id}")
    rejected = {
        e.original_event_id
        for _, e in read_all(settings, REJECTED)
        if isinstance(e, Rejected) and e.original_event_id
    }
    return changed, rejected


Outcome = tuple[dict[str, InboundMessage], dict[str, set[str]], set[str]]


@pytest.fixture(scope="module")
def outcome(
    kafka_settings: Settings, shared_worker: SharedWorker, tmp_path_factory: pytest.TempPathFactory
) -> Outcome:
    """With the shared worker running, publish every corpus message once and wait until each
    is either rejected or has changed what it maps to; (messages, changes, rejections)."""
    worker = shared_worker.running(lambda: tmp_path_factory.mktemp("worker"))
    tag = uuid.uuid4().hex[:8]
    messages = {
        path.stem: InboundMessage.received(
            _own_identifiers(path.read_bytes(), f"{tag}{n}"),
            channel=Channel.mllp,
            format=Format.hl7v2,
            content_type="x-application/hl7-v2+er7",
            sender="NWH",
            idempotency_key=f"{path.stem}-{tag}",
        )
        for n, path in enumerate(CASES)
    }
    expected = {e.event_id: _expected(e) for e in messages.values()}
    with EventProducer(kafka_settings) as producer:
        producer.send_many(
            Outgoing(inbound_topic(Format.hl7v2), f"NWH|{name}", encode_event(event))
            for name, event in messages.items()
        )
    seen: Outcome = (messages, {}, set())

    def settled() -> bool:
        changed, rejected = _outcomes(kafka_settings)
        seen[1].update(changed)
        seen[2].update(rejected)
        return all(i in rejected or want <= changed.get(i, set()) for i, want in expected.items())

    wait_for(settled, 240, worker, every=2.0)
    return seen


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_each_new_trigger_event_translates_through_the_worker(case: Path, outcome: Outcome) -> None:
    messages, changed, rejected = outcome
    event = messages[case.stem]
    assert event.event_id not in rejected
    assert _expected(event) <= changed[event.event_id]
