"""The live status view of `carelog run` (rich.live): per-process health, consumer lag per
reader, throughput and where to look.

The view is a pure function of a ViewState (render), so it is tested without a terminal.
Kafka is sampled on a thread of its own: a broker that does not answer slows the figures,
never the supervisor's restarts. Throughput is the change of the topics' end offsets between
two samples; on topics written in transactions (carelog.fhir.changes) the commit markers
take offsets too, so it reads a little high there.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from infra.readers import INBOUND, ReaderLag, log_ends, reader_lags
from infra.status import components
from infra.supervisor import Service, Supervisor
from streams.admin import admin_client
from streams.settings import Settings
from streams.topics import AUDIT, FHIR_CHANGES, REJECTED

SAMPLE_SECONDS = 2.0
THROUGHPUT_TOPICS = [*INBOUND, FHIR_CHANGES, AUDIT, REJECTED]


@dataclass(frozen=True)
class ProcessRow:
    name: str
    pid: int | None
    state: str  # up, restarting in Ns, starting
    restarts: int
    uptime: float | None  # seconds since the current run started
    last_exit: int | None
    url: str
    metrics_url: str | None


@dataclass(frozen=True)
class ViewState:
    bootstrap: str
    processes: list[ProcessRow]
    readers: list[ReaderLag] | None = None  # None: not sampled yet
    rates: dict[str, float] | None = None  # offsets per second, per topic
    kafka_error: str | None = None
    events: list[str] = field(default_factory=list)


def process_rows(
    services: list[Service], metrics_urls: dict[str, str | None], now: float
) -> list[ProcessRow]:
    rows = []
    for s in services:
        running = s.process is not None and s.process.poll() is None
        if running:
            state, uptime = "up", now - s.started_at
        elif s.process is None and s.next_start > now:
            state, uptime = f"restarting in {s.next_start - now:.0f}s", None
        else:
            state, uptime = "restarting", None
        pid = s.process.pid if running and s.process is not None else None
        rows.append(ProcessRow(s.name, pid, state, s.restarts, uptime, s.last_exit, s.url,
                               metrics_urls.get(s.name)))  # fmt: skip
    return rows


def rates_between(
    before: dict[str, int], after: dict[str, int], seconds: float
) -> dict[str, float]:
    if seconds <= 0:
        return {}
    return {t: max(0, after[t] - before[t]) / seconds for t in after if t in before}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _lag_style(lag: int) -> str:
    return "green" if lag <= 10 else "yellow" if lag < 10_000 else "red"


def render(state: ViewState) -> RenderableType:
    """The whole view for one moment."""
    procs = Table(title="processes", title_justify="left", expand=False)
    for column in ("process", "pid", "state", "restarts", "uptime", "serves", "metrics"):
        procs.add_column(column)
    for p in state.processes:
        style = "green" if p.state == "up" else "red"
        restarts = str(p.restarts) + (
            f" (last exit {p.last_exit})" if p.last_exit is not None else ""
        )
        procs.add_row(p.name, str(p.pid or "-"), Text(p.state, style=style), restarts,
                      _duration(p.uptime), p.url, p.metrics_url or "off")  # fmt: skip

    lag = Table(title="consumer lag (offsets behind the end of the log)", title_justify="left")
    for column in ("reader", "group", "topic", "lag"):
        lag.add_column(column, justify="right" if column == "lag" else "left")
    if state.readers is None:
        lag.add_row("-", "-", "-", "not read yet")
    else:
        for reader in state.readers:
            per_topic = reader.by_topic() or {"(no partitions)": 0}
            for i, (topic, n) in enumerate(per_topic.items()):
                lag.add_row(reader.name if i == 0 else "", reader.group if i == 0 else "",
                            topic, Text(f"{n:,}", style=_lag_style(n)))  # fmt: skip

    flow = Table(title="throughput (msg/s)", title_justify="left")
    flow.add_column("topic")
    flow.add_column("msg/s", justify="right")
    if state.rates is None:
        flow.add_row("-", "measuring")
    else:
        inbound = sum(state.rates.get(t, 0.0) for t in INBOUND)
        flow.add_row("into carelog.inbound.*", f"{inbound:,.1f}")
        for topic in INBOUND:
            if state.rates.get(topic):
                flow.add_row(f"  {topic}", f"{state.rates[topic]:,.1f}")
        flow.add_row(f"out of {FHIR_CHANGES}", f"{state.rates.get(FHIR_CHANGES, 0.0):,.1f}")
        flow.add_row(f"accesses into {AUDIT}", f"{state.rates.get(AUDIT, 0.0):,.1f}")
        flow.add_row(REJECTED, f"{state.rates.get(REJECTED, 0.0):,.1f}")

    kafka = (
        Text(f"kafka {state.bootstrap}: {state.kafka_error}", style="red")
        if state.kafka_error
        else Text(f"kafka {state.bootstrap}: reachable", style="green")
    )
    parts: list[RenderableType] = [kafka, procs, lag, flow]
    if state.events:
        parts.append(Text("recent events\n" + "\n".join(state.events), style="yellow"))
    parts.append(Text("Ctrl-C stops everything; logs in var/logs/<process>.log", style="dim"))
    return Group(*parts)


class KafkaSampler(threading.Thread):
    """Samples lag and end offsets every SAMPLE_SECONDS; the latest figures are read lock-free
    (attributes are replaced whole)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="carelog-view-sampler", daemon=True)
        self.settings = settings
        self.readers: list[ReaderLag] | None = None
        self.rates: dict[str, float] | None = None
        self.error: str | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        admin = admin_client(self.settings)
        previous: tuple[float, dict[str, int]] | None = None
        while not self._halt.is_set():
            try:
                readers = reader_lags(self.settings, admin, timeout=3.0)
                ends, at = log_ends(admin, THROUGHPUT_TOPICS, timeout=3.0), time.monotonic()
            except Exception as exc:  # the view outlives any failure to read Kafka
                self.error = f"unreachable ({exc}); retrying"
            else:
                self.readers, self.error = readers, None
                if previous is not None:
                    self.rates = rates_between(previous[1], ends, at - previous[0])
                previous = (at, ends)
            self._halt.wait(SAMPLE_SECONDS)

    def stop(self) -> None:
        self._halt.set()


def run_live(supervisor: Supervisor, settings: Settings) -> None:
    """Supervise with the live view on the terminal until Ctrl-C."""
    metrics = {c.name: c.metrics_url for c in components(settings)}
    sampler = KafkaSampler(settings)

    def state() -> ViewState:
        rows = process_rows(supervisor.services, metrics, time.monotonic())
        return ViewState(settings.kafka.bootstrap, rows, sampler.readers, sampler.rates,
                         sampler.error, list(supervisor.events))  # fmt: skip

    sampler.start()
    try:
        with Live(render(state()), refresh_per_second=2, screen=False) as live:
            supervisor.run_forever(on_tick=lambda: live.update(render(state())))
    finally:
        sampler.stop()
        sampler.join(10)  # out of librdkafka before the interpreter exits
