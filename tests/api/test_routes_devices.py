"""POST /devices/readings: the whole batch as one event; schema faults named field by field."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from schemas.events import Format
from tests.api.conftest import auth

pytestmark = pytest.mark.kafka
JSON = {"content-type": "application/json"}


def test_batch_is_one_event_byte_for_byte(client: TestClient, corpus: Path, appended) -> None:
    body = (corpus / "device" / "bedside_monitor_batch.json").read_bytes()
    headers = auth(**JSON, **{"Idempotency-Key": "mon-4west-0001"})
    response = client.post("/devices/readings", content=body, headers=headers)

    assert response.status_code == 202
    answer = response.json()
    assert answer["status"] == "accepted" and answer["readings"] == 7
    assert answer["eventId"] == response.headers["x-event-id"]
    [(_, event)] = appended(Format.device, headers["X-Request-ID"])
    assert event.event_id == answer["eventId"]
    assert event.payload == body
    assert event.idempotency_key == "mon-4west-0001"
    assert event.headers["device.id"] == "MON-4WEST-412B"


def test_schema_faults_are_422_per_field_and_kept(
    client: TestClient, corpus: Path, appended
) -> None:
    batch = orjson.loads((corpus / "device" / "bedside_monitor_batch.json").read_bytes())
    batch["readings"][1]["unit"] = "beats per minute"
    batch["readings"][2]["value"] = "132"
    del batch["readings"][3]["time"]
    batch["patient"]["value"] = ""
    body = orjson.dumps(batch)
    headers = auth(**JSON)
    response = client.post("/devices/readings", content=body, headers=headers)

    assert response.status_code == 422
    locations = {i["expression"][0] for i in response.json()["issue"]}
    assert locations == {
        "readings[1].unit",
        "readings[2].value",
        "readings[3].time",
        "patient.value",
    }
    [(_, rejected)] = appended("rejected", headers["X-Request-ID"])
    assert rejected.original == body
    assert rejected.format == "device"
    assert "(+3 more)" in rejected.reason
    assert appended(Format.device, headers["X-Request-ID"]) == []


def test_not_json_is_400_wrong_type_415(client: TestClient, appended) -> None:
    headers = auth(**JSON)
    response = client.post("/devices/readings", content=b"HR=88", headers=headers)
    assert response.status_code == 400
    assert appended("rejected", headers["X-Request-ID"])[0][1].original == b"HR=88"

    headers = auth(**{"content-type": "text/csv"})
    response = client.post("/devices/readings", content=b"HR,88", headers=headers)
    assert response.status_code == 415
    assert appended("rejected", headers["X-Request-ID"])[0][1].original == b"HR,88"


def test_device_scope_is_required(client: TestClient, corpus: Path) -> None:
    body = (corpus / "device" / "bedside_monitor_batch.json").read_bytes()
    response = client.post(
        "/devices/readings", content=body, headers=auth("system/*.write", **JSON)
    )
    assert response.status_code == 403
    assert "system/device.write" in response.json()["issue"][0]["diagnostics"]
