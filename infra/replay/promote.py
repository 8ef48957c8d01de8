"""`carelog replay promote NAME`: make what the shadow shows live, through the live pipeline.

The shadow store is not swapped in. The live store is a projection of carelog.fhir.changes,
and the log stays the source of truth: the shadow's versions are on its own topic, which
no projection, sink or rebuild reads, and the worker's versioning table knows nothing of
them. A swapped-in store would disagree with both: the next live change of a resource would
carry a version the store already holds for other content (and be skipped), and the next
`carelog projection rebuild` or a new API node would bring the old content back.

What is done instead: the inbound messages whose translation gave the differing resources
(the shadow's change events name their inbound positions) are appended to their inbound
topics again, in their original order, with the header `carelog-replay-of=<name>`. The live
worker (running the new mapping: deploy it first) translates them and versions the
differences as new versions on carelog.fhir.changes, which every reader folds as usual.
Unchanged resources give no new version (the content hash is the same). Promoting twice
sends nothing twice (the header is looked for first). Resources the shadow removes are not
deleted: the pipeline never deletes what a message no longer yields; they are listed.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

from infra.history.redrive import Resend, append_again, marked_since
from infra.replay.diff import StoreDiff
from infra.replay.names import Shadow
from schemas.events import InboundMessage, ResourceChanged
from streams.event_codec import decode_event
from streams.log_scan import Position, read_events, read_log
from streams.settings import Settings

REPLAY_HEADER = "carelog-replay-of"
REPLAY_NAMESPACE = uuid.UUID("c3a4f0d2-6b1e-4a8f-9d57-0e2b7c9a4f13")


@dataclass
class Promotion:
    sent: list[str] = field(default_factory=list)  # where each inbound message went
    already: str | None = None  # where an earlier promotion of this shadow is
    not_deleted: list[str] = field(default_factory=list)


def inbound_positions(
    settings: Settings, shadow: Shadow, keys: set[str]
) -> set[tuple[str, int, int]]:
    """Inbound positions of the shadow's changes to `keys`."""
    found: set[tuple[str, int, int]] = set()
    for record, event in read_events(settings, [shadow.changes], ResourceChanged):
        if (record.key or b"").decode() in keys:
            found.add((event.inbound_topic, event.inbound_partition, event.inbound_offset))
    return found


def promote(
    settings: Settings, shadow: Shadow, diff: StoreDiff, *, again: bool = False
) -> Promotion:
    manifest = json.loads(shadow.manifest.read_text())
    result = Promotion(not_deleted=sorted(k for k, v in diff.differing.items() if v == "removed"))
    if not again:
        marked = marked_since(settings, REPLAY_HEADER, int(manifest["started_ms"]))
        if shadow.name in marked:
            result.already = marked[shadow.name]
            return result
    keys = {k for k, v in diff.differing.items() if v != "removed"}
    positions = inbound_positions(settings, shadow, keys)
    if not positions:
        return result
    starts: dict[Position, int] = {}
    for topic, partition, offset in positions:
        starts[(topic, partition)] = min(offset, starts.get((topic, partition), offset))
    wanted = [
        r for r in read_log(settings, {t for t, _ in starts}, starts=starts)
        if (r.topic, r.partition, r.offset) in positions
    ]  # fmt: skip
    wanted.sort(key=lambda r: (r.timestamp_ms, r.topic, r.partition, r.offset))
    items = []
    for record in wanted:
        inbound = decode_event(record.value)
        assert isinstance(inbound, InboundMessage), record.where
        event_id = str(uuid.uuid5(REPLAY_NAMESPACE, f"{shadow.name}|{inbound.event_id}"))
        items.append(Resend(inbound, record.key, event_id, (REPLAY_HEADER, shadow.name)))
    result.sent = append_again(settings, items)
    return result
