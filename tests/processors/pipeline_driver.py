"""processors.pipeline's two stages called as the worker calls them, without a broker."""

from __future__ import annotations

from collections import Counter
from typing import TypeVar

from processors.pipeline import Record, translate_record, version_record
from processors.versioning import VersionState
from schemas.events import InboundMessage, Rejected, ResourceChanged
from streams.event_codec import decode_event, encode_event
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, REJECTED, inbound_topic

E = TypeVar("E", Rejected, ResourceChanged)


class Pipeline:
    """Translate, then version with the per-key state carried from event to event."""

    def __init__(self) -> None:
        self.states: dict[bytes | None, VersionState | None] = {}
        self.offsets: Counter[str] = Counter()

    def _record(self, topic: str, key: bytes | None, value: bytes) -> Record:
        offset = self.offsets[topic]
        self.offsets[topic] += 1
        return Record(topic, 0, offset, key, value)

    def run(self, event: InboundMessage) -> tuple[list[ResourceChanged], list[Rejected]]:
        changes: list[ResourceChanged] = []
        rejected: list[Rejected] = []
        inbound = self._record(inbound_topic(event.format), b"corpus", encode_event(event))
        for out in translate_record(inbound):
            if out.topic == REJECTED:
                rejected.append(decoded(out.value, Rejected))
                continue
            assert out.topic == FHIR_TRANSLATED, out.topic
            record = self._record(out.topic, out.key, out.value)
            versioned, self.states[out.key] = version_record(record, self.states.get(out.key))
            for v in versioned:
                if v.topic == REJECTED:
                    rejected.append(decoded(v.value, Rejected))
                else:
                    assert v.topic == FHIR_CHANGES, v.topic
                    changes.append(decoded(v.value, ResourceChanged))
        return changes, rejected


def decoded(value: bytes, kind: type[E]) -> E:
    event = decode_event(value)
    assert isinstance(event, kind), event
    return event
