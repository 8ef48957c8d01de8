"""`carelog status`: each reader's lag per topic, each process's metrics endpoint and the
last error in its log. Exits 2 when no broker answers."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TextIO

import httpx
from confluent_kafka import KafkaException

from infra.local_workers import local_workers
from infra.log_errors import last_error
from infra.readers import reader_lags
from streams.admin import admin_client
from streams.errors import BrokerUnavailable
from streams.settings import Settings

EXIT_BROKER_DOWN = 2


@dataclass(frozen=True)
class Component:
    name: str
    metrics_url: str | None  # None: metrics turned off (port 0)


def components(settings: Settings) -> list[Component]:
    """carelog's processes, in the order `carelog run` starts them."""

    def url(port: int | None) -> str | None:
        return f"http://{settings.metrics.host}:{port}/metrics" if port else None

    gateway = f"http://{settings.gateway.host}:{settings.gateway.port}/metrics"
    return [
        Component("gateway", gateway),
        Component("mllp", url(settings.mllp.metrics_port)),
        *(
            Component(worker.name, url(worker.metrics_port))
            for worker in local_workers(
                settings.worker.processes, settings.worker.metrics_port, None
            )
        ),
        Component("projection", url(settings.store.metrics_port)),
        Component("sink", url(settings.lake.metrics_port)),
        Component("notifier", url(settings.notifier.metrics_port)),
    ]


def probe(url: str | None, timeout: float = 2.0) -> str:
    """'up' when the metrics endpoint answers 200 within `timeout`; 'slow' when it took the
    connection but did not answer in time (running, but busy); 'down' when nothing took the
    connection (refused, or no answer to connecting); 'off' when metrics are turned off."""
    if url is None:
        return "off"
    try:
        answer = httpx.get(url, timeout=timeout)
    except (httpx.ConnectError, httpx.ConnectTimeout):
        return "down"
    except httpx.TimeoutException:
        return "slow"
    except httpx.HTTPError:
        return "down"
    return "up" if answer.status_code == 200 else f"HTTP {answer.status_code}"


def print_status(settings: Settings, out: TextIO | None = None, timeout: float = 5.0) -> int:
    out = out or sys.stdout
    admin = admin_client(settings)
    try:
        admin.list_topics(timeout=timeout)
        readers = reader_lags(settings, admin, timeout)
    except (BrokerUnavailable, KafkaException) as exc:
        print(
            f"carelog status: no Kafka broker answered at {settings.kafka.bootstrap} within "
            f"{timeout:g}s ({exc}). Start it with `carelog kafka up` (or `carelog run`), or "
            "point CARELOG_KAFKA_BOOTSTRAP at your cluster.",
            file=sys.stderr,
        )
        return EXIT_BROKER_DOWN
    print(f"kafka {settings.kafka.bootstrap}: reachable", file=out)
    print("\nconsumer lag (offsets behind the end of the log, read_committed)", file=out)
    print(f"{'reader':<11} {'group':<34} {'topic':<26} {'partitions':>10} {'lag':>10}", file=out)
    for reader in readers:
        counts: dict[str, int] = {}
        for p in reader.partitions:
            counts[p.topic] = counts.get(p.topic, 0) + 1
        for topic, lag in reader.by_topic().items():
            print(f"{reader.name:<11} {reader.group:<34} {topic:<26} {counts[topic]:>10} {lag:>10}",
                  file=out)  # fmt: skip
        print(f"{reader.name:<11} {reader.group:<34} {'(total)':<26} {'':>10} {reader.total:>10}",
              file=out)  # fmt: skip
    log_dir = settings.var_dir / "logs"
    print(f"\nprocesses (metrics endpoint; last error in {log_dir}/<process>.log)", file=out)
    listed = components(settings)
    with ThreadPoolExecutor(len(listed)) as pool:  # one slow process does not hold up the rest
        states = list(pool.map(lambda c: probe(c.metrics_url), listed))
    for component, state in zip(listed, states, strict=True):
        error = last_error(log_dir / f"{component.name}.log") or "-"
        print(f"{component.name:<11} {state:<5} {component.metrics_url or '':<36} {error}",
              file=out)  # fmt: skip
    return 0
