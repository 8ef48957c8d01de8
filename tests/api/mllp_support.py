"""MLLP test support: a listener on its own event loop thread, an asyncio MLLP client, ACK
reading, and reading back from the log what a test appended."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from api.ingest import Ingestor
from api.mllp.framing import END, frame
from api.mllp.listener import MllpServer
from schemas.events import Event
from streams.event_codec import decode_event
from streams.kafka_config import client_config
from streams.producer import EventProducer
from streams.settings import PROJECT_ROOT, Settings
from tests.api.log_reader import high_watermarks

ORU = (
    (PROJECT_ROOT / "tests/corpus/hl7v2/oru_r01_cbc_v2.5.1.hl7").read_bytes().replace(b"\n", b"\r")
)


def hl7(control_id: str | None = None, patient: str = "MRN5520") -> tuple[str, bytes]:
    """The corpus ORU^R01 with a fresh MSH-10 (and the given PID-3 id): (control id, bytes)."""
    control_id = control_id or f"T{uuid.uuid4().hex[:18]}"
    payload = ORU.replace(b"NWH-LAB-7001", control_id.encode()).replace(
        b"MRN5520", patient.encode()
    )
    return control_id, payload


def enhanced(payload: bytes, accept: str, application: str = "") -> bytes:
    """`payload` (the corpus ORU) asking for enhanced acknowledgement: MSH-15 and MSH-16."""
    msh_end = b"|P|2.5.1\r"
    assert msh_end in payload
    return payload.replace(msh_end, f"|P|2.5.1|||{accept}|{application}\r".encode(), 1)


@dataclass(frozen=True)
class Ack:
    raw: bytes
    code: str  # MSA-1
    control_id: str  # MSA-2
    text: str  # MSA-3
    err: str  # the ERR segment, "" when absent


def parse_ack(raw: bytes) -> Ack:
    segments = {s[:3]: s for s in raw.decode("latin-1").split("\r") if s}
    msa = segments["MSA"].split("|")
    return Ack(raw, msa[1], msa[2], msa[3] if len(msa) > 3 else "", segments.get("ERR", ""))


class MllpClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, ssl_context: ssl.SSLContext | None = None) -> MllpClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ssl_context)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, payload: bytes) -> None:
        await self.send_raw(frame(payload))

    async def ack(self, timeout: float = 30.0) -> Ack:
        data = await asyncio.wait_for(self.reader.readuntil(END), timeout)
        assert data[:1] == b"\x0b", data[:20]
        return parse_ack(data[1:-2])

    async def call(self, payload: bytes) -> Ack:
        await self.send(payload)
        return await self.ack()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


@contextmanager
def running_listener(
    settings: Settings,
    ssl_context: ssl.SSLContext | None = None,
    **producer_overrides: Any,
) -> Iterator[MllpServer]:
    """An MllpServer on a free port, served by an event loop in a background thread."""
    producer = EventProducer(settings, **producer_overrides)
    loop = asyncio.new_event_loop()
    server = MllpServer(Ingestor(producer), settings, "127.0.0.1", 0, ssl_context)
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="mllp-listener", daemon=True)
    thread.start()
    assert started.wait(10), "the MLLP listener did not start"
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(timeout=10), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        producer.close(10)


class TopicReader:
    """Records appended to a topic after `mark()`, decoded."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(
            client_config(
                settings, **{"group.id": f"test-mllp-{uuid.uuid4()}", "enable.auto.commit": False}
            )
        )
        meta = self.consumer.list_topics(topic, timeout=10)
        self.partitions = sorted(meta.topics[topic].partitions)
        self.start = self._ends()

    def _ends(self) -> dict[int, int]:
        return high_watermarks(self.consumer, self.topic, self.partitions)

    def read(self) -> list[tuple[bytes | None, Event, int]]:
        """(key, event, partition) appended since this reader was made, in order per partition."""
        ends = self._ends()
        todo = {p: e for p, e in ends.items() if e > self.start[p]}
        if not todo:
            return []
        self.consumer.assign([TopicPartition(self.topic, p, self.start[p]) for p in todo])
        out: list[tuple[bytes | None, Event, int]] = []
        deadline = time.monotonic() + 30
        while todo and time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            out.append((msg.key(), decode_event(msg.value() or b""), msg.partition()))
            if msg.offset() + 1 >= todo.get(msg.partition(), 0):
                todo.pop(msg.partition(), None)
        self.consumer.unassign()
        return out

    def close(self) -> None:
        self.consumer.close()
