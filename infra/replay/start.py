"""Where a replay starts: `beginning`, a time, or inbound offsets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from schemas.events import Format
from streams.log_scan import Position
from streams.topics import INBOUND_PREFIX, inbound_topic


@dataclass(frozen=True)
class Start:
    """`since_ms`: inbound records appended at or after it; `offsets`: those partitions from
    those offsets (the others are not replayed); neither: the whole inbound history."""

    text: str = "beginning"
    since_ms: int | None = None
    offsets: dict[Position, int] | None = None

    @property
    def from_beginning(self) -> bool:
        return self.since_ms is None and self.offsets is None


def parse_start(text: str) -> Start:
    """`beginning`; an ISO 8601 time (UTC when no zone); or `hl7v2:0=120,fhir:3=7` (format or
    full inbound topic name, partition, first offset to replay)."""
    text = text.strip()
    if text in ("", "beginning"):
        return Start()
    if "=" in text:
        offsets: dict[Position, int] = {}
        for part in text.split(","):
            try:
                where, offset = part.split("=")
                topic, partition = where.rsplit(":", 1)
                if not topic.startswith(INBOUND_PREFIX):
                    topic = inbound_topic(Format(topic))
                offsets[(topic, int(partition))] = int(offset)
            except ValueError:
                raise ValueError(
                    f"--from {part!r}: expected FORMAT:PARTITION=OFFSET, e.g. hl7v2:0=120"
                ) from None
        return Start(text, offsets=offsets)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--from {text!r}: expected beginning, an ISO 8601 time or FORMAT:PARTITION=OFFSET"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Start(text, since_ms=int(moment.timestamp() * 1000))
