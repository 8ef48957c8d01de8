"""FHIR Subscriptions: change appended -> notification delivered, p50/p99 (goal p99 < 1 s).

A real `carelog notifier` and a real HTTP receiver; observations appended to
carelog.fhir.changes at a steady rate, every one matching one rest-hook Subscription (full
resource), with nine other Subscriptions of other codes matched alongside. Latency is from
just before the append to the POST's arrival. Median of three runs, one notifier.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from streams.event_codec import encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import FHIR_CHANGES
from tests.bench.common import RUNS, bench_settings
from tests.projections.fhir_store_support import changed
from tests.projections.notifier_support import (
    NotifierProcess,
    Receiver,
    observation,
    subscription,
    wait_for,
)

RATE = 50  # changes per second
SECONDS = 10
OTHER_SUBSCRIPTIONS = 9


def _append(producer: EventProducer, resource: dict[str, object]) -> None:
    event = changed(resource, 1)
    producer.send_many([Outgoing(FHIR_CHANGES, event.key, encode_event(event))])


def one_run(
    settings: Settings, notifier: NotifierProcess, receiver: Receiver
) -> tuple[float, float]:
    code, run = uuid.uuid4().hex[:10], uuid.uuid4().hex[:8]
    path = f"/{run}"
    with EventProducer(settings) as producer:
        _append(producer, subscription(f"b{run}", f"Observation?code={code}",
                                       endpoint=receiver.url(path)))  # fmt: skip
        for i in range(OTHER_SUBSCRIPTIONS):
            _append(producer, subscription(f"b{run}x{i}", f"Observation?code=other{i}{code}",
                                           endpoint=receiver.url(f"/other{run}")))  # fmt: skip
        wait_for(lambda: "status" in notifier.status(f"b{run}"), 60, "the subscription")
        sent: dict[str, float] = {}
        start = time.monotonic()
        for i in range(RATE * SECONDS):
            due = start + i / RATE
            if (pause := due - time.monotonic()) > 0:
                time.sleep(pause)
            oid = f"o{run}-{i}"
            sent[oid] = time.time()
            _append(producer, observation(oid, code, "p"))
    arrived: dict[str, float] = {}

    def all_arrived() -> bool:
        for p, bundle, _, at in list(receiver.received):
            if p == path:
                for entry in bundle["entry"][1:]:
                    arrived.setdefault(entry["resource"]["id"], at)
        return len(arrived) >= len(sent)

    wait_for(all_arrived, 120, "every notification")
    lags = sorted(arrived[oid] - t for oid, t in sent.items())
    return lags[len(lags) // 2], lags[int(len(lags) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs (median)")
    args = parser.parse_args()
    with bench_settings() as settings, tempfile.TemporaryDirectory() as folder:
        notifier = NotifierProcess(Path(folder), CARELOG_KAFKA_BOOTSTRAP=settings.kafka.bootstrap,
                                   CARELOG_ENVIRONMENT="test")  # fmt: skip
        receiver = Receiver()
        receiver.start()
        notifier.start()
        try:
            print(f"notifier: {RATE} changes/s for {SECONDS}s, all matching one rest-hook "
                  f"subscription of {OTHER_SUBSCRIPTIONS + 1}; append -> delivered, median of "
                  f"{args.runs}")  # fmt: skip
            runs = [one_run(settings, notifier, receiver) for _ in range(args.runs)]
        finally:
            notifier.stop()
            receiver.stop()
        p50s, p99s = [r[0] for r in runs], [r[1] for r in runs]
        print(f"  p50 {statistics.median(p50s):.3f} s (runs {', '.join(f'{v:.3f}' for v in p50s)})")
        print(f"  p99 {statistics.median(p99s):.3f} s (runs {', '.join(f'{v:.3f}' for v in p99s)})")


if __name__ == "__main__":
    main()
