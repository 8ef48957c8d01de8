"""On a failure, the tails of the carelog processes' logs go into the report."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.system.harness import RUNNING


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for system in RUNNING:
            report.sections.append((f"carelog process logs ({system.root})", system.explain()))
