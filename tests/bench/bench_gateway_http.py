"""HTTP gateway benchmark: a real `carelog gateway` process (uvicorn), the broker, 64 clients.

Each client holds one keep-alive HTTP/1.1 connection and POSTs 2 KB HL7 v2 messages to
/hl7v2 (the corpus ORU^R01 padded to 2 KB, a fresh MSH-10 each), waiting for each ACK
before sending the next. Prints throughput (acknowledged messages per second) and p50/p99
request latency per run, the gateway's CPU time per message (every worker process counted)
and the median of three runs. Every answer is checked to be 200 with MSA|AA: a message
counts only once the broker confirmed it.

`--source DIR` also starts a gateway from another checkout of carelog (same venv) and
alternates the runs between the two on one broker, printing the ratio of the medians: the
way to compare before and after on a machine whose load changes from minute to minute.
`--workers 1,2` does the same for gateways of one and two processes. `--new-patients` gives
each message a patient of its own (as bench_e2e does), so that each costs a new data key.

The client is a minimal asyncio HTTP/1.1 client so that it costs the two cores as little as
possible; gateway, broker and client share this machine.

    .venv/bin/python -m tests.bench.bench_gateway_http [--clients 64] [--seconds 10] [--workers 1]
        [--source /path/to/other/checkout] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from api.security.dev_token import mint_token
from streams.settings import PROJECT_ROOT, Settings
from tests.bench.bench_mllp import message_template
from tests.bench.common import (
    RUNS,
    bench_settings,
    http_response,
    tree_cpu_seconds,
    wait_ready,
)
from tests.kafka_fixture import free_port

SECRET = "bench-secret-" + "z" * 40
MRN = b"MRN5520"  # the corpus message's patient (PID-3)


async def client(port: int, n: int, stop_at: float, token: str, latencies: list[float],
                 patient_prefix: bytes | None = None) -> int:  # fmt: skip
    """One connection posting messages until `stop_at`; with `patient_prefix` (unique to the
    run) each message names a patient of its own (PID-3), whose data key the gateway makes,
    stores and appends before it acknowledges; without, every message names one."""
    head, tail = message_template()
    before_mrn, _, after_mrn = tail.partition(MRN)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request_head = (
        "POST /hl7v2 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: x-application/hl7-v2+er7\r\n"
        f"Authorization: Bearer {token}\r\n"
    ).encode()
    perf = time.perf_counter
    seq = 0
    try:
        while perf() < stop_at:
            seq += 1
            mrn = MRN if patient_prefix is None else b"%s%03d-%09d" % (patient_prefix, n, seq)
            body = head + b"H%03d-%015d" % (n, seq) + before_mrn + mrn + after_mrn
            started = perf()
            writer.write(request_head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status_line, answer = await http_response(reader)
            latencies.append(perf() - started)
            if not status_line.startswith(b"HTTP/1.1 200") or b"MSA|AA|" not in answer:
                raise RuntimeError(f"not acknowledged: {status_line!r} {answer[:200]!r}")
    finally:
        writer.close()
    return seq


@dataclass(frozen=True, slots=True)
class Run:
    rate: float  # acknowledged messages per second
    p50_ms: float
    p99_ms: float
    cpu_ms: float  # gateway CPU (all its processes) per acknowledged message


async def run_clients(
    port: int, clients: int, seconds: float, token: str, new_patients: bool = False
) -> tuple[int, float, float, float]:
    """(messages acknowledged, elapsed seconds, p50 ms, p99 ms)"""
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + seconds
    prefix = f"N{uuid.uuid4().hex[:8]}".encode() if new_patients else None
    counts = await asyncio.gather(
        *(client(port, n, stop_at, token, latencies, prefix) for n in range(clients))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    return sum(counts), elapsed, p50 * 1000, p99 * 1000


def measure(gateway: subprocess.Popen[bytes], port: int, clients: int, seconds: float,
            token: str, new_patients: bool) -> Run:  # fmt: skip
    cpu_before = tree_cpu_seconds(gateway.pid)
    count, elapsed, p50, p99 = asyncio.run(run_clients(port, clients, seconds, token, new_patients))
    cpu = tree_cpu_seconds(gateway.pid) - cpu_before
    return Run(count / elapsed, p50, p99, cpu * 1000 / max(count, 1))


def start_gateway(
    settings: Settings, port: int, workers: int, access_log: bool, source: Path = PROJECT_ROOT
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "CARELOG_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "CARELOG_ENVIRONMENT": "test",
        "CARELOG_AUTH_HS256_SECRET": SECRET,
        "CARELOG_RATE_LIMIT_PER_SECOND": "0",
        "CARELOG_ACCESS_LOG": "true" if access_log else "false",
    }
    cmd = [
        sys.executable,
        "-m",
        "infra.cli",
        "gateway",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(
        cmd, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_ready(process, port)
    return process


def summary(runs: list[Run]) -> str:
    return (
        f"median {statistics.median(r.rate for r in runs):,.0f} msg/s, "
        f"p50 {statistics.median(r.p50_ms for r in runs):.1f} ms, "
        f"p99 {statistics.median(r.p99_ms for r in runs):.1f} ms, "
        f"gateway CPU {statistics.median(r.cpu_ms for r in runs):.3f} ms/msg"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--workers", default="1", help="gateway worker processes; several (1,2) alternate"
    )
    parser.add_argument("--no-access-log", action="store_true", help="turn the JSON access log off")
    parser.add_argument("--source", type=Path, help="another checkout to compare with")
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument(
        "--new-patients",
        action="store_true",
        help="every message a patient of its own (a data key each), as in bench_e2e",
    )
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    token = mint_token(SECRET, "system/hl7v2.write", "bench", ttl=3600)
    sources = [PROJECT_ROOT] + ([args.source.resolve()] if args.source else [])
    counts = [int(w) for w in args.workers.split(",")]
    setups = [(source, workers) for workers in counts for source in sources]
    results: dict[tuple[Path, int], list[Run]] = {s: [] for s in setups}
    with bench_settings() as settings:
        gateways: dict[tuple[Path, int], tuple[subprocess.Popen[bytes], int]] = {}
        try:
            for source, workers in setups:
                port = free_port()
                gateways[source, workers] = (
                    start_gateway(settings, port, workers, not args.no_access_log, source),
                    port,
                )
                asyncio.run(run_clients(port, args.clients, 2.0, token))  # warm up
            for run in range(args.runs):
                # Alternate the order so that no set-up always runs first.
                for setup in reversed(setups) if run % 2 else setups:
                    gateway, port = gateways[setup]
                    r = measure(gateway, port, args.clients, args.seconds, token,
                                args.new_patients)  # fmt: skip
                    results[setup].append(r)
                    print(
                        f"run {run + 1} {setup[0]} x{setup[1]}: {r.rate:,.0f} msg/s  "
                        f"p50 {r.p50_ms:.1f} ms  p99 {r.p99_ms:.1f} ms  CPU {r.cpu_ms:.3f} ms/msg",
                        flush=True,
                    )
        finally:
            for gateway, _ in gateways.values():
                gateway.terminate()
                gateway.wait(timeout=30)
    log = "off" if args.no_access_log else "on"
    for source, workers in setups:
        print(
            f"gateway HTTP ingest, 2 KB HL7 v2, {args.clients} clients, {workers} worker(s), "
            f"access log {log}, {'a new patient each' if args.new_patients else 'one patient'}, "
            f"{source}: {summary(results[source, workers])}"
        )
    for one, other in _pairs(setups, bool(args.source)):
        print(f"ratio {_name(one)} / {_name(other)}: {_ratios(results[one], results[other])}")


def _pairs(
    setups: list[tuple[Path, int]], compare_sources: bool
) -> list[tuple[tuple[Path, int], tuple[Path, int]]]:
    """This checkout against the other source per worker count, and each worker count
    against the first, per source."""
    pairs = []
    if compare_sources:
        pairs += [(s, o) for s in setups for o in setups if s[0] == PROJECT_ROOT != o[0]
                  and s[1] == o[1]]  # fmt: skip
    first = setups[0][1]
    pairs += [(s, o) for s in setups for o in setups if s[0] == o[0] and o[1] == first != s[1]]
    return pairs


def _name(setup: tuple[Path, int]) -> str:
    return f"{setup[0]} x{setup[1]}"


def _ratios(new: list[Run], old: list[Run]) -> str:
    def ratio(field: str) -> float:
        def median(runs: list[Run]) -> float:
            return float(statistics.median(getattr(r, field) for r in runs))

        return median(new) / median(old)

    return (
        f"msg/s {ratio('rate'):.2f}x, p50 {ratio('p50_ms'):.2f}x, p99 {ratio('p99_ms'):.2f}x, "
        f"CPU per message {ratio('cpu_ms'):.2f}x"
    )


if __name__ == "__main__":
    main()
