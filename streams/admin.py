"""Applying the topic catalogue to a cluster, idempotently, and reading back what is there."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicCollection, TopicPartition

# confluent-kafka's stubs do not re-export these, though the package does (and documents them).
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ClusterMetadata,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
)

from streams.errors import BrokerUnavailable
from streams.kafka_config import client_config
from streams.settings import Settings, get_settings
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, Topic, catalogue

# The versioning state of a translated partition is the changes of the same partition, both
# keyed ResourceType/id (processors/version_store.py): with partitions added, a resource
# hashes to a partition that holds none of its versions, and its versions would start again.
# (A replay's shadow topics end alike: carelog.shadow.<name>.fhir.changes.)
_KEYED_STATE = tuple(name.removeprefix("carelog.") for name in (FHIR_TRANSLATED, FHIR_CHANGES))


class PartitionsRefused(ValueError):
    """The catalogue asks for more partitions of a topic whose records may not move."""


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str]


def admin_client(settings: Settings | None = None) -> AdminClient:
    return AdminClient(client_config(settings or get_settings()))


def _cluster_metadata(admin: AdminClient, timeout: float) -> ClusterMetadata:
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(f"no broker answered: {exc}. Is it up? (carelog kafka up)") from exc


def existing_topics(admin: AdminClient, timeout: float = 10.0) -> dict[str, TopicState]:
    meta = _cluster_metadata(admin, timeout)
    names = [n for n in meta.topics if not n.startswith("__")]
    configs: dict[str, dict[str, str]] = {}
    if names:
        resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in names]
        for res, fut in admin.describe_configs(resources).items():
            entries = fut.result(timeout)
            configs[res.name] = {k: str(e.value) for k, e in entries.items() if not e.is_default}
    return {
        n: TopicState(
            name=n,
            partitions=len(meta.topics[n].partitions),
            replication=len(next(iter(meta.topics[n].partitions.values())).replicas)
            if meta.topics[n].partitions
            else 0,
            configs=configs.get(n, {}),
        )
        for n in names
    }


def apply_catalogue(
    topics: list[Topic] | None = None, settings: Settings | None = None, timeout: float = 30.0
) -> dict[str, str]:
    """Create missing topics, add partitions, and set configs that differ. Returns name -> action."""
    settings = settings or get_settings()
    if topics is None:
        topics = catalogue(settings.environment, settings.kafka.partitions)
    admin = admin_client(settings)
    present = existing_topics(admin)
    actions: dict[str, str] = {}
    for t in topics:  # before anything is changed
        state = present.get(t.name)
        if state is None or state.partitions >= t.partitions or not t.name.endswith(_KEYED_STATE):
            continue
        if _holds_records(admin, t.name, state.partitions, timeout):
            raise PartitionsRefused(
                f"{t.name} has {state.partitions} partitions and holds records; "
                f"{t.partitions} would move resources to partitions that hold none of their "
                "versions, which would start again at 1. Keep CARELOG_KAFKA_PARTITIONS at "
                f"{state.partitions} for this cluster (docs/deployment.md, Scale-out)."
            )

    missing = [t for t in topics if t.name not in present]
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(t.name, t.partitions, t.replication, config=t.all_configs())
                for t in missing
            ],
            operation_timeout=timeout,
        )
        for name, fut in futures.items():
            try:
                fut.result(timeout)
                actions[name] = "created"
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
                actions[name] = "unchanged"  # created concurrently by another process

    for t in topics:
        state = present.get(t.name)
        if state is None:
            continue
        changed = []
        if state.partitions < t.partitions:
            admin.create_partitions([NewPartitions(t.name, t.partitions)])[t.name].result(timeout)
            changed.append(f"partitions {state.partitions}->{t.partitions}")
        wanted = {k: v for k, v in t.all_configs().items() if state.configs.get(k) != v}
        if wanted:
            res = ConfigResource(
                ConfigResource.Type.TOPIC,
                t.name,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                    for k, v in wanted.items()
                ],
            )
            admin.incremental_alter_configs([res])[res].result(timeout)
            changed.append("configs " + ", ".join(f"{k}={v}" for k, v in sorted(wanted.items())))
        actions[t.name] = "updated: " + "; ".join(changed) if changed else "unchanged"
    return actions


def partition_counts(settings: Settings, names: tuple[str, ...]) -> dict[str, int]:
    """Partitions of each of `names` on the cluster (topics not there yet left out)."""
    meta = _cluster_metadata(admin_client(settings), 10.0)
    return {n: len(meta.topics[n].partitions) for n in names if n in meta.topics}


def _holds_records(admin: AdminClient, topic: str, partitions: int, timeout: float) -> bool:
    """Whether any of the `partitions` of `topic` has a record (its end offset is above 0)."""
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # untyped in its stubs
    asked = {TopicPartition(topic, p): latest for p in range(partitions)}
    ends = admin.list_offsets(asked, request_timeout=timeout)
    return any(future.result(timeout).offset > 0 for future in ends.values())


def topic_identity(settings: Settings, topic: str, timeout: float = 10.0) -> tuple[str, float]:
    """(topic id, delete.retention.ms in seconds) of a topic: the id tells a topic made
    again from the one a local copy was read from (raises KafkaException if it is missing)."""
    admin = admin_client(settings)
    [described] = admin.describe_topics(TopicCollection([topic])).values()
    topic_id = str(described.result(timeout).topic_id)
    [configs] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    retention = configs.result(timeout)["delete.retention.ms"].value
    return topic_id, int(retention) / 1000
