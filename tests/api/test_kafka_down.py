"""With Kafka unreachable nothing is claimed as stored: 503 / AE with Retry-After, never 2xx
or AA, and /readyz says so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import auth
from tests.kafka_fixture import free_port

pytestmark = pytest.mark.kafka
DEVICE_BATCH = (Path(__file__).parents[1] / "corpus/device/bedside_monitor_batch.json").read_bytes()


@pytest.fixture(scope="module")
def down(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(
        share_producer=False,
        kafka={"cluster": f"127.0.0.1:{free_port()}"},
        gateway={"delivery_timeout_ms": 1500},
    )


def test_hl7_gets_ae_and_503(down: TestClient, corpus: Path) -> None:
    message = (corpus / "hl7v2" / "oru_r01_cbc_v2.5.1.hl7").read_bytes()
    response = down.post(
        "/hl7v2", content=message, headers=auth(**{"content-type": "x-application/hl7-v2+er7"})
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "MSA|AE|NWH-LAB-7001|" in response.text
    assert "MSA|AA" not in response.text


def test_even_a_refusal_is_503_when_it_cannot_be_recorded(down: TestClient) -> None:
    response = down.post("/hl7v2", content=b"junk", headers=auth(**{"content-type": "text/plain"}))
    assert response.status_code == 503
    assert "MSA|AE|" in response.text


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        ("POST", "/fhir/Patient", b'{"resourceType": "Patient"}', "application/fhir+json"),
        ("DELETE", "/fhir/Patient/p-1", None, None),
        ("POST", "/devices/readings", DEVICE_BATCH, "application/json"),
    ],
)  # fmt: skip
def test_json_routes_get_503_outcome(
    down: TestClient, method: str, path: str, body: bytes | None, content_type: str | None
) -> None:
    headers = auth(**({"content-type": content_type} if content_type else {}))
    response = down.request(method, path, content=body, headers=headers)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "x-event-id" not in response.headers
    [issue] = response.json()["issue"]
    assert issue["code"] == "transient" and "not stored" in issue["diagnostics"]


def test_readyz_is_503(down: TestClient) -> None:
    response = down.get("/readyz")
    assert response.status_code == 503
    assert "unreachable" in response.text or "no broker" in response.text
