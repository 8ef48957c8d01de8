"""A tiny real Faust app for the worker test: InboundMessage in, ResourceChanged out.

Run as `python -m tests.streams.faust_echo_app worker`; topics come from the environment.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator

import orjson

from schemas.events import InboundMessage, Operation, ResourceChanged, utc_now
from streams.faust_app import CODEC_NAME, create_app

app = create_app(os.environ["CARELOG_TEST_APP_ID"], topic_partitions=1)
inbound = app.topic(os.environ["CARELOG_TEST_IN"], value_serializer=CODEC_NAME)
changes = app.topic(os.environ["CARELOG_TEST_OUT"], value_serializer=CODEC_NAME)


@app.agent(inbound)
async def to_binary(stream: AsyncIterator[InboundMessage]) -> None:
    async for event in stream:
        resource = {"resourceType": "Binary", "id": event.event_id,
                    "contentType": event.content_type,
                    "data": base64.b64encode(event.payload or b"").decode()}  # fmt: skip
        body = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode()
        await changes.send(
            key=f"Binary/{event.event_id}".encode(),
            value=ResourceChanged(
                event_id=event.event_id, resource_type="Binary", resource_id=event.event_id,
                version=1, operation=Operation.upsert, resource=body,
                content_hash=hashlib.sha256(body.encode()).hexdigest(),
                inbound_event_id=event.event_id, inbound_topic=os.environ["CARELOG_TEST_IN"],
                inbound_partition=0, inbound_offset=0, recorded_at=utc_now(),
                mapping_version="test-echo/1",
            ),
        )  # fmt: skip


if __name__ == "__main__":
    app.main()
