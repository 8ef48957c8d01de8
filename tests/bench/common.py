"""Shared bits of the benchmarks: a broker, fresh topics, medians."""

from __future__ import annotations

import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx

from streams.admin import apply_catalogue
from streams.settings import Settings
from streams.topics import Topic
from tests.kafka_fixture import test_broker

RUNS = 3


@contextmanager
def bench_settings() -> Iterator[Settings]:
    """The configured cluster, or a broker of the benchmark's own (like the test session's)."""
    with test_broker() as bootstrap:
        yield Settings(kafka_bootstrap=bootstrap, environment="test")


def fresh_topic(settings: Settings, partitions: int = 6, prefix: str = "bench") -> str:
    name = f"{prefix}.{uuid.uuid4().hex[:8]}"
    apply_catalogue(
        [Topic(name, "bench", "bench", partitions, 1, 1, {"retention.ms": "-1"})], settings
    )
    return name


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


def show(label: str, value: float, values: list[float], unit: str) -> None:
    spread = ", ".join(f"{v:,.0f}" for v in values)
    print(f"{label:<52} {value:>12,.0f} {unit}   (runs: {spread})", flush=True)


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> None:
    """Return once the gateway on `port` answers /readyz with 200; kill it after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the gateway did not become ready")
