"""The catalogue of carelog's topics: one place for names, keys, partitions and configs.

The inbound topics, the change log, the audit trail and the dead letters are the record of
everything that happened, so they are kept forever (retention.ms=-1). carelog.schemas is
compacted: the last value per fingerprint is all anyone needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from schemas.events import Format

INBOUND_PREFIX: Final = "carelog.inbound."
FHIR_CHANGES: Final = "carelog.fhir.changes"
FHIR_TRANSLATED: Final = "carelog.fhir.translated"
REJECTED: Final = "carelog.rejected"
AUDIT: Final = "carelog.audit"
SCHEMAS: Final = "carelog.schemas"
KEYS: Final = "carelog.keys"
MESSAGE_KEYS_SUFFIX: Final = ".messages"  # carelog.keys.messages: the per-message keys

KEEP_FOREVER: Final = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def inbound_topic(fmt: Format | str) -> str:
    return f"{INBOUND_PREFIX}{Format(fmt).value}"


@dataclass(frozen=True)
class Topic:
    name: str
    key: str  # what the key is: it decides ordering
    holds: str  # which event, in which encoding
    partitions: int
    replication: int
    min_insync_replicas: int
    configs: dict[str, str] = field(default_factory=dict)

    def all_configs(self) -> dict[str, str]:
        return {**self.configs, "min.insync.replicas": str(self.min_insync_replicas)}


KEY_TOPIC: Final = Topic(
    KEYS,
    key="data key id (patient:<id>/<n>, resource:<type>/<n>)",
    holds="a data key wrapped by the master key (AES-GCM); a tombstone is a shredded key",
    partitions=1,
    replication=1,
    min_insync_replicas=1,
    # Compacted hard so a shredded key leaves the broker's disks soon: segments roll
    # hourly, the cleaner takes any dirty segment, tombstones go after an hour.
    configs={
        "cleanup.policy": "compact",
        "segment.ms": str(3600 * 1000),
        "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": str(3600 * 1000),
        "max.compaction.lag.ms": str(3600 * 1000),
    },
)


# Partitions of the topics the worker reads and writes (inbound, translated, changes), per
# environment, unless CARELOG_KAFKA_PARTITIONS says otherwise. They bound how many workers
# share the work, and each costs every worker that owns one a transaction per commit and
# batches of its own: on the 2 cores `carelog run` is made for, 2 partitions carried 1.21x
# the messages of 6 end to end (bench_e2e at 500 msg/s, A B B A, docs/figures.md).
PROCESSING_PARTITIONS: Final[dict[str, int]] = {"local": 2, "test": 2, "production": 12}


def processing_topics() -> tuple[str, ...]:
    """The topics whose partitions PROCESSING_PARTITIONS (or the setting) counts."""
    return (*(inbound_topic(f) for f in Format), FHIR_TRANSLATED, FHIR_CHANGES)


def _base(processing: int) -> list[Topic]:
    inbound = [
        Topic(
            inbound_topic(f),
            key="sender and patient identifier where known",
            holds="InboundMessage (Avro single-object)",
            partitions=processing,
            replication=1,
            min_insync_replicas=1,
            configs=dict(KEEP_FOREVER),
        )
        for f in Format
    ]
    return [
        *inbound,
        Topic(
            FHIR_CHANGES,
            key="ResourceType/id",
            holds="ResourceChanged (Avro single-object)",
            partitions=processing,
            replication=1,
            min_insync_replicas=1,
            configs=dict(KEEP_FOREVER),
        ),
        Topic(
            FHIR_TRANSLATED,
            key="ResourceType/id",
            holds="ResourceTranslated (Avro single-object): processors' internal repartition",
            partitions=processing,
            replication=1,
            min_insync_replicas=1,
            # Rebuilt by replaying the inbound topics, so it need not be kept forever.
            configs={"retention.ms": str(7 * 24 * 3600 * 1000), "cleanup.policy": "delete"},
        ),
        Topic(
            AUDIT,
            key="AuditEvent/id",
            # The gateway's record of every access to FHIR data, appended directly (not through
            # the processors) so that reads never queue behind writes.
            holds="ResourceChanged of AuditEvent, version 1 (Avro single-object)",
            partitions=6,
            replication=1,
            min_insync_replicas=1,
            configs=dict(KEEP_FOREVER),
        ),
        Topic(
            REJECTED,
            key="the original key",
            holds="Rejected (Avro single-object)",
            partitions=3,
            replication=1,
            min_insync_replicas=1,
            configs=dict(KEEP_FOREVER),
        ),
        Topic(
            SCHEMAS,
            key="schema fingerprint (16 hex digits)",
            holds="schema in Avro parsing canonical form (JSON)",
            partitions=1,
            replication=1,
            min_insync_replicas=1,
            configs={"cleanup.policy": "compact"},
        ),
        KEY_TOPIC,
        replace(
            KEY_TOPIC,
            name=KEYS + MESSAGE_KEYS_SUFFIX,
            key="per-message data key id (msg:<id>), apart: read only by who opens such events",
        ),
    ]


# Per-environment overrides: replication and durability grow with the cluster.
_OVERRIDES: Final[dict[str, dict[str, int]]] = {
    "local": {},
    "test": {},
    "production": {"replication": 3, "min_insync_replicas": 2},
}


def catalogue(environment: str = "local", partitions: int | None = None) -> list[Topic]:
    """The topics of one environment (local, test or production); `partitions`, when given
    (CARELOG_KAFKA_PARTITIONS), is that of the processing topics."""
    try:
        overrides = _OVERRIDES[environment]
    except KeyError:
        known = ", ".join(_OVERRIDES)
        raise ValueError(
            f"unknown environment {environment!r} (CARELOG_ENVIRONMENT); known: {known}"
        ) from None
    if partitions is not None and partitions < 1:
        raise ValueError(f"a topic needs at least one partition, got {partitions}")
    topics = _base(partitions or PROCESSING_PARTITIONS[environment])
    if environment == "production":
        unscaled = (SCHEMAS, KEYS, KEYS + MESSAGE_KEYS_SUFFIX, *processing_topics())
        topics = [
            replace(t, partitions=max(t.partitions, 12)) if t.name not in unscaled else t
            for t in topics
        ]
    return [replace(t, **overrides) for t in topics]  # type: ignore[arg-type]
