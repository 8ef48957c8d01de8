"""POST /fhir/Patient/{id}/$erase: its own scope, a reason, and the report of what went."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.api.conftest import auth

pytestmark = pytest.mark.kafka

REASON = {"resourceType": "Parameters", "parameter": [{"name": "reason", "valueString": "art. 17"}]}


@pytest.fixture(scope="module")
def erase_client(
    make_client: Callable[..., TestClient], tmp_path_factory: pytest.TempPathFactory
) -> TestClient:
    tmp: Path = tmp_path_factory.mktemp("erase-api")
    return make_client(store={"path": tmp / "store.sqlite"}, lake={"uri": str(tmp / "lake")}, privacy={"key_refresh_seconds": 0.1})  # fmt: skip


def _post(client: TestClient, body: Any, scopes: str) -> Any:
    return client.post(f"/fhir/Patient/{uuid.uuid4()}/$erase", content=json.dumps(body),
                       headers=auth(scopes, **{"content-type": "application/fhir+json"}))  # fmt: skip


@pytest.mark.parametrize(
    "scopes", ["system/*.write", "system/*.* system/Patient.d", "system/audit.write"]
)
def test_no_fhir_scope_grants_erase(erase_client: TestClient, scopes: str) -> None:
    answer = _post(erase_client, REASON, scopes)
    assert answer.status_code == 403
    assert "system/erase.write" in answer.text


def test_erase_needs_a_reason(erase_client: TestClient) -> None:
    answer = _post(erase_client, {"resourceType": "Parameters"}, "system/erase.write")
    assert answer.status_code == 400
    assert answer.json()["issue"][0]["code"] == "required"


def test_erase_answers_with_its_report(erase_client: TestClient) -> None:
    answer = _post(erase_client, REASON, "system/erase.write")
    assert answer.status_code == 200, answer.text
    parts = {p["name"]: p["valueString"] for p in answer.json()["parameter"]}
    report = json.loads(parts["report"])
    assert report["request_id"] == parts["request"] and report["reason"] == "art. 17"
    assert report["keys_shredded"] == 0 and report["store"]["resources"] == 0
    assert report["audit_event"] == f"AuditEvent/{parts['request']}"
