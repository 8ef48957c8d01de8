"""The edge's sealing while the broker is away (a broker of the test's own, stopped and
started again): no caller waits out the producer's 30 s timeout for a key."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from schemas.events import Channel, Format, InboundMessage
from streams.admin import apply_catalogue
from streams.errors import DeliveryFailed
from streams.event_codec import encode_event
from streams.privacy import envelope, message_keys
from streams.privacy.keystore import KafkaKeyStore
from streams.settings import Settings
from streams.topics import catalogue
from tests.kafka_fixture import stoppable_broker

pytestmark = pytest.mark.kafka


def _message(text: str) -> InboundMessage:
    return InboundMessage.received(
        text.encode(), channel=Channel.http, format=Format.hl7v2,
        content_type="x-application/hl7-v2+er7", sender="outage-test",
    )  # fmt: skip


def test_sealing_new_messages_never_waits_on_a_broker_that_is_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(message_keys, "POOL_SIZE", 8)
    monkeypatch.setattr(message_keys, "REFILL_BELOW", 4)
    monkeypatch.setattr(message_keys, "FIRST_WAIT", 1.0)
    with stoppable_broker() as broker:
        settings = Settings(var_dir=tmp_path, environment="test", kafka=broker.settings.kafka)
        apply_catalogue(catalogue(settings.environment), settings)
        store = KafkaKeyStore(settings, cache_dir=tmp_path / "keys")
        envelope.install(store)
        try:
            patient = f"patient:{uuid.uuid4().hex}"
            store.key_for(patient)  # a returning patient: its key is on the log
            encode_event(_message("first"))  # the first fill of message keys
            broker.down()

            # Until the pool is empty: sealed at once, a refill hanging meanwhile.
            sealed, refused, slowest = 0, 0, 0.0
            for n in range(message_keys.POOL_SIZE + 20):
                started = time.monotonic()
                try:
                    encode_event(_message(f"new patient {n}"))
                    sealed += 1
                except DeliveryFailed as exc:
                    assert "no data key ready" in str(exc)
                    refused += 1
                slowest = max(slowest, time.monotonic() - started)
                # A returning patient's key is found while the refill waits on the broker.
                started = time.monotonic()
                assert store.current(patient) is not None
                assert time.monotonic() - started < 0.5
            assert sealed == message_keys.POOL_SIZE - 1
            assert refused == 21
            assert slowest < message_keys.FIRST_WAIT + 0.5  # never the producer's 30 s

            broker.up()  # the refill in flight is confirmed once the broker is back
            deadline = time.monotonic() + 60
            while True:
                try:
                    encode_event(_message("after the outage"))
                    break
                except DeliveryFailed:
                    assert time.monotonic() < deadline, "no message key after the broker returned"
                    time.sleep(0.5)
        finally:
            envelope.install(None)
            store.close()
