"""Prometheus metrics of `carelog projection` (default registry, served on
CARELOG_PROJECTION_METRICS_PORT). The lag and the last applied offsets are read from the
store file by a background thread every few seconds (carelog_consumer_lag / _next_offset,
reader="projection")."""

from __future__ import annotations

from prometheus_client import Counter

from projections.fhir_store.apply import Applied

EVENTS = Counter("carelog_projection_events", "Log records applied to the FHIR store.")
VERSIONS = Counter("carelog_projection_versions", "Resource versions stored.")
REJECTIONS = Counter("carelog_projection_rejections", "Rejected events stored.")
UNDECODABLE = Counter(
    "carelog_projection_undecodable", "Records that could not be decoded (errors)."
)
BATCHES = Counter("carelog_projection_batches", "Transactions committed to the store.")


def observe(applied: Applied) -> None:
    EVENTS.inc(applied.records)
    VERSIONS.inc(applied.versions)
    REJECTIONS.inc(applied.rejections)
    UNDECODABLE.inc(applied.undecodable)
    BATCHES.inc()
