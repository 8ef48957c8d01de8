"""The Kafka broker stopped and restarted mid-stream, with a load running.

While it is down, senders are told to retry (HTTP 503, HL7 AE) and nothing is acknowledged;
once it is back, what was acknowledged before, and what is sent after, reconciles through
carelog.inbound.*, carelog.fhir.changes, the FHIR store and the Delta tables.

The broker is one of this test's own (free ports, under tmp_path): the session's broker,
which every other test uses, is never disturbed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.kafka_broker import LocalBroker
from streams.admin import apply_catalogue
from streams.privacy import envelope
from streams.settings import Settings, get_settings
from streams.settings.kafka import KafkaSettings
from tests.kafka_fixture import free_port
from tests.system.harness import (
    SYSTEM_MASTER_KEY,
    Load,
    Reconciler,
    System,
    wait_until,
)

pytestmark = pytest.mark.kafka


@pytest.fixture
def broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalBroker]:
    local = KafkaSettings(cluster=None, port=free_port(), controller_port=free_port())
    broker = LocalBroker(Settings(var_dir=tmp_path / "broker", kafka=local))
    broker.up()
    # This process reads the system's events as its processes do: keys on this broker.
    monkeypatch.setenv("CARELOG_KAFKA_BOOTSTRAP", broker.bootstrap)
    monkeypatch.setenv("CARELOG_KEY_STORE", "kafka")
    monkeypatch.setenv("CARELOG_MASTER_KEY", SYSTEM_MASTER_KEY)
    get_settings.cache_clear()
    envelope.install(None)
    try:
        apply_catalogue(
            settings=Settings(environment="test", kafka=KafkaSettings(cluster=broker.bootstrap))
        )
        yield broker
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        envelope.install(None)
        broker.down()


def test_broker_stopped_and_restarted_mid_stream(broker: LocalBroker, tmp_path: Path) -> None:
    system = System(tmp_path / "system", broker.bootstrap)
    load = Load(system, "brk")
    reconciler: Reconciler | None = None
    try:
        system.start()
        reconciler = Reconciler(system)
        load.start()
        load.wait_acks(20, timeout=90)

        assert broker.down()
        stopped = time.monotonic()

        def refused() -> bool:
            return load.answers["http 503"] >= 3 and load.answers["mllp AE"] >= 2

        wait_until(refused, 60, lambda: f"answers {dict(load.answers)}\n{system.explain()}")
        acked_while_down = load.acked_count()
        time.sleep(2)  # the load keeps meeting the stopped broker
        # Nothing is acknowledged once senders hear 503 / AE (the in-flight ones may finish).
        assert load.acked_count() == acked_while_down, dict(load.answers)
        down_for = time.monotonic() - stopped

        broker.up()
        # A process that gave up while the broker was away (or gives up as it comes back) is
        # restarted, as `carelog run` does; say which.
        with system.supervised() as revived:
            load.wait_acks(30, timeout=120)  # the gateway and the MLLP listener recover
            load.stop()
            report = reconciler.reconcile(load, timeout=150)
        print(f"broker down {down_for:.1f}s; answers {dict(load.answers)}; "
              f"restarted after it: {revived or 'none'}; {report.line()}")  # fmt: skip
        assert load.answers["http 503"] > 0 and load.answers["mllp AE"] > 0
        assert report.acked >= 50
    finally:
        load.stop()
        if reconciler is not None:
            reconciler.close()
        system.stop()
