"""Prometheus metrics every carelog process serves besides its own: log records by level
(the errors a process survived) and, for readers of the log, their consumer lag computed
at scrape time (two small admin requests per scrape, nothing on the hot path)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.admin import admin_client
from streams.errors import LogError
from streams.lag import PartitionLag
from streams.settings import Settings

log = logging.getLogger("carelog.metrics")

LOG_RECORDS = Counter(
    "carelog_log_records", "Log records written, by level (ERROR and CRITICAL are errors).",
    ["component", "level"],
)  # fmt: skip


class _CountingHandler(logging.Handler):
    def __init__(self, component: str) -> None:
        super().__init__(logging.WARNING)
        self.children = {
            name: LOG_RECORDS.labels(component, name) for name in ("WARNING", "ERROR", "CRITICAL")
        }

    def emit(self, record: logging.LogRecord) -> None:
        child = self.children.get(record.levelname)
        if child is not None:
            child.inc()


_registered: dict[str, tuple[logging.Handler, LagCollector | None]] = {}


class LagCollector(Collector):
    """carelog_consumer_lag{reader,topic,partition} and carelog_consumer_next_offset, read
    when scraped; carelog_consumer_lag_ok is 0 when the broker did not answer."""

    def __init__(self, reader: str, read: Callable[[], list[PartitionLag]]) -> None:
        self.reader = reader
        self.read = read
        self._lock = threading.Lock()  # one scrape at a time talks to the broker

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["reader", "topic", "partition"]
        lag = GaugeMetricFamily(
            "carelog_consumer_lag",
            "Offsets between the reader and the end of the log.",
            labels=labels,
        )
        nxt = GaugeMetricFamily(
            "carelog_consumer_next_offset",
            "Next offset the reader reads (committed).",
            labels=labels,
        )
        ok = GaugeMetricFamily(
            "carelog_consumer_lag_ok",
            "1 when the lag could be read at this scrape.",
            labels=["reader"],
        )
        with self._lock:
            try:
                parts = self.read()
            except (LogError, OSError) as exc:
                log.warning("lag of %s not read: %s", self.reader, exc)
                ok.add_metric([self.reader], 0)
                yield ok
                return
        for p in parts:
            key = [self.reader, p.topic, str(p.partition)]
            lag.add_metric(key, p.lag)
            if p.next_offset is not None:
                nxt.add_metric(key, p.next_offset)
        ok.add_metric([self.reader], 1)
        yield from (lag, nxt, ok)


def serve_metrics(
    component: str,
    settings: Settings,
    port: int | None,
    lag: Callable[[], list[PartitionLag]] | None = None,
) -> bool:
    """Serve /metrics on `port` (0 or None: not at all). A port already taken (another
    carelog on this machine, a test) is logged and the process runs on without metrics:
    metrics must never be the reason a pipeline stage is down."""
    if not port:
        return False
    # Registered once per component, so that a test serving twice in one process can.
    if component not in _registered:
        handler = _CountingHandler(component)
        logging.getLogger().addHandler(handler)
        collector = LagCollector(component, lag) if lag is not None else None
        if collector is not None:
            REGISTRY.register(collector)
        _registered[component] = (handler, collector)
    else:
        collector = _registered[component][1]
        if collector is not None and lag is not None:
            collector.read = lag
    try:
        start_http_server(port, addr=settings.metrics_host)
    except OSError as exc:
        log.warning(
            "%s: metrics not served, port %s:%d: %s (set CARELOG_%s_METRICS_PORT to a free port)",
            component, settings.metrics_host, port, exc, component.upper(),
        )  # fmt: skip
        return False
    log.info("%s metrics on http://%s:%d/metrics", component, settings.metrics_host, port)
    return True


def group_lag_reader(
    settings: Settings, group: str, topics: list[str]
) -> Callable[[], list[PartitionLag]]:
    """Reads the lag of consumer group `group` with one admin client kept for the process."""
    from streams.lag import count_pending, group_lag

    admin = admin_client(settings)
    return lambda: count_pending(settings, group_lag(settings, admin, group, topics, timeout=3.0))
