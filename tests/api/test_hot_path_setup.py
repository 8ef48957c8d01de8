"""What the gateway's hot path is spared: the JSON log lines skip the caller look-up they
never print, /hl7v2 is the first route the router tries, and the key store is made at start,
not in the first request."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import orjson
import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from api.app import create_app
from api.json_logs import BatchedLineHandler, configure
from streams.privacy import envelope
from streams.settings import Settings
from streams.settings.auth import AuthSettings


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads,
             logging.logProcesses, logging.logMultiprocessing)  # fmt: skip
    configure()
    out = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, BatchedLineHandler)
    handler.stream = out
    yield out
    handler.close()
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
    logging.getLogger().handlers[0].flush()
    line = orjson.loads(json_logs.getvalue().splitlines()[-1])
    assert (line["message"], line["route"], line["status"]) == ("request", "/hl7v2", 200)
    assert line["logger"] == "carelog.gateway.access" and line["level"] == "info"
    [record] = records
    assert record.funcName == "(unknown function)"  # no frame walk to find the caller
    assert record.threadName is None and record.processName is None


def test_hl7v2_is_the_first_route_tried() -> None:
    settings = Settings(environment="test", auth=AuthSettings(hs256_secret=SecretStr("s" * 40)))
    paths = [getattr(route, "path", None) for route in create_app(settings).routes]
    assert paths[0] == "/hl7v2"
    assert paths.count("/hl7v2") == 1


def test_the_key_store_is_made_at_start_not_by_the_first_request() -> None:
    settings = Settings(environment="test", auth=AuthSettings(hs256_secret=SecretStr("s" * 40)))
    envelope.install(None)  # none made yet in this process
    try:
        with TestClient(create_app(settings)):  # start-up (lifespan) only, no request
            deadline = time.monotonic() + 5
            while envelope._store is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert envelope._store is not None
    finally:
        envelope.install(None)


def test_lines_are_written_in_batches_warnings_at_once_in_order() -> None:
    out = io.StringIO()
    handler = BatchedLineHandler(out, interval=0.3)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("carelog.test.batched")
    logger.propagate, logger.level = False, logging.INFO
    logger.addHandler(handler)
    try:
        for n in range(3):
            logger.info("line %d", n)
        assert out.getvalue() == ""  # held for a batch, not a write per line
        logger.warning("trouble")  # written at once, after the lines before it
        assert out.getvalue().splitlines() == ["line 0", "line 1", "line 2", "trouble"]
        logger.info("later")
        deadline = time.monotonic() + 5
        while "later" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert out.getvalue().splitlines()[-1] == "later"  # within the interval, unasked
        logger.info("last")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert out.getvalue().splitlines()[-1] == "last"  # closing writes what is held
