"""Two workers, as `carelog run` starts them (CARELOG_WORKER_PROCESSES=2), share the
processing topics' partitions: both take some, every message goes through exactly once, and
one SIGKILLed and restarted takes its partitions back without loss or duplicate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from streams.admin import admin_client
from streams.settings import Settings
from tests.system.harness import Load, Reconciler, System, wait_until

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def system(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    system = System(tmp_path_factory.mktemp("two-workers"), kafka_settings.kafka.bootstrap,
                    workers=2)  # fmt: skip
    try:
        system.start()
        yield system
    finally:
        system.stop()


def owned_partitions(settings: Settings, group: str) -> dict[str, int]:
    """Partitions each member of the worker group holds, by its static member id."""
    admin = admin_client(settings)  # kept while the future runs: a collected client drops it
    described = admin.describe_consumer_groups([group])[group].result(10)
    return {m.group_instance_id: len(m.assignment.topic_partitions) for m in described.members}


def test_two_workers_share_the_partitions_and_survive_a_sigkill(
    system: System, kafka_settings: Settings
) -> None:
    assert sorted(system.procs) == ["gateway", "mllp", "projection", "sink", "worker", "worker-2"]
    reconciler = Reconciler(system)
    load = Load(system, "twow")
    try:
        load.start()
        load.wait_acks(20, timeout=90)
        owned: dict[str, int] = {}

        def both_own_some() -> bool:
            owned.clear()
            owned.update(owned_partitions(kafka_settings, system.app_id))
            return len(owned) == 2 and all(owned.values())

        wait_until(both_own_some, 60, lambda: f"the workers' partitions: {owned}", every=0.5)
        first = system.env["CARELOG_WORKER_INSTANCE_ID"]
        assert set(owned) == {first, f"{first}-2"}

        system.kill("worker-2")
        load.wait_acks(10)
        system.restart("worker-2")
        load.wait_acks(20, timeout=90)
        load.stop()
        report = reconciler.reconcile(load, timeout=120)
        print(f"partitions {owned}; worker-2 SIGKILLed and restarted; {report.line()}")
        assert report.acked >= 50
        assert system.procs["worker-2"].starts == 2
    finally:
        load.stop()
        reconciler.close()
