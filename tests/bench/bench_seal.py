"""Micro-benchmark (not a test): the cost of sealing PHI in events (streams/privacy/envelope.py).

CPU time per event (best of 5 batches, median of 3 runs) of encode_event + decode_event with
encryption on (keys in memory, as the Kafka key store serves them once cached) against
key_store=off, for an HL7 v2 InboundMessage (ORU, 10 OBX) and a ResourceChanged (an
Observation); and the AES-256-GCM seal + open alone. The ratio on/off holds on a loaded host.

Run: .venv/bin/python -m tests.bench.bench_seal
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from processors.canonical import canonical_json
from schemas.events import Channel, Event, Format, InboundMessage, Operation, ResourceChanged
from streams.event_codec import decode_event, encode_event
from streams.privacy import envelope
from streams.privacy.aead import new_key, open_sealed, seal
from streams.privacy.keystore import MemoryKeyStore
from streams.settings import get_settings
from tests.bench.bench_hl7v2_translate import oru_10_obx

SAMPLES = 3
BATCH = 2000


def _events() -> dict[str, Event]:
    observation = {
        "resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
        "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 13.9, "unit": "g/dL"},
        "meta": {"versionId": "1", "lastUpdated": "2026-11-06T07:15:00Z"},
    }  # fmt: skip
    now = datetime.now(UTC)
    return {
        "InboundMessage (ORU, 10 OBX)": InboundMessage.received(
            oru_10_obx(),
            channel=Channel.mllp,
            format=Format.hl7v2,
            content_type="x-application/hl7-v2+er7",
            sender="lab",
        ),
        "ResourceChanged (Observation)": ResourceChanged(
            event_id="e1",
            resource_type="Observation",
            resource_id="o1",
            version=1,
            operation=Operation.upsert,
            content_hash="h",
            inbound_event_id="i",
            inbound_topic="t",
            inbound_partition=0,
            inbound_offset=0,
            recorded_at=now,
            mapping_version="m",
            resource=canonical_json(observation),
        ),
    }


def _best_us(work: Callable[[], object]) -> float:
    for _ in range(200):
        work()
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(BATCH):
            work()
        best = min(best, (time.process_time() - start) / BATCH * 1e6)
    return best


def _round_trip(event: Event) -> Callable[[], object]:
    return lambda: decode_event(encode_event(event))


def main() -> None:
    events = _events()
    cipher, payload = AESGCM(new_key()), oru_10_obx()
    aes = [_best_us(lambda: open_sealed(cipher, seal(cipher, payload, b"a"), b"a"))
           for _ in range(SAMPLES)]  # fmt: skip
    print(f"AES-256-GCM seal+open of {len(payload)} bytes: {statistics.median(aes):.1f} µs")
    for label, event in events.items():
        runs: dict[str, list[float]] = {"off": [], "on": []}
        for _ in range(SAMPLES):
            for mode in ("off", "on"):
                os.environ["CARELOG_KEY_STORE"] = mode if mode == "off" else "memory"
                get_settings.cache_clear()
                envelope.install(None if mode == "off" else MemoryKeyStore())
                runs[mode].append(_best_us(_round_trip(event)))
        off, on = statistics.median(runs["off"]), statistics.median(runs["on"])
        print(f"{label}: encode+decode {off:.1f} µs clear, {on:.1f} µs sealed "
              f"(+{on - off:.1f} µs, x{on / off:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
