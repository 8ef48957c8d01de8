"""MLLP listener benchmark: a real `carelog mllp` process, the broker, 32 client connections.

Each connection sends 2 KB HL7 v2 messages (the corpus ORU^R01 padded with OBX segments,
a fresh MSH-10 each) and, by default, waits for each ACK before sending the next, as MLLP
senders do; `--window N` lets each connection keep N messages in flight (pipelining).
Prints throughput (ACKed messages per second) and p50/p99 send-to-ACK latency, median of
three runs, and the listener's CPU time per message. Every ACK is checked to be AA.
`--source DIR` also starts a listener from another checkout (same venv) and alternates the
runs between the two on one broker, printing the ratio of the medians.

    .venv/bin/python -m tests.bench.bench_mllp [--connections 32] [--seconds 10] [--window 1]
        [--source /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from streams.settings import PROJECT_ROOT, Settings
from tests.bench.common import RUNS, bench_settings, tree_cpu_seconds
from tests.kafka_fixture import free_port

SIZE = 2048
CORPUS = PROJECT_ROOT / "tests/corpus/hl7v2/oru_r01_cbc_v2.5.1.hl7"
OBX = b"OBX|%d|NM|718-7^Hemoglobin [Mass/volume] in Blood^LN||13.9|g/dL^g/dL^UCUM|13.0-17.7|N|||F\r"


def message_template() -> tuple[bytes, bytes]:
    """(before MSH-10, after MSH-10) of a 2 KB message; MSH-10 is 20 characters."""
    base = CORPUS.read_bytes().replace(b"\n", b"\r")
    if not base.endswith(b"\r"):
        base += b"\r"
    n = 5
    while len(base) + 20 - len(b"NWH-LAB-7001") < SIZE:
        base += OBX % n
        n += 1
    head, _, tail = base.partition(b"NWH-LAB-7001")
    excess = len(head) + 20 + len(tail) - SIZE
    tail = tail[: len(tail) - excess - 1] + b"\r" if excess > 0 else tail
    return head, tail


class Sender(asyncio.Protocol):
    """One MLLP connection: keeps `window` messages in flight, checks every ACK is AA, and
    records each message's send-to-ACK time. A bare Protocol keeps the client's own CPU
    cost low: it shares the machine with the listener and the broker."""

    def __init__(self, n: int, stop_at: float, window: int, latencies: list[float]) -> None:
        self.head, self.tail = message_template()
        self.n, self.stop_at, self.window, self.latencies = n, stop_at, window, latencies
        self.sent: deque[float] = deque()
        self.seq = self.acked = 0
        self.buffer = b""
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        for _ in range(self.window):
            self.send()

    def send(self) -> None:
        self.seq += 1
        msh10 = b"B%03d-%015d" % (self.n, self.seq)
        self.transport.write(b"\x0b" + self.head + msh10 + self.tail + b"\x1c\r")  # type: ignore[attr-defined]
        self.sent.append(time.perf_counter())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *acks, self.buffer = self.buffer.split(b"\x1c\r")
        now = time.perf_counter()
        for ack in acks:
            self.latencies.append(now - self.sent.popleft())
            if b"MSA|AA|" not in ack and not self.done.done():
                self.done.set_exception(AssertionError(f"not AA: {ack[:200]!r}"))
            self.acked += 1
            if now < self.stop_at:
                self.send()
        if not self.sent and not self.done.done():
            self.done.set_result(self.acked)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(exc or ConnectionError("closed by the listener"))


async def connection(port: int, n: int, stop_at: float, window: int, latencies: list[float]) -> int:
    loop = asyncio.get_running_loop()
    transport, sender = await loop.create_connection(
        lambda: Sender(n, stop_at, window, latencies), "127.0.0.1", port
    )
    try:
        return int(await sender.done)
    finally:
        transport.close()


async def load(
    port: int, connections: int, seconds: float, window: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    start = time.perf_counter()
    counts = await asyncio.gather(
        *(connection(port, n, start + seconds, window, latencies) for n in range(connections))
    )
    elapsed = time.perf_counter() - start
    return sum(counts) / elapsed, latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def start_listener(settings: Settings, port: int, source: Path) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "CARELOG_KAFKA_BOOTSTRAP": settings.kafka.bootstrap,
        "PYTHONPATH": str(source),
    }
    listener = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "mllp", "--port", str(port), "--log-level", "WARNING"],
        env=env, cwd=source, text=True,
    )  # fmt: skip
    # It logs (JSON, stderr) and prints nothing: ready is when its port takes a connection.
    deadline = time.monotonic() + 90
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if listener.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the listener of {source} did not start") from None
            time.sleep(0.1)
    print(f"mllp listening on 127.0.0.1:{port} ({source})", flush=True)
    return listener


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=1, help="messages in flight per connection")
    parser.add_argument("--source", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    import uvloop

    sources = [PROJECT_ROOT] + ([args.source.resolve()] if args.source else [])
    runs: dict[Path, list[tuple[float, float, float, float]]] = {s: [] for s in sources}
    with bench_settings() as settings:
        listeners: dict[Path, tuple[subprocess.Popen[str], int]] = {}
        try:
            for source in sources:
                port = free_port()
                listeners[source] = (start_listener(settings, port, source), port)
            print(
                f"{args.connections} connections, {SIZE}-byte messages, window {args.window}, "
                f"{args.seconds:.0f} s per run, broker {settings.kafka.bootstrap}",
                flush=True,
            )
            for _, port in listeners.values():
                uvloop.run(load(port, args.connections, 2.0, args.window))  # warm-up
            for i in range(RUNS):
                for source in reversed(sources) if i % 2 else sources:
                    listener, port = listeners[source]
                    cpu = tree_cpu_seconds(listener.pid)
                    rate, lat = uvloop.run(load(port, args.connections, args.seconds, args.window))
                    cpu_ms = (tree_cpu_seconds(listener.pid) - cpu) * 1000 / max(len(lat), 1)
                    runs[source].append((rate, pct(lat, 0.5), pct(lat, 0.99), cpu_ms))
                    print(
                        f"run {i + 1} {source}: {rate:8,.0f} msg/s   p50 {runs[source][-1][1]:6.1f}"
                        f" ms   p99 {runs[source][-1][2]:6.1f} ms   CPU {cpu_ms:.3f} ms/msg   "
                        f"({len(lat):,} ACKs, all AA)",
                        flush=True,
                    )
        finally:
            for listener, _ in listeners.values():
                listener.terminate()
                listener.wait(30)
    medians = {
        source: tuple(statistics.median(r[k] for r in results) for k in range(4))
        for source, results in runs.items()
    }
    for source, (rate, p50, p99, cpu_ms) in medians.items():
        print(
            f"median of {RUNS}, {source}: {rate:8,.0f} msg/s   p50 {p50:6.1f} ms   "
            f"p99 {p99:6.1f} ms   listener CPU {cpu_ms:.3f} ms/msg"
        )
    if args.source:
        new, old = medians[sources[0]], medians[sources[1]]
        print(
            f"ratio {sources[0]} / {sources[1]}: msg/s {new[0] / old[0]:.2f}x, "
            f"p50 {new[1] / old[1]:.2f}x, p99 {new[2] / old[2]:.2f}x, "
            f"CPU per message {new[3] / old[3]:.2f}x"
        )
    return 0


if __name__ == "__main__":
    _ = Settings  # settings come from bench_settings (CARELOG_KAFKA_BOOTSTRAP or its own broker)
    sys.exit(main())
