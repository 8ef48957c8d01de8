"""Appending what senders send: accepted messages to their inbound topic, refused ones to
carelog.rejected with the reason. Both return only once the broker has confirmed."""

from __future__ import annotations

from concurrent.futures import Future

from schemas.events import InboundMessage, Rejected, new_event_id, utc_now
from schemas.outcome import Issue, outcome_json, summary
from streams.event_codec import encode_event
from streams.producer import Delivered, EventProducer, OnDelivery, Outgoing
from streams.topics import REJECTED, inbound_topic


class Ingestor:
    def __init__(self, producer: EventProducer) -> None:
        self.producer = producer

    def submit(
        self, event: InboundMessage, key: str, owner: str | None = None
    ) -> Future[Delivered]:
        """Append an InboundMessage: the future resolves once the broker confirmed (or fails
        with DeliveryFailed). `owner`: as for `produce`."""
        return self.producer.submit(_outgoing(event, key, owner))

    def produce(
        self, event: InboundMessage, key: str, then: OnDelivery, owner: str | None = None
    ) -> None:
        """Append an InboundMessage on the hot path: `then` gets where the broker put it (or
        DeliveryFailed) on the delivery thread; pair it with api.loop_bridge.LoopBridge.relay.
        `owner`: the patient it is about, when it is about one only (it is then sealed with
        that patient's key if the patient has one: streams.privacy.envelope.seal_record)."""
        self.producer.produce(_outgoing(event, key, owner), then)

    async def reject(
        self,
        original: bytes,
        issues: list[Issue],
        *,
        format: str | None,
        content_type: str | None,
        sender: str | None,
        correlation_id: str | None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Delivered:
        """Keep refused input on carelog.rejected with its reasons (stage: gateway)."""
        event = Rejected(
            event_id=new_event_id(),
            rejected_at=utc_now(),
            stage="gateway",
            reason=summary(*issues),
            operation_outcome=outcome_json(*issues),
            original=original,
            format=format,
            content_type=content_type,
            sender=sender,
            correlation_id=correlation_id,
            original_key=key.encode() if key else None,
            headers=headers or {},
        )
        out = Outgoing(REJECTED, key, encode_event(event))
        return await self.producer.send_async(out.topic, out.value, out.key)


def _outgoing(event: InboundMessage, key: str, owner: str | None) -> Outgoing:
    return Outgoing(
        inbound_topic(event.format), key, encode_event(event, owner=owner),
        headers=[("correlation-id", event.correlation_id or "")],
    )  # fmt: skip
