"""Prometheus metrics every carelog process serves besides its own: log records by level
(the errors a process survived) and, for readers of the log, their consumer lag, read by a
background thread every `metrics_lag_interval_seconds` (a few small admin requests, nothing
on the hot path). A scrape serves the last reading, so it answers at once however slow the
broker is to tell the ends of the log."""

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
    """carelog_consumer_lag{reader,topic,partition} and carelog_consumer_next_offset as last
    read by `start()`'s thread; carelog_consumer_lag_ok is 0 until the first reading and
    when the last one failed (the broker did not answer), and the partitions then shown
    are the last ones read."""

    def __init__(
        self, reader: str, read: Callable[[], list[PartitionLag]], interval: float = 5.0
    ) -> None:
        self.reader = reader
        self.read = read
        self.interval = interval
        self._last: tuple[list[PartitionLag], bool] = ([], False)  # (partitions, ok), swapped whole
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Read the lag now and then every `interval` seconds, in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"lag-{self.reader}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def refresh(self) -> None:
        """One reading; what a scrape serves until the next."""
        try:
            parts = self.read()
        except (LogError, OSError) as exc:
            log.warning("lag of %s not read: %s", self.reader, exc)
            self._last = (self._last[0], False)
            return
        self._last = (parts, True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # a bug in a reader must not end the readings
                log.exception("lag of %s not read", self.reader)
                self._last = (self._last[0], False)
            self._stop.wait(self.interval)

    def add_to(self, families: LagFamilies) -> None:
        """This reader's series, from the last reading."""
        parts, read_ok = self._last
        for p in parts:
            key = [self.reader, p.topic, str(p.partition)]
            families.lag.add_metric(key, p.lag)
            if p.next_offset is not None:
                families.next_offset.add_metric(key, p.next_offset)
        families.ok.add_metric([self.reader], 1 if read_ok else 0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = LagFamilies()
        self.add_to(families)
        yield from families


class LagFamilies:
    """The consumer lag metric families, filled by one reader or several."""

    def __init__(self) -> None:
        labels = ["reader", "topic", "partition"]
        self.lag = GaugeMetricFamily(
            "carelog_consumer_lag",
            "Offsets between the reader and the end of the log.",
            labels=labels,
        )
        self.next_offset = GaugeMetricFamily(
            "carelog_consumer_next_offset",
            "Next offset the reader reads (committed).",
            labels=labels,
        )
        self.ok = GaugeMetricFamily(
            "carelog_consumer_lag_ok",
            "1 when the last reading of the lag (every few seconds, in the background) worked.",
            labels=["reader"],
        )

    def __iter__(self) -> Iterator[GaugeMetricFamily]:
        return iter((self.lag, self.next_offset, self.ok))


class _ProcessLag(Collector):
    """Every reader of this process (one, except in tests) as one set of families."""

    def __init__(self) -> None:
        self.readers: dict[str, LagCollector] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = LagFamilies()
        for reader in list(self.readers.values()):
            reader.add_to(families)
        yield from families


_process_lag = _ProcessLag()


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
        collector = None
        if lag is not None:
            collector = LagCollector(component, lag, settings.metrics.lag_interval_seconds)
            if not _process_lag.readers:
                REGISTRY.register(_process_lag)
            _process_lag.readers[component] = collector
        _registered[component] = (handler, collector)
    else:
        collector = _registered[component][1]
        if collector is not None and lag is not None:
            collector.read = lag
            collector.interval = settings.metrics.lag_interval_seconds
    try:
        start_http_server(port, addr=settings.metrics.host)
    except OSError as exc:
        log.warning(
            "%s: metrics not served, port %s:%d: %s (set CARELOG_%s_METRICS_PORT to a free port)",
            component, settings.metrics.host, port, exc, component.upper(),
        )  # fmt: skip
        return False
    if collector is not None:
        collector.start()
    log.info("%s metrics on http://%s:%d/metrics", component, settings.metrics.host, port)
    return True


def group_lag_reader(
    settings: Settings, group: str, topics: list[str]
) -> Callable[[], list[PartitionLag]]:
    """Reads the lag of consumer group `group` with one admin client kept for the process."""
    from streams.lag import count_pending, group_lag

    admin = admin_client(settings)
    return lambda: count_pending(settings, group_lag(settings, admin, group, topics, timeout=3.0))
