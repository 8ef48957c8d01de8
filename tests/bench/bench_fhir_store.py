"""FHIR store benchmark: apply rate, rebuilding 1,000,000 changes, read and search latency.

    .venv/bin/python -m tests.bench.bench_fhir_store [--changes 1000000] [--kafka 200000]

Changes are generated (20% Patient, 70% Observation, 10% Encounter, realistic shapes),
encoded as the ResourceChanged events the log carries, and fed to the projection's apply
function in batches of 5,000 (what `carelog projection` does after reading them): into a
live store for the apply rate, into a bulk build (as `carelog projection rebuild` does,
search indexes created at the end, --index-processes writing the index rows) for the
rebuild. With
--kafka N the same is also measured end to end: N events produced to a fresh topic, then
read and applied by the projection's consumer. Latency: 32 threads, each with its own
read-only connection, on the store holding the 1,000,000 resources. Median of 3 runs.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from projections.fhir_store import FhirStore
from schemas.events import Operation, ResourceChanged
from streams.event_codec import encode_event
from streams.settings.store import StoreSettings
from tests.bench.common import RUNS, keys_in_this_process, median_of, show

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CODES = [f"{1000 + i}-{i % 10}" for i in range(40)]
FAMILIES = [f"Fam{i:04d}" for i in range(2000)]
BATCH = 5000


def _event(rtype: str, rid: str, body: str, n: int) -> bytes:
    at = T0 + timedelta(milliseconds=n)
    stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    resource = body.replace("@META@", f'"meta":{{"versionId":"1","lastUpdated":"{stamp}"}}')
    return encode_event(ResourceChanged(
        event_id=str(uuid.UUID(int=n)), resource_type=rtype, resource_id=rid, version=1,
        operation=Operation.upsert, content_hash=f"{n:064x}", inbound_event_id=str(uuid.UUID(int=n + 1)),
        inbound_topic="carelog.inbound.fhir", inbound_partition=0, inbound_offset=n, recorded_at=at,
        mapping_version="bench", resource=resource,
    ))  # fmt: skip


def generate(count: int, seed: int = 7) -> list[tuple[str, int, int, bytes]]:
    """`count` encoded ResourceChanged records (one version each), as read from one partition."""
    rnd = random.Random(seed)
    patients = max(1, count // 5)
    out = []
    for n in range(count):
        if n < patients:
            rid = f"p{n}"
            body = (
                f'{{"resourceType":"Patient","id":"{rid}",@META@,"active":true,'
                f'"identifier":[{{"system":"urn:oid:1.2.3.4","value":"MRN{n}"}}],'
                f'"name":[{{"family":"{rnd.choice(FAMILIES)}","given":["G{n % 997}"]}}],'
                f'"gender":"{rnd.choice(["male", "female"])}",'
                f'"birthDate":"{1930 + n % 90}-{1 + n % 12:02d}-{1 + n % 28:02d}",'
                f'"telecom":[{{"system":"phone","value":"555-{n:07d}"}}],'
                f'"address":[{{"line":["{n} Main St"],"city":"City{n % 300}","postalCode":"{10000 + n % 89999}"}}]}}'
            )  # fmt: skip
            out.append(("bench", 0, n, _event("Patient", rid, body, n)))
        elif n % 8 == 0:
            rid = f"e{n}"
            start = T0 + timedelta(minutes=n)
            body = (
                f'{{"resourceType":"Encounter","id":"{rid}",@META@,"status":"finished",'
                '"class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},'
                f'"subject":{{"reference":"Patient/p{rnd.randrange(patients)}"}},'
                f'"period":{{"start":"{start:%Y-%m-%dT%H:%M:%SZ}","end":"{start + timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}"}}}}'
            )  # fmt: skip
            out.append(("bench", 0, n, _event("Encounter", rid, body, n)))
        else:
            rid = f"o{n}"
            code = rnd.choice(CODES)
            when = T0 + timedelta(minutes=n)
            body = (
                f'{{"resourceType":"Observation","id":"{rid}",@META@,"status":"final",'
                '"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],'
                f'"code":{{"coding":[{{"system":"http://loinc.org","code":"{code}","display":"Test {code}"}}]}},'
                f'"subject":{{"reference":"Patient/p{rnd.randrange(patients)}"}},'
                f'"effectiveDateTime":"{when:%Y-%m-%dT%H:%M:%SZ}",'
                f'"valueQuantity":{{"value":{rnd.randint(40, 180)},"unit":"/min","system":"http://unitsofmeasure.org","code":"/min"}}}}'
            )  # fmt: skip
            out.append(("bench", 0, n, _event("Observation", rid, body, n)))
    return out


def apply_all(
    path: Path,
    records: list[tuple[str, int, int, bytes]],
    bulk: bool = False,
    index_processes: int = 0,
) -> float:
    """Seconds to fold `records` into a fresh store at `path`, batch by batch.

    `bulk`: as `carelog projection rebuild` builds (search indexes made at the end, timed),
    with `index_processes` writing the index rows (their start timed too).
    """
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    store = FhirStore.open(path, bulk=bulk, index_processes=index_processes)
    applier = store.applier()
    for i in range(0, len(records), BATCH):
        applier.apply(records[i : i + BATCH])
    if bulk:
        store.finish_bulk()
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def latency(path: Path, patients: int, threads: int, per_thread: int,
            operation: Callable[[FhirStore, random.Random], object]) -> tuple[float, float]:  # fmt: skip
    """(p50, p99) in ms of `operation` run by `threads` threads with their own connection."""
    samples: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def worker(seed: int) -> None:
        rnd = random.Random(seed)
        store = FhirStore.open(path, readonly=True)
        mine = []
        start.wait()
        for _ in range(per_thread):
            t = time.perf_counter()
            operation(store, rnd)
            mine.append((time.perf_counter() - t) * 1000)
        store.close()
        with lock:
            samples.extend(mine)

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--apply-sample", type=int, default=200_000)
    parser.add_argument("--kafka", type=int, default=0, help="also measure N events through Kafka")
    parser.add_argument(
        "--index-processes",
        type=int,
        default=StoreSettings.model_fields["rebuild_index_processes"].default,
        help="processes writing the rebuild's index rows "
        "(CARELOG_FHIR_STORE_REBUILD_INDEX_PROCESSES; default %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--per-thread", type=int, default=100)
    args = parser.parse_args()
    keys_in_this_process()
    work = Path(tempfile.mkdtemp(prefix="bench-fhir-store-"))
    try:
        started = time.perf_counter()
        records = generate(args.changes)
        print(
            f"generated {len(records):,} encoded changes in {time.perf_counter() - started:.0f}s",
            flush=True,
        )

        sample = records[: args.apply_sample]
        value, values = median_of(
            RUNS, lambda: len(sample) / apply_all(work / "apply.sqlite", sample)
        )
        show(
            f"apply rate, {len(sample):,} changes, batches of {BATCH:,}", value, values, "changes/s"
        )

        store_path = work / "full.sqlite"
        value, values = median_of(
            RUNS, lambda: apply_all(store_path, records, True, args.index_processes)
        )
        label = f"rebuild {len(records):,} changes (bulk, {args.index_processes} index processes)"
        print(f"{label:<52} "
              f"{value:>12,.1f} s        (runs: {', '.join(f'{v:,.1f}' for v in values)}; "
              f"{len(records) / value:,.0f} changes/s)", flush=True)  # fmt: skip

        if args.kafka:
            bench_kafka(work, records[: args.kafka])

        patients = max(1, args.changes // 5)
        size = store_path.stat().st_size / 2**20
        print(f"store: {args.changes:,} resources, {size:,.0f} MiB; {args.threads} threads x "
              f"{args.per_thread} operations each", flush=True)  # fmt: skip
        operations: dict[str, Callable[[FhirStore, random.Random], object]] = {
            "read Patient/{id}": lambda s, r: s.read("Patient", f"p{r.randrange(patients)}"),
            "read Observation/{id}": lambda s, r: s.read("Observation", f"o{patients + 1 + r.randrange(args.changes - patients - 1)}"),
            "Patient?identifier=sys|value": lambda s, r: s.search("Patient", [("identifier", f"urn:oid:1.2.3.4|MRN{r.randrange(patients)}")]),
            "Patient?family=<prefix>&_count=20": lambda s, r: s.search("Patient", [("family", r.choice(FAMILIES)[:7]), ("_count", "20")]),
            "Patient?family=x&birthdate=ge1980": lambda s, r: s.search("Patient", [("family", r.choice(FAMILIES)), ("birthdate", "ge1980")]),
            "Observation?patient=x": lambda s, r: s.search("Observation", [("patient", f"p{r.randrange(patients)}")]),
            "Observation?patient=x&code=c&_sort=-date": lambda s, r: s.search("Observation", [("patient", f"p{r.randrange(patients)}"), ("code", f"http://loinc.org|{r.choice(CODES)}"), ("_sort", "-date")]),
            "Observation?subject:Patient.identifier=..": lambda s, r: s.search("Observation", [("subject:Patient.identifier", f"MRN{r.randrange(patients)}")]),
            "Encounter?patient=x&_include=Encounter:subject": lambda s, r: s.search("Encounter", [("patient", f"p{r.randrange(patients)}"), ("_include", "Encounter:subject")]),
            "Observation?code=c&date=2024-01-0N (_count=20)": lambda s, r: s.search("Observation", [("code", r.choice(CODES)), ("date", f"2024-01-0{r.randint(1, 9)}"), ("_count", "20")]),
        }  # fmt: skip
        for label, operation in operations.items():
            runs = [
                latency(store_path, patients, args.threads, args.per_thread, operation)
                for _ in range(RUNS)
            ]
            p50 = statistics.median(r[0] for r in runs)
            p99 = statistics.median(r[1] for r in runs)
            print(f"{label:<52} p50 {p50:>7.2f} ms  p99 {p99:>7.2f} ms   "
                  f"(p99 runs: {', '.join(f'{r[1]:.1f}' for r in runs)})", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_kafka(work: Path, records: list[tuple[str, int, int, bytes]]) -> None:
    """Produce to a fresh 6-partition topic, then time the projection reading and applying it."""
    from projections.fhir_store import runner
    from streams.producer import EventProducer, Outgoing
    from tests.bench.common import bench_settings, fresh_topic

    with bench_settings() as settings:
        topic = fresh_topic(settings, 6, prefix="bench.fhir.changes")
        with EventProducer(settings) as producer:
            producer.send_many(
                Outgoing(topic, f"k{i}", value) for i, (_, _, _, value) in enumerate(records)
            )

        def once() -> float:
            path = work / "kafka.sqlite"
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            store = FhirStore.open(path)
            saved = runner.TOPICS
            runner.TOPICS = (topic,)
            try:
                stats = runner.consume(store, settings, caught_up=True)
            finally:
                runner.TOPICS = saved
                store.close()
            return stats.records / stats.seconds

        value, values = median_of(RUNS, once)
        show(f"from Kafka: read + apply {len(records):,} changes", value, values, "changes/s")


if __name__ == "__main__":
    main()
