"""HTTP gateway benchmark: a real `carelog gateway` process (uvicorn), the broker, 64 clients.

Each client holds one keep-alive HTTP/1.1 connection and POSTs 2 KB HL7 v2 messages to
/hl7v2 (the corpus ORU^R01 padded to 2 KB, a fresh MSH-10 each), waiting for each ACK
before sending the next. Prints throughput (acknowledged messages per second) and p50/p99
request latency per run and the median of three runs. Every answer is checked to be
200 with MSA|AA: a message counts only once the broker confirmed it.

The client is a minimal asyncio HTTP/1.1 client so that it costs the two cores as little as
possible; gateway, broker and client share this machine.

    .venv/bin/python -m tests.bench.bench_gateway_http [--clients 64] [--seconds 10] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

from api.dev_token import mint_token
from streams.settings import Settings
from tests.bench.bench_mllp import message_template
from tests.bench.common import RUNS, bench_settings, wait_ready
from tests.kafka_fixture import free_port

SECRET = "bench-secret-" + "z" * 40


async def client(port: int, n: int, stop_at: float, token: str, latencies: list[float]) -> int:
    head, tail = message_template()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request_head = (
        "POST /hl7v2 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: x-application/hl7-v2+er7\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Length: {len(head) + 20 + len(tail)}\r\n\r\n"
    ).encode()
    perf = time.perf_counter
    seq = 0
    try:
        while perf() < stop_at:
            seq += 1
            started = perf()
            writer.write(request_head + head + b"H%03d-%015d" % (n, seq) + tail)
            status_line = await reader.readuntil(b"\r\n")
            length = 0
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(perf() - started)
            if not status_line.startswith(b"HTTP/1.1 200") or b"MSA|AA|" not in body:
                raise RuntimeError(f"not acknowledged: {status_line!r} {body[:200]!r}")
    finally:
        writer.close()
    return seq


async def run_clients(
    port: int, clients: int, seconds: float, token: str
) -> tuple[float, float, float]:
    latencies: list[float] = []
    started = time.perf_counter()
    stop_at = started + seconds
    counts = await asyncio.gather(
        *(client(port, n, stop_at, token, latencies) for n in range(clients))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[int(len(latencies) * 0.99)]
    return sum(counts) / elapsed, p50 * 1000, p99 * 1000


def start_gateway(
    settings: Settings, port: int, workers: int, access_log: bool
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CARELOG_KAFKA_BOOTSTRAP": settings.bootstrap,
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
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_ready(process, port)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument("--no-access-log", action="store_true", help="turn the JSON access log off")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    token = mint_token(SECRET, "system/hl7v2.write", "bench", ttl=3600)
    with bench_settings() as settings:
        port = free_port()
        gateway = start_gateway(settings, port, args.workers, not args.no_access_log)
        try:
            asyncio.run(run_clients(port, args.clients, 2.0, token))  # warm up
            results = []
            for run in range(RUNS):
                rate, p50, p99 = asyncio.run(run_clients(port, args.clients, args.seconds, token))
                results.append((rate, p50, p99))
                print(
                    f"run {run + 1}: {rate:,.0f} msg/s  p50 {p50:.1f} ms  p99 {p99:.1f} ms",
                    flush=True,
                )
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
    rates = [r for r, _, _ in results]
    log = "off" if args.no_access_log else "on"
    print(
        f"gateway HTTP ingest, 2 KB HL7 v2, {args.clients} clients, {args.workers} worker(s), "
        f"access log {log}: median {statistics.median(rates):,.0f} msg/s, "
        f"p50 {statistics.median(p for _, p, _ in results):.1f} ms, "
        f"p99 {statistics.median(p for _, _, p in results):.1f} ms"
    )


if __name__ == "__main__":
    main()
