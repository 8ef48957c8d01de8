"""`carelog replay --from X --into NAME`: the inbound history through the current translators,
validator and versioning (processors/pipeline.py, the very functions the worker calls) into
the shadow's topics and store file. Live topics, consumer groups and store are only read.

From the beginning the shadow starts empty. From a time or offsets it starts as a copy of
the live store, and the versioning state of a resource not yet replayed is read from that
copy, so versions continue where the live ones are and only what the replayed messages
change differs.

Inbound records are replayed in the order they were appended (Kafka timestamp, then
position; each partition in its own order), streamed: memory holds a batch, not the history.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

from infra.history.redrive import INBOUND_TOPICS
from infra.replay.names import Shadow, ShadowError
from infra.replay.start import Start
from processors.canonical import content_of
from processors.pipeline import OutputRecord, Record, translate_record, version_record
from processors.version_policy import Policy, policy_for
from processors.versioning import VersionState
from projections.fhir_store.apply import Applier
from projections.fhir_store.schema import connect
from projections.fhir_store.store import FhirStore
from schemas.events import ResourceTranslated, utc_now
from streams.admin import admin_client, apply_catalogue, existing_topics
from streams.event_codec import decode_event
from streams.log_scan import LogRecord, read_log
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import FHIR_TRANSLATED

BATCH = 500  # inbound records per round trip to the broker


@dataclass
class ReplayStats:
    inbound: int = 0
    translated: int = 0
    changes: int = 0
    rejections: int = 0
    seconds: float = 0.0


class ShadowVersions:
    """The versioning table of the shadow: in memory, seeded from the shadow store's copy of
    the live store for keys the replay has not touched yet."""

    _CURRENT = (
        "SELECT r.version, r.deleted, v.content_hash, v.json FROM resources r "
        "JOIN versions v ON v.rid = r.rid AND v.version = r.version WHERE r.type = ? AND r.id = ?"
    )

    def __init__(self, seed: sqlite3.Connection | None) -> None:
        self._seed = seed
        self._states: dict[str, VersionState] = {}

    def get(self, key: str, translated: bytes) -> VersionState | None:
        if key in self._states or self._seed is None:
            return self._states.get(key)
        rtype, _, rid = key.partition("/")
        row = self._seed.execute(self._CURRENT, (rtype, rid)).fetchone()
        if row is None:
            return None
        version, deleted, digest, body = row
        kept = None
        event = decode_event(translated)
        merged = isinstance(event, ResourceTranslated) and policy_for(event) is Policy.MERGE
        if merged and not deleted:
            kept = content_of(json.loads(body))
            kept.pop("meta", None)
        return VersionState(version, digest, bool(deleted), {}, kept)

    def put(self, key: str, state: VersionState) -> None:
        self._states[key] = state


def _copy_store(live: Path, to: Path) -> None:
    """A consistent copy of the live store (SQLite's online backup: the projection may write)."""
    source = connect(live, readonly=True)
    target = sqlite3.connect(str(to))
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def write_manifest(shadow: Shadow, **fields: object) -> None:
    current = json.loads(shadow.manifest.read_text()) if shadow.manifest.exists() else {}
    shadow.manifest.write_text(json.dumps({**current, **fields}, indent=2, default=str))


def replay(settings: Settings, shadow: Shadow, start: Start, live_store: Path) -> ReplayStats:
    """Replay into `shadow` (which must not exist yet); returns what it did."""
    left = [t for t in existing_topics(admin_client(settings)) if t.startswith(shadow.prefix)]
    if shadow.manifest.exists() or shadow.store.exists() or left:
        raise ShadowError(f"shadow {shadow.name} exists: `carelog replay drop {shadow.name}`")
    shadow.var_dir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    seeded = not start.from_beginning and live_store.exists()
    write_manifest(
        shadow, name=shadow.name, created_at=utc_now().isoformat(), started_ms=int(time.time() * 1000),
        start=start.text, seeded_from=str(live_store) if seeded else None,
        topics=[shadow.translated, shadow.changes, shadow.rejected], store=str(shadow.store),
    )  # fmt: skip
    apply_catalogue(shadow.topics(settings.environment, settings.kafka.partitions), settings)
    if seeded:
        _copy_store(live_store, shadow.store)
    records = read_log(
        settings, INBOUND_TOPICS, since_ms=start.since_ms, starts=start.offsets, by_time=True
    )
    stats = ReplayStats()
    store = FhirStore.open(shadow.store)
    seed = connect(shadow.store, readonly=True) if seeded else None
    try:
        applier = store.applier()
        versions = ShadowVersions(seed)
        with EventProducer(settings) as producer:
            while batch := list(islice(records, BATCH)):
                stats.inbound += len(batch)
                _replay_batch(batch, shadow, producer, versions, applier, stats)
    finally:
        if seed is not None:
            seed.close()
        store.close()
    stats.seconds = time.monotonic() - began
    write_manifest(shadow, stats=asdict(stats))
    return stats


def _replay_batch(
    batch: list[LogRecord],
    shadow: Shadow,
    producer: EventProducer,
    versions: ShadowVersions,
    applier: Applier,
    stats: ReplayStats,
) -> None:
    outputs = [
        out
        for r in batch
        for out in translate_record(Record(r.topic, r.partition, r.offset, r.key, r.value))
    ]
    placed = producer.send_many(_to_shadow(shadow, outputs))
    folded: list[tuple[str, int, int, bytes | None]] = []
    versioned: list[OutputRecord] = []
    for out, at in zip(outputs, placed, strict=True):
        if out.topic != FHIR_TRANSLATED:  # a translate-stage rejection
            folded.append((at.topic, at.partition, at.offset, out.value))
            stats.rejections += 1
            continue
        stats.translated += 1
        key = (out.key or b"").decode()
        items, state = version_record(
            Record(at.topic, at.partition, at.offset, out.key, out.value),
            versions.get(key, out.value),
        )
        if state is not None:
            versions.put(key, state)
        versioned.extend(items)
    for out, at in zip(versioned, producer.send_many(_to_shadow(shadow, versioned)), strict=True):
        folded.append((at.topic, at.partition, at.offset, out.value))
        if at.topic == shadow.changes:
            stats.changes += 1
        else:
            stats.rejections += 1
    if folded:
        applier.apply(folded)


def _to_shadow(shadow: Shadow, outputs: list[OutputRecord]) -> list[Outgoing]:
    return [Outgoing(shadow.topic(o.topic), o.key, o.value) for o in outputs]
