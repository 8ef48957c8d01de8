"""Readiness of an API node's FHIR store replica: `python -m infra.store_probe [--max-lag N]`.

Each API pod folds the whole of carelog.fhir.changes (and carelog.rejected) into its own
store; until that replica has caught up, FHIR reads from the pod would answer from a
partial store. The projection sidecar runs this as its startup probe, and a pod is Ready
only when all its containers are, so the Service sends traffic to a new pod only once its
replica is within N events of the log's end. It is a startup probe, not a readiness probe:
every replica lags alike during a burst, and a readiness probe would then take all API pods
(and ingest with them) out of the Service at once. Exit 0 when ready, 1 when not (with why).

Lag is measured against high watermarks, which count transaction markers too, so a store
that applied everything can still look a few events behind: N absorbs that.
"""

from __future__ import annotations

import argparse
import sys
import uuid

from confluent_kafka import Consumer, TopicPartition

from projections.fhir_store.errors import StoreError
from projections.fhir_store.runner import TOPICS
from projections.fhir_store.store import FhirStore
from streams.kafka_config import client_config
from streams.settings import Settings, get_settings

Offsets = dict[tuple[str, int], int]


def lag_of(applied: Offsets, watermarks: dict[tuple[str, int], tuple[int, int]]) -> int:
    """Events after the last applied offset, up to each partition's high watermark.

    A partition never applied counts from its low watermark (retention may have moved it).
    """
    lag = 0
    for where, (low, high) in watermarks.items():
        following = max(applied.get(where, low - 1) + 1, low)
        lag += max(0, high - following)
    return lag


def store_lag(settings: Settings, timeout: float = 3.0) -> int:
    """Events in the log that the store has not applied yet, summed over all partitions."""
    store = FhirStore.open(settings.fhir_store_file, readonly=True)
    try:
        applied = store.applied_offsets()
    finally:
        store.close()
    consumer = Consumer(
        client_config(settings, **{"group.id": f"carelog-store-probe-{uuid.uuid4()}"})
    )
    try:
        watermarks: dict[tuple[str, int], tuple[int, int]] = {}
        for topic in TOPICS:
            meta = consumer.list_topics(topic, timeout=timeout).topics[topic]
            if meta.error is not None:
                raise StoreError(f"{topic}: {meta.error}")
            for partition in meta.partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout
                )
                watermarks[(topic, partition)] = (low, high)
        return lag_of(applied, watermarks)
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.store_probe", description=__doc__)
    parser.add_argument("--max-lag", type=int, default=1000, help="ready at or below this lag")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        lag = store_lag(settings)
    except Exception as exc:  # no store yet, broker unreachable: not ready, and say why
        print(f"not ready: {exc}", file=sys.stderr)
        return 1
    ready = lag <= args.max_lag
    print(f"{'ready' if ready else 'not ready'}: {settings.fhir_store_file} lags {lag} events")
    return 0 if ready else 1


if __name__ == "__main__":
    sys.exit(main())
