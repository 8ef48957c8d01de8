from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.native_build import stale, stale_message
from streams.admin import apply_catalogue
from streams.privacy import envelope
from streams.privacy.pseudonym import forget_secret
from streams.settings import PROJECT_ROOT, Settings, get_settings
from tests.environ import environ
from tests.kafka_fixture import TEST_VAR, UNIT_RUN_ENV, refuse_broker_in_unit_run, test_broker
from tests.processors.worker_harness import SHARED_WORKER, SharedWorker

# Unit tests seal events with keys held in the process; with the broker up (kafka_settings)
# keys go to carelog.keys, shared with the processes the tests start.
os.environ.setdefault("CARELOG_KEY_STORE", "memory")

# A copy of the shared sample corpus (tests/corpus/README.md says what each file exercises),
# kept in the repository because CI clones the project alone.
CORPUS = PROJECT_ROOT / "tests" / "corpus"


def pytest_configure(config: pytest.Config) -> None:
    if found := stale():  # the tests would run the code the extensions were built from
        pytest.exit(stale_message(found), returncode=4)
    # `-m "not kafka"` is a unit run whichever way it was typed (`make test-unit` sets the env).
    if config.option.markexpr.replace(" ", "") == "notkafka":
        os.environ[UNIT_RUN_ENV] = "1"


def _shares_the_worker(item: pytest.Item | None) -> bool:
    return item is not None and "shared_worker" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests sharing the session's worker run one after the other, where the first of
    them stood (each module's tests stay in their order): the worker starts once for all."""
    sharing = [item for item in items if _shares_the_worker(item)]
    if sharing:
        at = items.index(sharing[0])
        rest = [item for item in items if not _shares_the_worker(item)]
        items[:] = rest[:at] + sharing + rest[at:]


@pytest.hookimpl(trylast=True)  # after the fixtures' own teardown
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the shared worker after the last test sharing it: the next tests may start or
    kill workers of the same group, and expect none other."""
    if _shares_the_worker(item) and not _shares_the_worker(nextitem):
        SHARED_WORKER.stop()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A unit run refuses, naming the test, any test that reaches the broker fixture unmarked."""
    if "kafka_settings" in getattr(item, "fixturenames", ()):
        try:
            refuse_broker_in_unit_run(item.nodeid)
        except RuntimeError as refused:
            pytest.fail(str(refused), pytrace=False)


@pytest.fixture(scope="session")
def kafka_settings() -> Iterator[Settings]:
    """Settings pointing at the session's real broker, with the topic catalogue applied.

    Also exported as CARELOG_KAFKA_BOOTSTRAP so that subprocesses (carelog, Faust workers)
    use the same broker.
    """
    with test_broker() as bootstrap:
        values = {
            "CARELOG_KAFKA_BOOTSTRAP": bootstrap,
            "CARELOG_VAR_DIR": str(TEST_VAR),
            "CARELOG_ENVIRONMENT": "test",
            # Test modules start and kill workers of one group in turn: a member that was
            # killed holds its partitions until its session expires, and the next worker
            # waits that long.
            "CARELOG_WORKER_SESSION_TIMEOUT_SECONDS": "10",
            "CARELOG_KEY_STORE": "kafka",
            # One master key for the session's processes (each worker has a var dir of its own).
            "CARELOG_MASTER_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        }
        with environ(values):
            settings = get_settings()
            apply_catalogue(settings=settings)
            envelope.install(None)  # the next event sealed or opened uses carelog.keys
            forget_secret()
            try:
                yield settings
            finally:
                forget_secret()
                envelope.close()  # before the broker stops: its consumers would retry it


@pytest.fixture(scope="session")
def shared_worker(kafka_settings: Settings) -> Iterator[SharedWorker]:
    """The session's shared `carelog worker` (tests/processors/worker_harness.SharedWorker);
    a module-scoped fixture takes the process with `.running(...)`."""
    yield SHARED_WORKER
    SHARED_WORKER.stop()


@pytest.fixture(scope="session")
def corpus() -> Path:
    return CORPUS
