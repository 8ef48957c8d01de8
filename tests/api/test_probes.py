"""/healthz, /readyz, /metrics and /openapi.json."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import auth

pytestmark = pytest.mark.kafka


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").text == "ok\n"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and "kafka reachable" in ready.text


def test_metrics_count_requests_events_and_rejections(make_client, corpus: Path) -> None:
    client = make_client()  # its own registry: counts start at zero
    message = (corpus / "hl7v2" / "oru_r01_cbc_v2.5.1.hl7").read_bytes()
    er7 = {"content-type": "x-application/hl7-v2+er7"}
    assert client.post("/hl7v2", content=message, headers=auth(**er7)).status_code == 200
    assert client.post("/hl7v2", content=b"nope", headers=auth(**er7)).status_code == 400
    text = client.get("/metrics").text
    assert 'carelog_gateway_requests_total{method="POST",route="/hl7v2",status="200"} 1.0' in text
    assert 'carelog_gateway_events_appended_total{format="hl7v2"} 1.0' in text
    assert 'carelog_gateway_rejections_total{route="/hl7v2",status="400"} 1.0' in text
    assert 'carelog_gateway_rejected_events_total{format="hl7v2"} 1.0' in text
    assert 'carelog_gateway_request_duration_seconds_count{route="/hl7v2"} 2.0' in text


def test_openapi_documents_every_route_with_its_scope(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {(m, r.path) for r in client.app.routes for m in r.methods if m != "HEAD"}
    assert documented == served
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert "system/hl7v2.write" in doc["paths"]["/hl7v2"]["post"]["description"]
    assert "503" in doc["paths"]["/fhir/{type}"]["post"]["responses"]


def test_unknown_route_is_an_operation_outcome(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"
    assert client.get("/hl7v2").status_code == 405
