"""Reads are audited on carelog.audit, straight from the gateway, not through the processors:
a read over /fhir appends nothing to carelog.inbound.fhir, and the projection folds its
AuditEvent from carelog.audit into a store that serves it over /fhir/AuditEvent."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from api.gateway import Gateway
from projections.fhir_store import FhirStore
from projections.fhir_store.runner import consume
from schemas.events import Format, ResourceChanged
from streams.settings import Settings
from streams.topics import AUDIT
from tests.api.conftest import token
from tests.api.log_reader import LogReader
from tests.projections.fhir_store_support import changed, uid, write_store

pytestmark = pytest.mark.kafka


def reading(scopes: str = "user/*.read") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(scopes, subject='audited-app')}",
            "X-Request-ID": f"audit-{uuid.uuid4()}"}  # fmt: skip


def audit_records(appended: Callable[..., list[Any]], request_id: str) -> list[Any]:
    """The request's records on carelog.audit; they are appended after the answer."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if found := appended("audit", request_id):
            return found
        time.sleep(0.2)
    return []


def test_a_read_is_audited_on_carelog_audit_and_readable_without_the_processors(
    make_client: Callable[..., TestClient],
    appended: Callable[..., list[Any]],
    log_reader: LogReader,
    kafka_settings: Settings,
    tmp_path: Path,
) -> None:
    pid = f"a{uid()}"
    data = tmp_path / "data.sqlite"
    write_store(data, [changed({"resourceType": "Patient", "id": pid})])
    gateway = make_client(store={"path": data})
    headers = reading()
    assert gateway.get(f"/fhir/Patient/{pid}", headers=headers).status_code == 200

    [(key, change)] = audit_records(appended, headers["X-Request-ID"])
    assert isinstance(change, ResourceChanged)
    assert (change.resource_type, change.version, change.inbound_topic) == ("AuditEvent", 1, AUDIT)
    assert key == f"AuditEvent/{change.resource_id}".encode()
    # The read put nothing on the processors' input: it costs the write path nothing.
    assert appended(Format.fhir, headers["X-Request-ID"]) == []

    # The projection folds carelog.audit: the AuditEvent is readable over /fhir.
    projected = tmp_path / "projected.sqlite"
    ends = log_reader.marks(AUDIT)
    with FhirStore.open(projected) as store:
        consume(store, kafka_settings, until={(AUDIT, p): end - 1 for p, end in ends.items()})
    served = make_client(store={"path": projected}).get(
        f"/fhir/AuditEvent/{change.resource_id}", headers=reading()
    )
    assert served.status_code == 200, served.text
    event = served.json()
    assert event["meta"]["versionId"] == "1"
    assert event["entity"][0]["what"] == {"reference": f"Patient/{pid}"}
    assert event["agent"][0]["who"]["identifier"]["value"] == "audited-app"
    assert event == orjson.loads(change.resource or "")


def gateway_of_app(client: TestClient) -> Gateway:
    gateway: Gateway = client.app.state.gateway  # type: ignore[attr-defined]
    return gateway


def test_a_failed_audit_append_is_counted_and_the_read_still_answered(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    pid = f"f{uid()}"
    data = tmp_path / "data.sqlite"
    write_store(data, [changed({"resourceType": "Patient", "id": pid})])
    # Its own producer, towards a broker that is not there: every append fails fast.
    gateway = make_client(
        share_producer=False,
        store={"path": data},
        kafka={"cluster": "127.0.0.1:9"},
        gateway={"delivery_timeout_ms": 300},
    )
    assert gateway.get(f"/fhir/Patient/{pid}", headers=reading()).status_code == 200
    deadline = time.monotonic() + 10
    failed = 0.0
    while time.monotonic() < deadline and not failed:
        registry = gateway_of_app(gateway).metrics.registry
        failed = registry.get_sample_value("carelog_gateway_audit_failed_total") or 0.0
        time.sleep(0.1)
    assert failed == 1
