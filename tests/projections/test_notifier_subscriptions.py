"""Subscriptions read from their resources, and the backport IG's bundles (no broker)."""

from __future__ import annotations

import orjson
import pytest

from projections.notifier.bundles import notification, status_bundle
from projections.notifier.state import Event, SubscriptionRow
from projections.notifier.subscriptions import (
    Channel,
    Content,
    InvalidSubscription,
    parse_subscription,
)
from tests.projections.notifier_support import subscription

ROW = SubscriptionRow("s1", "{}", "active", None, matched=7, delivered=5, failures=0)
EVENTS = [Event(6, "2024-01-01T00:00:01.000Z", "Observation", "o1", 1, '{"id": "o1"}'),
          Event(7, "2024-01-01T00:00:02.000Z", "Observation", "o1", 2, '{"id": "o1", "v": 2}')]  # fmt: skip


def test_a_rest_hook_subscription_is_read_with_its_extensions() -> None:
    sub = parse_subscription(subscription(
        "s1", "Observation?code=http://loinc.org|1234-5&patient=Patient/p1",
        endpoint="https://hooks.example.org/in", content="id-only", heartbeat=60,
        headers=["Authorization: Bearer x:y"]))  # fmt: skip
    assert sub.resource_type == "Observation"
    assert sub.params == (("code", "http://loinc.org|1234-5"), ("patient", "Patient/p1"))
    assert sub.criteria_params("o9")[-1] == ("_id", "o9")
    assert (sub.channel, sub.content, sub.heartbeat_seconds) == (
        Channel.rest_hook,
        Content.id_only,
        60,
    )
    assert sub.headers == (("Authorization", "Bearer x:y"),)


def test_payload_content_defaults_as_r4_says() -> None:
    bare = subscription("s", "Patient?name=x", endpoint="http://h.test/", content=None)
    assert parse_subscription(bare).content is Content.empty
    typed = {**bare, "channel": {**bare["channel"], "payload": "application/fhir+json"}}
    assert parse_subscription(typed).content is Content.full_resource


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"criteria": "?code=x"}, "does not start with a type"),
        ({"criteria": "Observation?code=x&_count=5"}, "_count"),
        ({"criteria": None}, "criteria is missing"),
        ({"channel": {"type": "rest-hook", "endpoint": "ftp://h/x"}}, "http(s)"),
        ({"channel": {"type": "rest-hook", "endpoint": "file:///etc/passwd"}}, "http(s)"),
        ({"channel": {"type": "email", "endpoint": "mailto:a@b"}}, "not served"),
        ({"channel": {"type": "websocket", "header": ["no colon"]}}, "Name: value"),
    ],
)
def test_what_cannot_be_served_says_why(change: dict[str, object], message: str) -> None:
    resource = {**subscription("s", "Observation?code=x", endpoint="http://h.test/"), **change}
    with pytest.raises(InvalidSubscription, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_subscription(resource)


def test_a_full_resource_notification_is_a_history_bundle_status_first() -> None:
    bundle = orjson.loads(notification(ROW, "http://b/fhir", EVENTS, Content.full_resource,
                                       "event-notification"))  # fmt: skip
    assert bundle["type"] == "history"
    status, *entries = bundle["entry"]
    params = status["resource"]["parameter"]
    by_name = {p["name"]: p for p in params}
    assert by_name["events-since-subscription-start"]["valueString"] == "7"
    assert by_name["events-in-notification"]["valueInteger"] == 2
    events = [p["part"] for p in params if p["name"] == "notification-event"]
    assert [e[0]["valueString"] for e in events] == ["6", "7"]
    assert events[1][2]["valueReference"]["reference"] == "http://b/fhir/Observation/o1/_history/2"
    assert [e["resource"] for e in entries] == [{"id": "o1"}, {"id": "o1", "v": 2}]
    assert [e["response"]["status"] for e in entries] == ["201", "200"]


def test_empty_and_id_only_carry_no_resource() -> None:
    empty = orjson.loads(notification(ROW, "b", EVENTS, Content.empty, "event-notification"))
    assert len(empty["entry"]) == 1
    parts = [p["part"] for p in empty["entry"][0]["resource"]["parameter"]
             if p["name"] == "notification-event"]  # fmt: skip
    assert all(len(part) == 2 for part in parts)  # event-number and timestamp, no focus
    ids = orjson.loads(notification(ROW, "b", EVENTS, Content.id_only, "event-notification"))
    assert [set(e) for e in ids["entry"][1:]] == [{"fullUrl", "request", "response"}] * 2


def test_status_answers_a_searchset_with_the_query_status() -> None:
    failing = SubscriptionRow("s2", "{}", "error", "h answered 503", 3, 1, 4)
    bundle = status_bundle(failing, "b")
    assert bundle["type"] == "searchset" and bundle["total"] == 1
    params = {p["name"]: p for p in bundle["entry"][0]["resource"]["parameter"]}
    assert params["type"]["valueCode"] == "query-status"
    assert params["status"]["valueCode"] == "error"
    assert params["error"]["valueCodeableConcept"]["text"] == "h answered 503"
