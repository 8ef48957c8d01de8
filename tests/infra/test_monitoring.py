"""The Prometheus configuration and the Grafana dashboard in infra/monitoring name only
metrics and ports that carelog's processes really have."""

from __future__ import annotations

import json
import re

from prometheus_client import REGISTRY, CollectorRegistry

import api.mllp.metrics
import processors.worker_metrics
import projections.fhir_store.metrics
import projections.lake.metrics
import streams.process_metrics
from api.metrics import GatewayMetrics
from infra.local_workers import local_workers
from streams.lag import PartitionLag
from streams.process_metrics import LagCollector
from streams.settings import PROJECT_ROOT, Settings

MONITORING = PROJECT_ROOT / "infra" / "monitoring"
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}


def _series_names(registry: CollectorRegistry) -> set[str]:
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in SUFFIXES.get(family.type, [""])
    }


def test_dashboard_queries_name_only_metrics_the_processes_export() -> None:
    assert api.mllp.metrics and processors.worker_metrics and streams.process_metrics
    assert projections.fhir_store.metrics and projections.lake.metrics
    lag = CollectorRegistry()
    lag.register(LagCollector("sink", lambda: [PartitionLag("t", 0, 1, 0, 2)]))
    known = _series_names(REGISTRY) | _series_names(GatewayMetrics().registry)
    known |= _series_names(lag) | {"up"}

    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    titles = {p["title"] for p in dashboard["panels"]}
    for wanted in ("Ingest rate", "ACK latency", "Processor throughput", "Rejected rate",
                   "Consumer lag", "Projection and sink apply rate"):  # fmt: skip
        assert any(t.startswith(wanted) for t in titles), wanted
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(carelog_\w+|up(?=\{))", target["expr"])
    }
    assert len(used) >= 15
    assert used <= known, used - known


def test_prometheus_scrapes_every_process_on_its_default_port() -> None:
    config = (MONITORING / "prometheus.yml").read_text()
    scraped = {
        component: sorted(int(port) for port in re.findall(r'"127\.0\.0\.1:(\d+)"', listed))
        for listed, component in re.findall(
            r"targets: \[([^\]]*)\][^\n]*\n\s+labels: \{component: (\w+)\}", config
        )
    }
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    workers = local_workers(
        settings.worker.processes, settings.worker.metrics_port, settings.worker.instance_id
    )
    assert scraped == {
        "gateway": [settings.gateway.port],
        "mllp": [settings.mllp.metrics_port],
        "worker": [w.metrics_port for w in workers],  # each worker `carelog run` starts
        "projection": [settings.store.metrics_port],
        "sink": [settings.lake.metrics_port],
        "notifier": [settings.notifier.metrics_port],
    }
