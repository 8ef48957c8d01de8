"""The Delta Lake sink's benchmark: rows/s into bronze and silver, and freshness.

Throughput: CHANGES ResourceChanged events (a hospital-like mix of the nine view types, one
in ten an update) are appended to a fresh topic first, then a sink with a fresh lake and
group drains them; the rate is changes / (last commit - partitions assigned), so consume,
decode, flatten and every Delta commit are counted, the group join is not. Once with bronze
alone, once with bronze and the 13 shipped silver views.

Freshness: a producer process appends RATE changes/s for SECONDS while the full sink runs;
for each change, the time from its append (recorded_at, set at produce time) to the end of
the batch commit after which it is readable in its silver table. p50 and p99.

Median of three runs each. `python -m tests.bench.bench_lake` (uses CARELOG_KAFKA_BOOTSTRAP
when set, else starts a broker).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from projections.lake.changes import Batch
from projections.lake.sink import LakeSink
from projections.lake.views import SHIPPED_VIEWS, load_views
from streams.event_codec import encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.settings.kafka import KafkaSettings
from tests.bench.common import RUNS, bench_settings, fresh_topic, show
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import change

CHANGES = 100_000
RATE = 2_000  # below the full sink's measured capacity on this machine (see the closing note)
SECONDS = 20
BATCH_EVENTS = 20_000
BATCH_SECONDS = 1.0
BRONZE_GOAL = 50_000  # changes/s, bronze alone
SILVER_GOAL = 20_000  # silver rows/s, with bronze and every shipped view
FRESHNESS_GOAL = 5.0  # p99 seconds


def make_changes(n: int, seed: int) -> list[Outgoing]:
    """n encoded changes; ids unique per call. Mix: 50% Observation, 10% each of four types..."""
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    out: list[Outgoing] = []
    made: list[tuple[dict[str, Any], int]] = []
    for i in range(n):
        pid = f"{run}-p{i // 10}"
        if made and rng.random() < 0.1:  # an update of something made earlier
            res, version = made[rng.randrange(len(made))]
            res = (
                {**res, "status": "amended"}
                if res["resourceType"] != "Patient"
                else {**res, "gender": "other"}
            )
            made.append((res, version + 1))
            ev = change(res, version + 1)
        else:
            kind = rng.random()
            rid = f"{run}-{i}"
            if kind < 0.5:
                res = fx.observation(rid, pid, value=rng.uniform(1, 20))
            elif kind < 0.6:
                res = fx.patient(rid)
            elif kind < 0.7:
                res = fx.encounter(rid, pid)
            elif kind < 0.8:
                res = fx.condition(rid, pid)
            elif kind < 0.9:
                res = fx.diagnostic_report(rid, pid, [f"{run}-{i - 1}", f"{run}-{i - 2}"])
            else:
                res = rng.choice(
                    [fx.service_request, fx.imaging_study, fx.immunization, fx.allergy]
                )(rid, pid)
            made.append((res, 1))
            ev = change(res, 1)
        out.append(Outgoing("", ev.key, encode_event(ev)))
    return out


def settings_for(base: Settings, lake: Path) -> Settings:
    return base.amended(
        lake={
            "uri": str(lake),
            "group_id": f"bench-{uuid.uuid4()}",
            "batch_max_events": BATCH_EVENTS,
            "batch_max_seconds": BATCH_SECONDS,
        }
    )


def throughput(
    base: Settings, with_silver: bool, n: int = CHANGES
) -> tuple[float, float, dict[str, float]]:
    topic = fresh_topic(base, prefix="bench.lake")
    events = make_changes(n, seed=1)
    with EventProducer(base) as producer:
        producer.send_many(Outgoing(topic, e.key, e.value) for e in events)
    lake = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    try:
        views = load_views(SHIPPED_VIEWS) if with_silver else []
        sink = LakeSink(settings_for(base, lake), topic=topic, views=views)
        stats = sink.run(idle_timeout=3.0)
        assert stats.changes == n, stats
        elapsed = (stats.last_batch_at or 0) - (stats.assigned_at or 0)
        silver_rows = sum(v for k, v in stats.rows.items() if k.startswith("silver/"))
        return n / elapsed, silver_rows / elapsed, stats.seconds
    finally:
        shutil.rmtree(lake, ignore_errors=True)


def _produce_steadily(bootstrap: str, topic: str, rate: int, seconds: int) -> None:
    base = Settings(environment="test", kafka=KafkaSettings(cluster=bootstrap))
    events = make_changes(rate * seconds, seed=2)  # encoded before the clock starts
    with EventProducer(base, **{"linger.ms": 2}) as producer:
        start = time.monotonic()
        for i in range(0, len(events), rate // 20):  # 20 slices a second
            due = start + i / rate
            time.sleep(max(0.0, due - time.monotonic()))
            # recorded_at must be the append time: re-encode the slice with "now".
            for e in events[i : i + rate // 20]:
                producer.submit(Outgoing(topic, e.key, _restamped(e.value)))
        producer.flush()


def _restamped(value: bytes) -> bytes:
    from dataclasses import replace

    from schemas.events import ResourceChanged
    from streams.event_codec import decode_event

    event = decode_event(value)
    assert isinstance(event, ResourceChanged)
    return encode_event(replace(event, recorded_at=datetime.now(UTC)))


def freshness(base: Settings) -> tuple[float, float]:
    topic = fresh_topic(base, prefix="bench.lake")
    lake = Path(tempfile.mkdtemp(prefix="bench-lake-"))
    lags: list[float] = []

    def on_batch(batch: Batch, committed: float) -> None:
        lags.extend(committed - c.recorded_at_us / 1e6 for c in batch.changes)

    try:
        sink = LakeSink(settings_for(base, lake), topic=topic)
        stop = threading.Event()
        runner = threading.Thread(target=lambda: sink.run(stop=stop, on_batch=on_batch))
        runner.start()
        time.sleep(5)  # join the group before the first append
        producer = mp.get_context("spawn").Process(
            target=_produce_steadily, args=(base.kafka.bootstrap, topic, RATE, SECONDS)
        )
        producer.start()
        producer.join()
        deadline = time.monotonic() + 60
        while len(lags) < RATE * SECONDS and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        runner.join()
        assert len(lags) == RATE * SECONDS, f"{len(lags)} of {RATE * SECONDS} changes seen"
        lags.sort()
        return lags[len(lags) // 2], lags[int(len(lags) * 0.99)]
    finally:
        shutil.rmtree(lake, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--changes", type=int, default=CHANGES, help="changes per throughput run")
    parser.add_argument("--runs", type=int, default=RUNS, help="runs per figure (median)")
    parser.add_argument("--no-freshness", action="store_true", help="throughput figures only")
    args = parser.parse_args()
    n, runs = args.changes, args.runs
    with bench_settings() as base:
        print(
            f"lake sink: {n:,} changes per run, batches of {BATCH_EVENTS:,} "
            f"or {BATCH_SECONDS}s, median of {runs}"
        )
        bronze_runs = [throughput(base, with_silver=False, n=n) for _ in range(runs)]
        rates = [r[0] for r in bronze_runs]
        show(
            f"bronze only (goal {BRONZE_GOAL:,}): changes/s",
            statistics.median(rates),
            rates,
            "changes/s",
        )
        full_runs = [throughput(base, with_silver=True, n=n) for _ in range(runs)]
        rates = [r[0] for r in full_runs]
        show("bronze + 13 silver views: changes/s", statistics.median(rates), rates, "changes/s")
        silver_rows = [r[1] for r in full_runs]
        show(
            f"  silver rows written/s (goal {SILVER_GOAL:,})",
            statistics.median(silver_rows),
            silver_rows,
            "rows/s",
        )
        seconds = full_runs[len(full_runs) // 2][2]
        top = sorted(seconds.items(), key=lambda kv: -kv[1])[:5]
        print("  slowest tables (s, one run): " + ", ".join(f"{k} {v:.2f}" for k, v in top))
        if args.no_freshness:
            return
        print(f"freshness at {RATE:,} changes/s for {SECONDS}s (append -> readable in silver):")
        fresh = [freshness(base) for _ in range(runs)]
        p50s, p99s = [r[0] for r in fresh], [r[1] for r in fresh]
        print(f"  p50 {statistics.median(p50s):.2f} s (runs {', '.join(f'{v:.2f}' for v in p50s)})")
        print(
            f"  p99 {statistics.median(p99s):.2f} s (goal < {FRESHNESS_GOAL:.0f} s; "
            f"runs {', '.join(f'{v:.2f}' for v in p99s)})"
        )


if __name__ == "__main__":
    main()
