"""`make bench` for `carelog replay`: ORU^R01 (10 OBX) inbound history through the current
translators, validator and versioning into a shadow's topics and store, in one process;
then `replay diff` of that shadow against a live store.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from infra.replay.diff import diff_stores
from infra.replay.drop import drop
from infra.replay.names import Shadow
from infra.replay.run import replay
from infra.replay.start import Start
from projections.fhir_store.store import FhirStore
from schemas.events import Format
from streams.event_codec import encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.settings.kafka import KafkaSettings
from streams.topics import inbound_topic
from tests.bench.bench_processors import inbound
from tests.bench.common import RUNS, bench_settings, median_of, show

N = 2000


def main() -> None:
    with bench_settings() as broker:
        var = Path(tempfile.mkdtemp(prefix="bench-replay-"))
        settings = Settings(
            environment="test", var_dir=var, kafka=KafkaSettings(cluster=broker.bootstrap)
        )
        with EventProducer(settings) as producer:
            producer.send_many(
                Outgoing(inbound_topic(Format.hl7v2), f"NWH|{i}", encode_event(inbound(i)))
                for i in range(N)
            )
        live = var / "live.sqlite"
        FhirStore.open(live).close()  # an empty live store: every resource is "added"
        diff_seconds: list[float] = []

        def one_replay() -> float:
            shadow = Shadow.named(f"bench-{time.time_ns()}", settings)
            stats = replay(settings, shadow, Start(), live)
            started = time.perf_counter()
            diff = diff_stores(live, shadow.store)
            diff_seconds.append(time.perf_counter() - started)
            assert stats.inbound == N and sum(d.added for d in diff.types.values()) > 0
            drop(settings, shadow)
            return stats.inbound / stats.seconds

        rate, rates = median_of(RUNS, one_replay)
        show("replay ORU^R01 (10 OBX) inbound -> shadow topics + store", rate, rates, "msg/s")
        per_second = [N / s for s in diff_seconds]
        show("replay diff of that shadow (inbound messages' worth)", sorted(per_second)[1],
             per_second, "msg/s")  # fmt: skip


if __name__ == "__main__":
    main()
