"""Prometheus metrics of `carelog worker` (default registry, served on
CARELOG_WORKER_METRICS_PORT). Children are made up front so that every series exists,
at 0, from the first scrape."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, REJECTED

AGENTS = ("translate", "version")

MESSAGES = Counter("carelog_worker_messages", "Input records handled, by agent.", ["agent"])
OUTPUTS = Counter(
    "carelog_worker_outputs", "Records sent, by topic (carelog.rejected: refused input).",
    ["topic"],
)  # fmt: skip
ERRORS = Counter(
    "carelog_worker_errors", "Exceptions that escaped an agent (Faust restarts the agent).",
    ["agent"],
)  # fmt: skip
LAST_OFFSET = Gauge(
    "carelog_worker_last_offset", "Offset of the last record handled, per input partition.",
    ["topic", "partition"],
)  # fmt: skip

MESSAGES_BY_AGENT = {agent: MESSAGES.labels(agent) for agent in AGENTS}
ERRORS_BY_AGENT = {agent: ERRORS.labels(agent) for agent in AGENTS}
OUTPUTS_BY_TOPIC = {t: OUTPUTS.labels(t) for t in (FHIR_TRANSLATED, FHIR_CHANGES, REJECTED)}
_offsets: dict[tuple[str, int], Gauge] = {}


def handled(agent: str, topic: str, partition: int, offset: int) -> None:
    """Count one input record (cheap: children are looked up once per partition)."""
    MESSAGES_BY_AGENT[agent].inc()
    child = _offsets.get((topic, partition))
    if child is None:
        child = _offsets[(topic, partition)] = LAST_OFFSET.labels(topic, str(partition))
    child.set(offset)
