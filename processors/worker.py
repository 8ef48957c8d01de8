"""The Faust worker: `carelog worker`. Several workers share the partitions of one group.

Two agents, both exactly-once (Kafka transactions: outputs and input offsets commit together):
- translate: carelog.inbound.* -> carelog.fhir.translated (keyed ResourceType/id) | rejected
- version:   carelog.fhir.translated -> carelog.fhir.changes | rejected, with the last version
  and content hash per ResourceType/id in memory, recovered from carelog.fhir.changes itself
  (processors/version_store.py: each change record carries the state after it).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.types import TP

from processors import worker_metrics as metrics
from processors.commit_when_idle import commit_when_idle
from processors.faust_recovery import seek_before_resume
from processors.pipeline import OutputRecord, Record, translate_record, version_record
from processors.rejoin_when_topics_return import RememberingAssignor, rejoin_when_topics_return
from processors.transactions import use_source_partition_transactions
from processors.version_first import version_first
from processors.version_store import VersionStore, state_header
from processors.versioning import VersionState
from schemas.events import Format
from streams.admin import partition_counts
from streams.errors import BrokerUnavailable
from streams.faust_app import create_app, keep_log_handlers
from streams.json_logs import configure
from streams.privacy.envelope import confirm_new_keys_before_commit
from streams.process_metrics import group_lag_reader, serve_metrics
from streams.settings import get_settings
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, catalogue, inbound_topic
from streams.unreachable import until_reachable_async

settings = get_settings()
APP_ID = settings.worker.app_id
_partitions = {
    t.name: t.partitions for t in catalogue(settings.environment, settings.kafka.partitions)
}
app = create_app(
    APP_ID,
    settings,
    processing_guarantee="exactly_once",
    topic_partitions=_partitions[FHIR_TRANSLATED],
    consumer_auto_offset_reset="earliest",
    broker_session_timeout=settings.worker.session_timeout_seconds,
    consumer_group_instance_id=settings.worker.instance_id,
    broker_heartbeat_interval=min(3.0, settings.worker.session_timeout_seconds / 4),
    broker_commit_interval=settings.worker.commit_interval_seconds,
    producer_linger=settings.worker.producer_linger_seconds,
    producer_max_batch_size=settings.worker.producer_max_batch_bytes,
    producer_compression_type=settings.worker.producer_compression,
    PartitionAssignor=RememberingAssignor,
    stream_buffer_maxsize=settings.worker.stream_buffer,
    broker_max_poll_records=settings.worker.stream_buffer,
)
use_source_partition_transactions(app)
seek_before_resume()
commit_when_idle(app, settings.worker.commit_idle_seconds)
rejoin_when_topics_return(app)


def _raw_topic(name: str) -> faust.TopicT:
    return app.topic(
        name, key_serializer="raw", value_serializer="raw", partitions=_partitions[name]
    )


inbound = app.topic(
    *[inbound_topic(f) for f in Format], key_serializer="raw", value_serializer="raw"
)
translated = _raw_topic(FHIR_TRANSLATED)
versions = VersionStore(settings)


@app.on_partitions_assigned.connect  # type: ignore[arg-type]  # mode's stubs: a coroutine is fine
async def _forget_partitions_given_away(sender: Any, *args: Any, **kwargs: Any) -> None:
    assigned: set[TP] = args[0]  # the whole new assignment, after the transactions started
    versions.keep_only(tp.partition for tp in assigned if tp.topic == FHIR_TRANSLATED)


def _record(event: faust.EventT[Any]) -> Record:
    msg = event.message
    return Record(msg.topic, msg.partition, msg.offset, msg.key, msg.value or b"")


async def _send(
    items: list[OutputRecord], partition: int | None = None, headers: Any = None
) -> None:
    # Straight to the transaction manager, which puts each record in the transaction of the
    # event's input partition (processors/transactions.py). Faust's Topic.send would wrap
    # every record in a FutureMessage with sensors and callbacks first; the transaction's
    # commit still waits for every record to be acknowledged, or fails. `partition` and
    # `headers` go with the changes only (rejections are partitioned by their key).
    producer = app.consumer.transactions
    for item in items:
        if item.topic == FHIR_CHANGES:
            await producer.send(item.topic, item.key, item.value, partition, None, headers)
        else:
            await producer.send(item.topic, item.key, item.value, None, None, None)
        metrics.OUTPUTS_BY_TOPIC[item.topic].inc()


@app.agent(inbound)
async def translate(stream: faust.StreamT[Any]) -> None:
    async for event in stream.events():
        record = _record(event)

        async def translated(record: Record = record) -> list[OutputRecord]:
            return translate_record(record)

        try:
            await _send(await until_reachable_async("translate", translated))
        except Exception:
            metrics.ERRORS_BY_AGENT["translate"].inc()
            raise
        metrics.handled("translate", record.topic, record.partition, record.offset)


@app.agent(translated)
async def version(stream: faust.StreamT[Any]) -> None:
    async for event in stream.events():
        record = _record(event)
        key = (record.key or b"").decode()

        async def versioned(
            record: Record = record, key: str = key
        ) -> tuple[dict[str, VersionState], list[OutputRecord], VersionState | None]:
            states = await versions.states(record.partition)
            return (states, *version_record(record, states.get(key)))

        try:
            states, items, state = await until_reachable_async("version", versioned)
            if state is None:
                await _send(items)
            else:
                states[key] = state
                await _send(items, record.partition, [state_header(state)])
        except Exception:
            metrics.ERRORS_BY_AGENT["version"].inc()
            raise
        metrics.handled("version", record.topic, record.partition, record.offset)


version_first(app, version, FHIR_TRANSLATED, settings.worker.version_first_records)


def _check_partitions() -> None:
    """A change goes to the partition of the translated record it comes from, where its key
    hashes to as well: the state of translated partition p is then the changes of partition
    p. Topics made otherwise than by the catalogue could break that: refuse to start. (A
    broker that does not answer yet is left to Faust, which waits for it.)"""
    try:
        counts = partition_counts(settings, (FHIR_TRANSLATED, FHIR_CHANGES))
    except BrokerUnavailable:
        return
    if len(set(counts.values())) > 1:
        raise SystemExit(
            f"{FHIR_CHANGES} and {FHIR_TRANSLATED} must have as many partitions, the cluster "
            f"has {counts}: the versioning state of a translated partition is the changes of "
            "the same partition (docs/deployment.md, Scale-out)"
        )


def main() -> None:
    _check_partitions()
    # This process's new data keys are confirmed at each commit (SourcePartitionTransactions
    # .commit), not one round trip each. Set here, in the worker process only: a process that
    # merely imports this module (a test, a tool) must confirm its keys before sealing.
    confirm_new_keys_before_commit()
    configure()  # JSON lines before Faust's worker starts (it then sets up its own, alike)
    input_topics = [*(inbound_topic(f) for f in Format), FHIR_TRANSLATED]
    lag = group_lag_reader(settings, APP_ID, input_topics)  # Faust's group id is its app id
    serve_metrics("worker", settings, settings.worker.metrics_port, lag)
    keep_log_handlers(app)  # serve_metrics' count of warnings and errors
    app.main()


if __name__ == "__main__":
    main()
