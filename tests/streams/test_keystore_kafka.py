"""Data keys on carelog.keys shared between processes (two KafkaKeyStores on the real broker)."""

from __future__ import annotations

import time
import uuid

import pytest

from streams.privacy.keystore import KafkaKeyStore
from streams.settings import Settings

pytestmark = pytest.mark.kafka


def test_a_patient_key_made_elsewhere_is_used_not_made_again(kafka_settings: Settings) -> None:
    """The worker makes a new patient's key; the gateway, auditing a read of that patient a
    moment later, seals with the same key instead of making (and logging) a second one."""
    worker, gateway = KafkaKeyStore(kafka_settings), KafkaKeyStore(kafka_settings)
    try:
        prefix = f"patient:{uuid.uuid4().hex}"
        made, cipher = worker.key_for(prefix)  # confirmed on the log when it returns
        time.sleep(1.0)  # the gateway's reader fetches it in the background
        used, same = gateway.key_for(prefix)
        assert used == made
        sealed = cipher.encrypt(b"\0" * 12, b"phi", b"aad")
        assert same.decrypt(b"\0" * 12, sealed, b"aad") == b"phi"
        assert gateway.key_ids(prefix) == [made]  # no second key on the log
    finally:
        worker.close()
        gateway.close()


def test_a_key_the_reader_has_not_fetched_yet_is_found_by_reading_to_the_end(
    kafka_settings: Settings,
) -> None:
    maker, reader = KafkaKeyStore(kafka_settings), KafkaKeyStore(kafka_settings)
    try:
        made, _ = maker.key_for(f"patient:{uuid.uuid4().hex}")
        assert reader.cipher(made) is not None  # at once: no wait for the background fetch
        assert reader.cipher(f"patient:{uuid.uuid4().hex}/never-made") is None
    finally:
        maker.close()
        reader.close()
