"""A real Faust worker process reads and writes carelog events through the codec."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from schemas.events import Channel, Format, InboundMessage, ResourceChanged
from streams.admin import apply_catalogue
from streams.consumer import EventConsumer
from streams.event_codec import decode_event, encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import Topic

pytestmark = pytest.mark.kafka


def test_faust_worker_translates_events_with_the_avro_codec(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    source, sink = f"test.faust.in.{run}", f"test.faust.out.{run}"
    apply_catalogue([Topic(t, "k", "event", 1, 1, 1, {}) for t in (source, sink)], kafka_settings)
    events = [
        InboundMessage.received(
            f"MSH|^~\\&|A|B|||2026||ADT^A01|{i}|P|2.5\r".encode(), channel=Channel.kafka,
            format=Format.hl7v2, content_type="x-application/hl7-v2+er7", sender="t",
        )
        for i in range(20)
    ]  # fmt: skip
    with EventProducer(kafka_settings) as producer:
        producer.send_many(Outgoing(source, "k", encode_event(e)) for e in events)

    env = {
        **os.environ,
        "CARELOG_TEST_APP_ID": f"carelog-test-{run}",
        "CARELOG_TEST_IN": source,
        "CARELOG_TEST_OUT": sink,
        "CARELOG_VAR_DIR": str(tmp_path),
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.streams.faust_echo_app", "worker", "--without-web", "-l", "warn"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        out: list[ResourceChanged] = []
        with EventConsumer(f"test-{run}", [sink], kafka_settings) as consumer:
            deadline = time.monotonic() + 90
            while len(out) < len(events) and worker.poll() is None and time.monotonic() < deadline:
                for batch in consumer.batches(idle_timeout=1):
                    for msg in batch:
                        change = decode_event(msg.value())
                        assert isinstance(change, ResourceChanged)
                        out.append(change)
    finally:
        worker.terminate()
        try:
            log = worker.communicate(timeout=30)[0].decode(errors="replace")
        except subprocess.TimeoutExpired:
            worker.kill()
            log = worker.communicate()[0].decode(errors="replace")
    assert len(out) == len(events), log[-3000:]
    assert [c.inbound_event_id for c in out] == [e.event_id for e in events]
    for change, event in zip(out, events, strict=True):
        assert change.resource is not None
        assert base64.b64decode(orjson.loads(change.resource)["data"]) == event.payload
