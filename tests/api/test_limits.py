"""Rate limits (429), size limits (413), request ids and the access log."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from schemas.events import Format
from streams.json_logs import JsonFormatter
from tests.api.conftest import PATIENT_JSON, auth, token

pytestmark = pytest.mark.kafka
FHIR = {"content-type": "application/fhir+json"}
ER7 = {"content-type": "x-application/hl7-v2+er7"}


def test_rate_limit_per_subject_is_429_with_retry_after(
    make_client: Callable[..., TestClient], appended
) -> None:
    client = make_client(gateway={"rate_limit_per_second": 0.5, "rate_limit_burst": 2})
    statuses = [client.post("/fhir/Patient", content=PATIENT_JSON, headers=auth(**FHIR)).status_code
                for _ in range(2)]  # fmt: skip
    headers = auth(**FHIR)
    limited = client.post("/fhir/Patient", content=PATIENT_JSON, headers=headers)
    assert statuses == [202, 202]
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["issue"][0]["code"] == "throttled"
    assert appended(Format.fhir, headers["X-Request-ID"]) == []
    # Another client has its own bucket.
    other = {**FHIR, "Authorization": f"Bearer {token('system/*.write', subject='other-sender')}"}
    assert client.post("/fhir/Patient", content=PATIENT_JSON, headers=other).status_code == 202


def test_rate_limit_applies_to_callers_without_a_valid_token(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(gateway={"rate_limit_per_second": 0.5, "rate_limit_burst": 2})
    bad = {**FHIR, "Authorization": "Bearer nonsense"}
    statuses = [
        client.post("/fhir/Patient", content=PATIENT_JSON, headers=bad).status_code
        for _ in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_declared_oversize_body_is_413(make_client: Callable[..., TestClient], appended) -> None:
    client = make_client(gateway={"max_request_bytes": 1000})
    headers = auth(**ER7)
    message = b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|X1|P|2.5.1\rNTE|1||" + b"x" * 2000 + b"\r"
    response = client.post("/hl7v2", content=message, headers=headers)
    assert response.status_code == 413
    assert "MSA|AR" in response.text
    headers_fhir = auth(**FHIR)
    response = client.post("/fhir/Patient", content=b"{" + b" " * 2000 + b"}", headers=headers_fhir)
    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-long"
    for h in (headers, headers_fhir):
        assert appended("rejected", h["X-Request-ID"]) == []


def test_streamed_oversize_body_is_413_before_the_end(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(gateway={"max_request_bytes": 1000})

    def chunks() -> Iterator[bytes]:
        for _ in range(100):  # 100 KB offered, no Content-Length
            yield b"x" * 1024

    response = client.post(
        "/devices/readings", content=chunks(), headers=auth(**{"content-type": "application/json"})
    )
    assert response.status_code == 413


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["x-request-id"])
    unsafe = client.get("/healthz", headers={"X-Request-ID": "<script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["x-request-id"])


def test_access_log_has_one_line_per_request_without_patient_data(
    client: TestClient, caplog
) -> None:
    body = b'{"resourceType": "Patient", "id": "MRN-778812", "name": [{"family": "Okonkwo"}]}'
    headers = auth(**FHIR)
    with caplog.at_level(logging.INFO, logger="carelog.gateway.access"):
        response = client.put("/fhir/Patient/MRN-778812", content=body, headers=headers)
    assert response.status_code == 202
    [record] = [r for r in caplog.records if r.name == "carelog.gateway.access"]
    line = JsonFormatter().format(record)
    for field in ('"route":"/fhir/{type}/{id}"', '"status":202', '"client":"test-sender"',
                  f'"request_id":"{headers["X-Request-ID"]}"', '"duration_ms":', '"method":"PUT"',
                  f'"event_id":"{response.headers["x-event-id"]}"'):  # fmt: skip
        assert field in line
    assert "MRN-778812" not in line and "Okonkwo" not in line
