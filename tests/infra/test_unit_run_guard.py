"""A unit run (`make test-unit`) refuses the broker to a test that lacks `pytest.mark.kafka`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests import kafka_fixture
from tests.conftest import pytest_runtest_setup
from tests.kafka_fixture import UNIT_RUN_ENV, BrokerInUnitRun

NODE = "tests/x/test_y.py::test_needs_the_log"


def _item(*fixtures: str) -> Any:
    return SimpleNamespace(nodeid=NODE, fixturenames=list(fixtures))


def test_an_unmarked_test_reaching_the_broker_fails_naming_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(UNIT_RUN_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=r"test_y\.py::test_needs_the_log.*kafka"):
        pytest_runtest_setup(_item("tmp_path", "kafka_settings"))
    pytest_runtest_setup(_item("tmp_path"))  # no broker asked for: runs


def test_outside_a_unit_run_the_broker_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNIT_RUN_ENV, raising=False)
    pytest_runtest_setup(_item("kafka_settings"))


@pytest.mark.parametrize("start", [kafka_fixture.test_broker, kafka_fixture.private_broker])
def test_starting_a_broker_in_a_unit_run_raises_before_any_jvm(
    monkeypatch: pytest.MonkeyPatch, start: Any
) -> None:
    monkeypatch.setenv(UNIT_RUN_ENV, "1")
    monkeypatch.delenv("CARELOG_KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(BrokerInUnitRun, match="make test-unit"), start():
        pass
