"""Prometheus metrics of one gateway app (its own registry, so apps never share counters).

A gateway of several processes (api/server.py) runs prometheus_client in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR): each process writes its counts to files there, and /metrics,
whichever process answers it, serves the sum over all of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "carelog_gateway_requests", "HTTP requests answered, by route template and status.",
            ["route", "method", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "carelog_gateway_request_duration_seconds", "Time to answer a request, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.appended = Counter(
            "carelog_gateway_events_appended", "InboundMessage events confirmed by the broker.",
            ["format"], registry=self.registry,
        )  # fmt: skip
        self.rejections = Counter(
            "carelog_gateway_rejections", "Messages refused, by route and reason status "
            "(400/415/422 content, 401/403 auth, 406, 413, 429, 503).",
            ["route", "status"], registry=self.registry,
        )  # fmt: skip
        self.rejected_stored = Counter(
            "carelog_gateway_rejected_events", "Refused input kept on carelog.rejected.",
            ["format"], registry=self.registry,
        )  # fmt: skip
        self.audit_failed = Counter(
            "carelog_gateway_audit_failed", "AuditEvents of reads the log did not confirm.",
            registry=self.registry,
        )  # fmt: skip

        # Labelled children, looked up once per (route, method, status): the hot path.
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, elapsed: float) -> None:
        """Count one answered request."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            rejected = self.rejections.labels(route, str(status)) if status >= 400 else None
            children = (self.requests.labels(route, method, str(status)),
                        self.latency.labels(route), rejected)  # fmt: skip
            self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        if children[2] is not None:
            children[2].inc()

    async def endpoint(self, request: Request) -> Response:
        """Prometheus text exposition of the gateway's metrics (of all its processes)."""
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        registry = self.registry
        if shared:
            registry = CollectorRegistry()
            collector = MultiProcessCollector(None, path=shared)  # type: ignore[no-untyped-call]
            registry.register(_GatewayOnly(collector))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class _GatewayOnly(Collector):
    """The gateway's own metrics of a multiprocess collection (modules the gateway imports
    may define others, which would show as zeros)."""

    def __init__(self, collector: MultiProcessCollector) -> None:
        self._collector = collector

    def collect(self) -> Iterator[Metric]:
        for metric in self._collector.collect():  # type: ignore[no-untyped-call]
            if metric.name.startswith("carelog_gateway_"):
                yield metric
