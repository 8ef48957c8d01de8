"""`carelog notifier` against the real broker: one real notifier process for the module,
real HTTP receivers and a real websocket client. Changes are appended to
carelog.fhir.changes as the processors would."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from websockets.sync.client import connect

from api.app import create_app
from api.security.dev_token import mint_token
from streams.event_codec import encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import FHIR_CHANGES
from tests.projections.fhir_store_support import changed, uid
from tests.projections.notifier_support import (
    NotifierProcess,
    Receiver,
    event_numbers,
    observation,
    status_params,
    subscription,
    wait_for,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

pytestmark = pytest.mark.kafka
SECRET = "notifier-test-" + "x" * 40


def append(settings: Settings, *resources: tuple[dict[str, Any], int]) -> None:
    """Each (resource, version) as a ResourceChanged on the change log, in this order."""
    events = [changed(r, v, at=None) for r, v in resources]
    with EventProducer(settings) as producer:
        producer.send_many([Outgoing(FHIR_CHANGES, e.key, encode_event(e)) for e in events])


def subscribe(settings: Settings, notifier: NotifierProcess, *subs: dict[str, Any]) -> None:
    """Append Subscriptions and wait until the notifier serves them, as a client would."""
    append(settings, *[(sub, 1) for sub in subs])
    for sub_id in [sub["id"] for sub in subs]:
        wait_for(lambda i=sub_id: "status" in notifier.status(i), 30, f"Subscription {sub_id}")


@pytest.fixture(scope="module")
def notifier(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NotifierProcess]:
    process = NotifierProcess(tmp_path_factory.mktemp("notifier"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


def test_rest_hook_gets_matching_changes_only(
    kafka_settings: Settings, notifier: NotifierProcess, receiver: Receiver
) -> None:
    code, patient, other, sub = uid(), uid(), uid(), f"s{uid()}"
    path = f"/{sub}"
    subscribe(
        kafka_settings,
        notifier,
        subscription(
            sub,
            f"Observation?code=http://loinc.org|{code}&subject=Patient/{patient}",
            endpoint=receiver.url(path),
            headers=["Authorization: Bearer abc"],
        ),
    )
    append(kafka_settings,
           (observation(f"o{code}", code, patient), 1),
           (observation(f"x{code}", uid(), patient), 1),  # another code
           (observation(f"y{code}", code, other), 1),  # another patient
           (observation(f"o{code}", code, patient, value=2), 2))  # fmt: skip
    wait_for(lambda: sum(len(event_numbers(b)) for b in receiver.bundles(path)) >= 2, 30,
             "two notifications")  # fmt: skip
    time.sleep(0.5)  # nothing else is coming
    bundles = receiver.bundles(path)
    assert [n for b in bundles for n in event_numbers(b)] == [1, 2]
    resources = [e["resource"] for b in bundles for e in b["entry"][1:]]
    assert [(r["id"], r["meta"]["versionId"]) for r in resources] == [(f"o{code}", "1"),
                                                                     (f"o{code}", "2")]  # fmt: skip
    first = bundles[0]
    assert first["type"] == "history"
    status = first["entry"][0]["resource"]
    assert status["resourceType"] == "Parameters"
    assert status["meta"]["profile"][0].endswith("backport-subscription-status-r4")
    names = [p["name"] for p in status_params(first)]
    assert names[:4] == ["subscription", "status", "type", "events-since-subscription-start"]
    assert "events-in-notification" in names and "notification-event" in names
    assert all(h.get("Authorization") == "Bearer abc" for h in receiver.headers(path))
    state = notifier.status(sub)
    assert state["events-since-subscription-start"] == "2" and state["status"] == "active"
    assert state["type"] == "query-status"


def test_endpoint_down_then_up_gets_everything_in_order(
    kafka_settings: Settings, notifier: NotifierProcess
) -> None:
    down = Receiver()
    code, patient, sub = uid(), uid(), f"d{uid()}"
    oid = f"o{code}"
    subscribe(
        kafka_settings,
        notifier,
        subscription(sub, f"Observation?code={code}", endpoint=down.url("/hook")),
    )
    append(kafka_settings,
           *[(observation(oid, code, patient, value=v), v) for v in range(1, 16)])  # fmt: skip
    wait_for(lambda: notifier.status(sub).get("status") == "error", 30, "status error")
    assert notifier.status(sub)["events-since-subscription-start"] == "15"
    time.sleep(1.0)  # a few retries with back-off while it is down
    down.start()
    try:
        wait_for(lambda: sum(len(event_numbers(b)) for b in down.bundles("/hook")) >= 15, 30,
                 "the backlog")  # fmt: skip
        numbers = [n for b in down.bundles("/hook") for n in event_numbers(b)]
        versions = [int(e["resource"]["meta"]["versionId"])
                    for b in down.bundles("/hook") for e in b["entry"][1:]]  # fmt: skip
        assert numbers == list(range(1, 16)) and versions == list(range(1, 16))
        wait_for(lambda: notifier.status(sub)["status"] == "active", 10, "status active")
    finally:
        down.stop()


def test_id_only_heartbeat_and_invalid_endpoint(
    kafka_settings: Settings, notifier: NotifierProcess, receiver: Receiver
) -> None:
    code, sub, bad = uid(), f"h{uid()}", f"b{uid()}"
    path = f"/{sub}"
    subscribe(
        kafka_settings,
        notifier,
        subscription(
            sub,
            f"Observation?code={code}",
            endpoint=receiver.url(path),
            content="id-only",
            heartbeat=1,
        ),
        subscription(bad, "Observation?code=x", endpoint="ftp://example.org/x"),
    )
    append(kafka_settings, (observation(f"o{code}", code, uid()), 1))  # fmt: skip
    wait_for(lambda: bool(receiver.bundles(path)), 30, "the notification")
    entry = receiver.bundles(path)[0]["entry"][1]
    assert "resource" not in entry and entry["fullUrl"].endswith(f"/Observation/o{code}")
    wait_for(lambda: bool(receiver.bundles(path, "heartbeat")), 10, "a heartbeat")
    refused = notifier.status(bad)
    assert refused["status"] == "error" and "http(s)" in refused["error"]["text"]
    append(kafka_settings, ({**subscription(sub, "Observation?code=x"), "status": "off"}, 2))
    wait_for(lambda: notifier.status(sub)["status"] == "off", 10, "status off")
    time.sleep(1.2)  # a heartbeat period: none comes once it is off
    count = len(receiver.bundles(path, "heartbeat"))
    time.sleep(1.2)
    assert len(receiver.bundles(path, "heartbeat")) == count


def test_websocket_binds_and_receives(kafka_settings: Settings, notifier: NotifierProcess) -> None:
    code, sub = uid(), f"w{uid()}"
    subscribe(
        kafka_settings,
        notifier,
        subscription(sub, f"Observation?code={code}", channel="websocket", content="id-only"),
    )
    app_settings = kafka_settings.amended(
        auth={"hs256_secret": SecretStr(SECRET)},
        notifier={"url": notifier.control, "ws_url": f"ws://127.0.0.1:{notifier.ws_port}/ws"},
    )
    headers = {"Authorization": f"Bearer {mint_token(SECRET, 'system/Subscription.read')}"}
    with TestClient(create_app(app_settings), raise_server_exceptions=False) as client:
        url = f"/fhir/Subscription/{sub}/$get-ws-binding-token"
        wait_for(lambda: client.post(url, headers=headers).status_code == 200, 30, "the sub")
        answer = client.post(url, headers=headers).json()
        assert client.get(f"/fhir/Subscription/{sub}/$status").status_code == 401
        assert client.get("/fhir/Subscription/nosuch/$status", headers=headers).status_code == 404
        status = client.get(f"/fhir/Subscription/{sub}/$status", headers=headers).json()
    assert status["entry"][0]["resource"]["resourceType"] == "Parameters"
    params = {p["name"]: p for p in answer["parameter"]}
    with connect(params["websocket-url"]["valueUrl"], open_timeout=10) as ws:
        ws.send(f"bind-with-token {params['token']['valueString']}")
        hello = orjson.loads(ws.recv(timeout=10))
        assert [p["valueCode"] for p in status_params(hello) if p["name"] == "type"] == [
            "handshake"
        ]
        append(kafka_settings, (observation(f"o{code}", code, uid()), 1))
        bundle = orjson.loads(ws.recv(timeout=30))
    assert event_numbers(bundle) == [1]
    assert bundle["entry"][1]["fullUrl"].endswith(f"/Observation/o{code}")
    with connect(params["websocket-url"]["valueUrl"], open_timeout=10) as ws:
        ws.send(f"bind-with-token {params['token']['valueString']}")  # used already
        assert "error" in orjson.loads(ws.recv(timeout=10))


def test_the_control_port_mints_tokens_for_the_gateway_only(
    kafka_settings: Settings, notifier: NotifierProcess
) -> None:
    """A binding token reads a subscription's notifications: a caller without the gateway's
    credential gets none, whatever it guesses."""
    sub = f"c{uid()}"
    subscribe(kafka_settings, notifier,
              subscription(sub, f"Observation?code={uid()}", channel="websocket"))  # fmt: skip
    wait_for(lambda: notifier.ask("POST", f"token/{sub}").status_code == 200, 30, "the sub")
    for credential in ("", "Bearer guessed", "Basic Z2F0ZXdheQ==", f"Bearer {'0' * 64}"):
        answer = notifier.ask("POST", f"token/{sub}", Authorization=credential)
        assert answer.status_code == 401, credential
        assert "token" not in answer.json()
    assert notifier.ask("GET", f"status/{sub}", Authorization="").status_code == 401


def test_sigkill_mid_stream_loses_nothing(
    kafka_settings: Settings, notifier: NotifierProcess, receiver: Receiver
) -> None:
    code, sub = uid(), f"k{uid()}"
    path, oid, total = f"/{sub}", f"o{code}", 60
    subscribe(
        kafka_settings,
        notifier,
        subscription(sub, f"Observation?code={code}", endpoint=receiver.url(path)),
    )

    def stream() -> None:
        with EventProducer(kafka_settings) as producer:
            for v in range(1, total + 1):
                event = changed(observation(oid, code, "p", value=v), v)
                producer.send_many([Outgoing(FHIR_CHANGES, event.key, encode_event(event))])
                time.sleep(0.02)

    writer = threading.Thread(target=stream)
    writer.start()
    wait_for(lambda: bool(receiver.bundles(path)), 30, "the first notifications")
    notifier.kill()
    notifier.start()
    writer.join()
    wait_for(lambda: {int(e["resource"]["meta"]["versionId"]) for b in receiver.bundles(path)
                      for e in b["entry"][1:]} >= set(range(1, total + 1)), 60, "every version")  # fmt: skip
    versions = [int(e["resource"]["meta"]["versionId"])
                for b in receiver.bundles(path) for e in b["entry"][1:]]  # fmt: skip
    highest = 0
    for v in versions:  # resent after the crash (at least once), never out of order
        assert v <= highest + 1, versions
        highest = max(highest, v)
    assert list(dict.fromkeys(versions)) == list(range(1, total + 1))
    assert notifier.status(sub)["events-since-subscription-start"] == str(total)
    assert Path(notifier.env["CARELOG_NOTIFIER_DIR"], "state.sqlite").exists()


def test_subscription_writes_need_write_scope(kafka_settings: Settings) -> None:
    app_settings = kafka_settings.amended(auth={"hs256_secret": SecretStr(SECRET)})
    body = orjson.dumps(subscription("any", "Observation?code=x", endpoint="http://x.test/"))
    headers = {"Authorization": f"Bearer {mint_token(SECRET, 'system/Subscription.read')}",
               "Content-Type": "application/fhir+json"}  # fmt: skip
    with TestClient(create_app(app_settings), raise_server_exceptions=False) as client:
        assert client.post("/fhir/Subscription", content=body, headers=headers).status_code == 403
