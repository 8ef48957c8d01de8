"""Gateway test fixtures: apps built on the session's real broker, tokens, and a log reader
that finds what a request appended by its correlation id (the request's X-Request-ID)."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

with warnings.catch_warnings():  # starlette prefers httpx2 now; httpx still serves the tests
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from api.app import create_app
from api.security.dev_token import mint_token
from schemas.events import Event, Format
from streams.producer import EventProducer
from streams.settings import Settings
from streams.topics import AUDIT, REJECTED, inbound_topic
from tests.api.log_reader import LogReader

SECRET = "test-secret-" + "x" * 40
PATIENT_JSON = b'{"resourceType": "Patient", "id": "p-1"}'
ALL_SCOPES = "system/*.write system/hl7v2.write system/device.write"


@pytest.fixture(scope="session")
def gateway_settings(kafka_settings: Settings) -> Settings:
    return kafka_settings.amended(
        auth={"hs256_secret": SecretStr(SECRET)},
        gateway={
            "rate_limit_per_second": 10_000.0,
            "rate_limit_burst": 10_000,
            "delivery_timeout_ms": 5000,
        },
    )


@pytest.fixture(scope="session")
def gateway_producer(gateway_settings: Settings) -> Iterator[EventProducer]:
    producer = EventProducer(gateway_settings, **{"message.timeout.ms": 5000})
    yield producer
    producer.close()


@pytest.fixture(scope="session")
def make_client(
    gateway_settings: Settings, gateway_producer: EventProducer
) -> Iterator[Callable[..., TestClient]]:
    """A TestClient of a gateway app with settings overridden by keyword."""
    opened: list[TestClient] = []

    def make(share_producer: bool = True, **overrides: Any) -> TestClient:
        settings = gateway_settings.amended(**overrides)
        app = create_app(settings, producer=gateway_producer if share_producer else None)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def token(scopes: str = ALL_SCOPES, subject: str = "test-sender", **kwargs: Any) -> str:
    return mint_token(SECRET, scopes, subject, **kwargs)


def auth(scopes: str = ALL_SCOPES, **headers: str) -> dict[str, str]:
    """Headers with a bearer token and a fresh X-Request-ID (the events' correlation id)."""
    return {
        "Authorization": f"Bearer {token(scopes)}",
        "X-Request-ID": f"test-{uuid.uuid4()}",
        **headers,
    }


@pytest.fixture(scope="session")
def log_reader(kafka_settings: Settings) -> Iterator[LogReader]:
    reader = LogReader(kafka_settings)
    yield reader
    reader.close()


@pytest.fixture
def appended(log_reader: LogReader) -> Callable[..., list[tuple[bytes | None, Event]]]:
    """appended(format, "rejected" or "audit", request_id) -> [(key, event)] written since the
    test began."""
    named = {"rejected": REJECTED, "audit": AUDIT}
    topics = [inbound_topic(f) for f in Format] + list(named.values())
    marks = {t: log_reader.marks(t) for t in topics}

    def find(where: Format | str, request_id: str) -> list[tuple[bytes | None, Event]]:
        topic = named.get(where) or inbound_topic(where)
        return log_reader.find(topic, marks[topic], request_id)

    return find
