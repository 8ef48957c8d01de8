"""What the gateway's hot path is spared: the JSON log lines skip the caller look-up they
never print, and /hl7v2 is the first route the router tries."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
from pydantic import SecretStr

from api.app import create_app
from api.json_logs import configure
from streams.settings import Settings


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads,
             logging.logProcesses, logging.logMultiprocessing)  # fmt: skip
    configure()
    out = io.StringIO()
    root.handlers[0].setStream(out)  # type: ignore[attr-defined]
    yield out
    (root.handlers[:], level, logging._srcfile, logging.logThreads, logging.logProcesses,
     logging.logMultiprocessing) = saved  # fmt: skip
    root.setLevel(level)


def test_log_lines_keep_their_fields_without_a_caller_look_up(json_logs: io.StringIO) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        logging.getLogger("carelog.gateway.access").info(
            "request", extra={"route": "/hl7v2", "status": 200}
        )
    finally:
        logging.getLogger().removeHandler(keep)
    line = orjson.loads(json_logs.getvalue().splitlines()[-1])
    assert (line["message"], line["route"], line["status"]) == ("request", "/hl7v2", 200)
    assert line["logger"] == "carelog.gateway.access" and line["level"] == "info"
    [record] = records
    assert record.funcName == "(unknown function)"  # no frame walk to find the caller
    assert record.threadName is None and record.processName is None


def test_hl7v2_is_the_first_route_tried() -> None:
    settings = Settings(auth_hs256_secret=SecretStr("s" * 40), environment="test")
    paths = [getattr(route, "path", None) for route in create_app(settings).routes]
    assert paths[0] == "/hl7v2"
    assert paths.count("/hl7v2") == 1
