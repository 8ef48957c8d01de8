"""Reads are audited on carelog.audit, straight from the gateway, not through the processors:
a read over /fhir appends nothing to carelog.inbound.fhir, and the projection folds its
AuditEvent from carelog.audit into a store that serves it over /fhir/AuditEvent."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import KafkaException
from starlette.testclient import TestClient

import api.fhir.audit_batch
import api.fhir.audit_record
from api.fhir.audit_batch import AuditBatch
from api.gateway import Gateway
from api.metrics import GatewayMetrics
from api.security.auth import Principal
from projections.fhir_store import FhirStore
from projections.fhir_store.runner import consume
from schemas.events import Format, ResourceChanged
from streams.producer import EventProducer
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


def test_concurrent_reads_each_get_their_own_audit_event(
    make_client: Callable[..., TestClient], appended: Callable[..., list[Any]], tmp_path: Path
) -> None:
    """Reads answered in the same turns of the event loop have their records made together
    (api/fhir/audit_batch.py): each still names its own patient and request."""
    pids = [f"c{uid()}" for _ in range(12)]
    data = tmp_path / "data.sqlite"
    write_store(data, [changed({"resourceType": "Patient", "id": pid}) for pid in pids])
    client = make_client(store={"path": data})
    headers = [reading() for _ in pids]

    async def read_all() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            return await asyncio.gather(*(http.get(f"/fhir/Patient/{pid}", headers=h)
                                          for pid, h in zip(pids, headers, strict=True)))  # fmt: skip

    answers = asyncio.run(read_all())
    assert [a.status_code for a in answers] == [200] * len(pids)
    for pid, h in zip(pids, headers, strict=True):
        [(_, change)] = audit_records(appended, h["X-Request-ID"])
        event = orjson.loads(change.resource or "")
        assert event["entity"][0]["what"] == {"reference": f"Patient/{pid}"}


def test_a_record_that_cannot_be_made_fails_only_its_own_access(
    make_client: Callable[..., TestClient],
    appended: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway = gateway_of_app(make_client())
    made = api.fhir.audit_record.audit_record
    flushed: list[int] = []

    def audit_record(event: dict[str, Any], *args: Any) -> bytes:
        if event["entity"][0]["what"]["reference"] == "Patient/broken":
            raise ValueError("no key for Patient/broken")
        return made(event, *args)

    monkeypatch.setattr(api.fhir.audit_batch, "audit_record", audit_record)
    flush = api.fhir.audit_batch.AuditBatch._flush

    def counted(batch: api.fhir.audit_batch.AuditBatch) -> None:
        flushed.append(len(batch._pending))
        flush(batch)

    monkeypatch.setattr(api.fhir.audit_batch.AuditBatch, "_flush", counted)
    reader = Principal(subject="audited-app", scopes=frozenset({"user/*.read"}))
    ids = {pid: f"audit-{uuid.uuid4()}" for pid in ("ok1", "broken", "ok2")}

    async def three_reads_in_one_turn() -> list[BaseException | None]:
        waits = [gateway.audit_batch.queue(reader, "read", "10.0.0.9", [f"Patient/{pid}"], None,
                                           correlation_id)
                 for pid, correlation_id in ids.items()]  # fmt: skip
        return await asyncio.gather(*waits, return_exceptions=True)

    outcomes = asyncio.run(three_reads_in_one_turn())
    assert flushed == [3]  # one batch, at the end of the turn
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)  # its read fails: no answer without a record
    for pid in ("ok1", "ok2"):
        [(_, change)] = audit_records(appended, ids[pid])
        assert (
            orjson.loads(change.resource or "")["entity"][0]["what"]["reference"]
            == f"Patient/{pid}"
        )
    assert appended("audit", ids["broken"]) == []


def test_reads_are_answered_and_counted_when_the_audit_producer_cannot_be_made() -> None:
    metrics = GatewayMetrics()

    def no_producer() -> EventProducer:
        raise KafkaException("bootstrap.servers is not a valid address")

    batch = AuditBatch(no_producer, metrics)
    reader = Principal(subject="audited-app", scopes=frozenset({"user/*.read"}))

    async def two_reads() -> tuple[None, None]:
        return await asyncio.gather(
            batch.queue(reader, "read", "10.0.0.9", ["Patient/a"], None, "r1"),
            batch.queue(reader, "read", "10.0.0.9", ["Patient/b"], None, "r2"),
        )

    assert list(asyncio.run(asyncio.wait_for(two_reads(), 5))) == [None, None]
    assert metrics.registry.get_sample_value("carelog_gateway_audit_failed_total") == 2
