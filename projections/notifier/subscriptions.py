"""A Subscription resource read into what the notifier needs: criteria, channel, payload.

R4 Subscriptions with the R4B/R5 topic-based backport IG's extensions on the channel:
heartbeat period (`backport-heartbeat-period`) and payload content (`backport-payload-content`
on channel.payload: empty, id-only or full-resource). Criteria are FHIR searches
(`Observation?code=...&patient=...`) run by the FHIR store's own search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
HEARTBEAT_EXT = BACKPORT + "backport-heartbeat-period"
CONTENT_EXT = BACKPORT + "backport-payload-content"
_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}")
# Search result parameters shape pages, not matches: they mean nothing in criteria.
_NOT_CRITERIA = {"_count", "_offset", "_sort", "_include", "_revinclude", "_summary",
                 "_elements", "_total", "_format", "_pretty", "_contained"}  # fmt: skip


class Content(StrEnum):
    empty = "empty"
    id_only = "id-only"
    full_resource = "full-resource"


class Channel(StrEnum):
    rest_hook = "rest-hook"
    websocket = "websocket"


NOT_SERVED = "not served"  # how the error of a Subscription that cannot be served begins


class InvalidSubscription(ValueError):
    """The Subscription cannot be served; the message says why (shown in $status)."""


@dataclass(frozen=True)
class Subscription:
    id: str
    resource_type: str  # of the resources its criteria select
    params: tuple[tuple[str, str], ...]
    channel: Channel
    endpoint: str | None  # rest-hook only
    headers: tuple[tuple[str, str], ...]
    content: Content
    heartbeat_seconds: int | None
    payload_type: str

    def criteria_params(self, resource_id: str) -> list[tuple[str, str]]:
        """The criteria as a search narrowed to one resource."""
        return [*self.params, ("_id", resource_id)]


def _ext(element: dict[str, Any] | None, url: str) -> Any:
    for ext in (element or {}).get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == url:
            for key, value in ext.items():
                if key.startswith("value"):
                    return value
    return None


def parse_criteria(criteria: object) -> tuple[str, tuple[tuple[str, str], ...]]:
    if not isinstance(criteria, str) or not criteria.strip():
        raise InvalidSubscription("criteria is missing: give a search such as Observation?code=x")
    rtype, _, query = criteria.strip().partition("?")
    if not _TYPE.fullmatch(rtype):
        raise InvalidSubscription(f"criteria {criteria[:100]!r} does not start with a type")
    params = tuple(parse_qsl(query, keep_blank_values=True))
    refused = sorted({name for name, _ in params if name.split(":")[0] in _NOT_CRITERIA})
    if refused:
        raise InvalidSubscription(f"criteria may not use {', '.join(refused)}")
    return rtype, params


def _headers(channel: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """channel.header entries ("Name: value"), sent as given with every rest-hook POST."""
    out = []
    for line in channel.get("header") or []:
        name, sep, value = str(line).partition(":")
        if not sep or not name.strip() or "\n" in line or "\r" in line:
            raise InvalidSubscription(f"channel.header {str(line)[:60]!r} is not 'Name: value'")
        out.append((name.strip(), value.strip()))
    return tuple(out)


def parse_subscription(resource: dict[str, Any]) -> Subscription:
    """The Subscription as served, or InvalidSubscription saying what is wrong."""
    rtype, params = parse_criteria(resource.get("criteria"))
    channel = resource.get("channel")
    if not isinstance(channel, dict):
        raise InvalidSubscription("channel is missing")
    try:
        kind = Channel(str(channel.get("type")))
    except ValueError:
        raise InvalidSubscription(
            f"channel.type {channel.get('type')!r} is not served (rest-hook, websocket)"
        ) from None
    endpoint = channel.get("endpoint")
    if kind is Channel.rest_hook:
        url = urlsplit(str(endpoint or ""))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise InvalidSubscription("a rest-hook channel.endpoint must be an http(s) URL")
    payload = channel.get("payload")
    stated = _ext(channel.get("_payload"), CONTENT_EXT)
    if stated is not None:
        try:
            content = Content(stated)
        except ValueError:
            raise InvalidSubscription(f"payload content {stated!r} is not known") from None
    else:  # R4: no payload, no body; a payload type without the extension, the resource
        content = Content.full_resource if payload else Content.empty
    heartbeat = _ext(channel, HEARTBEAT_EXT)
    if heartbeat is not None and (type(heartbeat) is not int or heartbeat < 1):
        raise InvalidSubscription("the heartbeat period must be a positive whole number")
    return Subscription(
        id=str(resource.get("id")),
        resource_type=rtype,
        params=params,
        channel=kind,
        endpoint=str(endpoint) if kind is Channel.rest_hook else None,
        headers=_headers(channel),
        content=content,
        heartbeat_seconds=heartbeat,
        payload_type=str(payload or "application/fhir+json"),
    )


def wants_notifications(resource: dict[str, Any]) -> bool:
    """Whether the Subscription asks to be served (requested, active or error: not off)."""
    return resource.get("status") in ("requested", "active", "error")
