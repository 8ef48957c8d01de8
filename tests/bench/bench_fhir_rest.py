"""FHIR REST benchmark: read and common-search latency over HTTP, 32 concurrent clients.

A store is built with the FHIR store benchmark's generator (20% Patient, 70% Observation,
10% Encounter; --changes resources, one version each) and the projection's apply; a real
`carelog gateway` process (uvicorn, one worker) serves it read-only. Each client holds one
keep-alive HTTP/1.1 connection and sends GETs back to back for --seconds per operation;
every answer is checked to be 200. p50/p99 per run, median of three runs, with the CPU per
request of the gateway (all its processes) and of this client process, which shares the
same cores (with 32 clients, latency is about queue length x CPU per request). AuditEvents of
the reads are appended to the broker as in production (--no-audit turns them off), each
sealed with the key of the patient it names: the store's patients are given their keys on
the broker first, as the pipeline that fills a store gives them.

`--source DIR` also serves the same store from another checkout of carelog (same venv):
each run measures both gateways one after the other (alternating which goes first) and the
ratio of the medians is printed. `--store PATH` keeps the built store at PATH and reuses it
when it exists (iterating on the read path without building 1,000,000 resources each time).

    .venv/bin/python -m tests.bench.bench_fhir_rest [--changes 200000] [--clients 32] [--seconds 5]
        [--workers 1] [--source /tmp/old-checkout] [--store var/bench/store-200k.sqlite] [--bulk]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from api.security.dev_token import mint_token
from streams.privacy.keystore import KafkaKeyStore
from streams.settings import PROJECT_ROOT, Settings
from tests.bench.bench_fhir_store import CODES, apply_all, generate
from tests.bench.common import RUNS, bench_settings, http_response, tree_cpu_seconds, wait_ready
from tests.kafka_fixture import free_port

SECRET = "bench-secret-" + "f" * 40


async def client(port: int, stop_at: float, token: str, path: Callable[[random.Random], str],
                 seed: int, latencies: list[float]) -> None:  # fmt: skip
    rnd = random.Random(seed)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    perf = time.perf_counter
    try:
        while perf() < stop_at:
            request = (f"GET {path(rnd)} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       f"Authorization: Bearer {token}\r\n\r\n").encode()  # fmt: skip
            started = perf()
            writer.write(request)
            status, body = await http_response(reader)
            latencies.append(perf() - started)
            if not status.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"{path(rnd)}: {status!r} {body[:300]!r}")
    finally:
        writer.close()


class Run(NamedTuple):
    rate: float  # requests/s
    p50: float  # ms
    p99: float  # ms
    server_us: float  # gateway CPU (all its processes) per request, µs
    client_us: float  # this process's CPU per request, µs: it shares the cores


async def run(port: int, clients: int, seconds: float, token: str,
              path: Callable[[random.Random], str], gateway_pid: int) -> Run:  # fmt: skip
    latencies: list[float] = []
    server_cpu, client_cpu = tree_cpu_seconds(gateway_pid), time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client(port, started + seconds, token, path, n, latencies)
                           for n in range(clients)))  # fmt: skip
    rate = len(latencies) / (time.perf_counter() - started)
    per = 1e6 / max(len(latencies), 1)
    server_us = (tree_cpu_seconds(gateway_pid) - server_cpu) * per
    client_us = (time.process_time() - client_cpu) * per
    latencies.sort()
    return Run(rate, latencies[len(latencies) // 2] * 1000,
               latencies[int(len(latencies) * 0.99)] * 1000, server_us, client_us)  # fmt: skip


def start_gateway(
    settings: Settings, port: int, store: Path, audit: bool, workers: int, source: Path
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(source), "CARELOG_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
           "CARELOG_ENVIRONMENT": "test", "CARELOG_AUTH_HS256_SECRET": SECRET,
           "CARELOG_RATE_LIMIT_PER_SECOND": "0", "CARELOG_ACCESS_LOG": "false",
           "CARELOG_FHIR_STORE_PATH": str(store),
           "CARELOG_FHIR_AUDIT_READS": "true" if audit else "false"}  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "infra.cli", "gateway", "--port", str(port),
                                "--workers", str(workers)],
                               cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_ready(process, port)
    return process


def observation(rnd: random.Random, count: int, patients: int) -> int:
    """The number of a generated Observation (every 8th number after the patients is an
    Encounter, see bench_fhir_store.generate)."""
    n = patients + rnd.randrange(count - patients)
    if n % 8 == 0:
        n = n + 1 if n + 1 < count else n - 1
    return n


def build_store(path: Path | None, work: str, n: int, bulk: bool) -> Path:
    """The store of `n` generated resources: at `path` when given (built there unless it
    exists), else in `work`. `bulk`: built as `carelog projection rebuild` builds (indexes
    made at the end, so more compact than a store applied change by change), in a fraction
    of the time."""
    store = (path or Path(work) / "store.sqlite").resolve()  # the gateways run elsewhere
    if store.exists():
        print(f"reusing the store at {store}", flush=True)
        return store
    store.parent.mkdir(parents=True, exist_ok=True)
    print(f"building a store of {n:,} resources{' (bulk)' if bulk else ''} ...", flush=True)
    print(f"  applied in {apply_all(store, generate(n), bulk=bulk):.1f}s", flush=True)
    return store


def key_the_patients(settings: Settings, patients: int, work: str) -> float:
    """Give each of the store's patients a data key on the bench's broker, as the pipeline
    that fills a real store does (the worker makes one at a patient's first message); the
    gateway seals the AuditEvent of each read with the key of the patient it names. Without
    them every read of a patient not read before made that key: a key record and a round
    trip to confirm it, on the gateway's event loop. Returns the seconds it took."""
    started = time.perf_counter()
    keys = KafkaKeyStore(settings, confirm_later=True, cache_dir=Path(work) / "keys")
    try:
        for number in range(patients):
            keys.key_for(f"patient:p{number}")
            if number % 10_000 == 9_999:
                keys.confirm()  # the producer queues 100,000 records at most
        keys.confirm()
    finally:
        keys.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-audit", action="store_true")
    parser.add_argument("--workers", type=int, default=1, help="gateway processes")
    parser.add_argument("--only", help="run only operations whose label contains this")
    parser.add_argument("--source", type=Path, help="another checkout to compare with")
    parser.add_argument("--store", type=Path, help="keep (and reuse) the store at this path")
    parser.add_argument("--bulk", action="store_true", help="build the store as a rebuild does")
    args = parser.parse_args()
    n, patients = args.changes, max(1, args.changes // 5)
    operations: dict[str, Callable[[random.Random], str]] = {
        "read Patient/{id}": lambda r: f"/fhir/Patient/p{r.randrange(patients)}",
        "read Observation/{id}": lambda r: f"/fhir/Observation/o{observation(r, n, patients)}",
        "Patient?identifier=sys|value": lambda r: f"/fhir/Patient?identifier=urn:oid:1.2.3.4|MRN{r.randrange(patients)}",
        "Observation?patient=x": lambda r: f"/fhir/Observation?patient=p{r.randrange(patients)}",
        "Observation?patient=x&code=c&_sort=-date": lambda r: f"/fhir/Observation?patient=p{r.randrange(patients)}&code=http://loinc.org|{r.choice(CODES)}&_sort=-date",
        "Encounter?patient=x&_include=Encounter:subject": lambda r: f"/fhir/Encounter?patient=p{r.randrange(patients)}&_include=Encounter:subject",
    }  # fmt: skip
    sources = [PROJECT_ROOT] + ([args.source.resolve()] if args.source else [])
    with bench_settings() as settings, tempfile.TemporaryDirectory() as work:
        store = build_store(args.store, work, n, args.bulk)
        if not args.no_audit:
            print(
                f"  {patients:,} patient keys made in "
                f"{key_the_patients(settings, patients, work):.1f}s",
                flush=True,
            )
        ports = {source: free_port() for source in sources}
        gateways = [start_gateway(settings, ports[source], store, not args.no_audit,
                                  args.workers, source) for source in sources]  # fmt: skip
        pids = {source: gateway.pid for source, gateway in zip(sources, gateways, strict=True)}
        token = mint_token(SECRET, "user/*.read", "bench")
        print(f"{args.clients} clients, {args.workers} gateway process(es), {args.seconds:.0f}s per run, audit "
              f"{'off' if args.no_audit else 'on'}; median of {RUNS} runs", flush=True)  # fmt: skip
        try:
            for label, path in operations.items():
                if args.only and args.only not in label:
                    continue
                runs: dict[Path, list[Run]] = {s: [] for s in sources}
                for run_number in range(RUNS):
                    for source in reversed(sources) if run_number % 2 else sources:
                        runs[source].append(asyncio.run(
                            run(ports[source], args.clients, args.seconds, token, path,
                                pids[source])))  # fmt: skip
                p99s = {}
                for source, measured in runs.items():
                    rate = statistics.median(r.rate for r in measured)
                    p50 = statistics.median(r.p50 for r in measured)
                    p99s[source] = p99 = statistics.median(r.p99 for r in measured)
                    server = statistics.median(r.server_us for r in measured)
                    mine = statistics.median(r.client_us for r in measured)
                    spread = ", ".join(f"{r.p99:.1f}" for r in measured)
                    name = "" if len(sources) == 1 else f"  [{source.name}]"
                    print(f"{label:<50} {rate:>7,.0f}/s  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms"
                          f"  CPU/request gateway {server:4.0f} µs, bench client {mine:4.0f} µs"
                          f"  (p99 runs: {spread}){name}", flush=True)  # fmt: skip
                if args.source:
                    ratio = p99s[sources[1]] / p99s[PROJECT_ROOT]
                    print(f"{'':<50} p99 {sources[1].name} / {PROJECT_ROOT.name}: {ratio:.2f}x",
                          flush=True)  # fmt: skip
        finally:
            for gateway in gateways:
                gateway.terminate()
            for gateway in gateways:
                gateway.wait(30)


if __name__ == "__main__":
    main()
