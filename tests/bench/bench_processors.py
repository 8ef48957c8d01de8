"""`make bench` for the processors: ORU^R01 with 10 OBX through translate -> validate ->
version, per stage in process, then end to end through a real worker and the broker.

Goal: 1,000 ORU^R01 (10 OBX) per second per worker core onto carelog.fhir.changes.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from processors.pipeline import Record, translate_record, version_record
from processors.translators import translate_event
from processors.versioning import VersionState
from schemas.events import Channel, Format, InboundMessage, ResourceChanged
from streams.event_codec import decode_event, encode_event
from streams.producer import EventProducer, Outgoing
from streams.topics import FHIR_CHANGES, inbound_topic
from tests.bench.common import RUNS, bench_settings, show
from tests.processors.worker_harness import Worker, read_all

N_STAGES = 1000
N_E2E = 3000


def obr(i: int) -> str:
    fields = [""] * 26
    fields[0:5] = ["OBR", "1", f"ORD{i}^NWH_CPOE", f"LAB{i}^NWH_LAB", "58410-2^CBC panel^LN"]
    fields[7] = "20261106060000-0500"  # OBR-7 observation time
    fields[22] = "20261106071000-0500"  # OBR-22 results reported
    fields[25] = "F"  # OBR-25 result status
    return "|".join(fields)


def oru_r01(i: int, patient: int | None = None) -> bytes:
    """An ORU^R01 with 10 OBX (1.5-2 KB) with order numbers i, for patient i unless `patient`
    is given (a patient's later results)."""
    obx = [
        f"OBX|{n}|NM|{code}^{name}^LN||{value}|{unit}^{unit}^UCUM|{ref}|N|||F|||20261106071000-0500"
        for n, (code, name, value, unit, ref) in enumerate(
            [("6690-2", "Leukocytes", "7.1", "10*3/uL", "3.4-10.8"),
             ("789-8", "Erythrocytes", "4.9", "10*6/uL", "4.14-5.80"),
             ("718-7", "Hemoglobin", "14.2", "g/dL", "13.0-17.7"),
             ("4544-3", "Hematocrit", "42.1", "%", "37.5-51.0"),
             ("787-2", "MCV", "88", "fL", "79-97"),
             ("785-6", "MCH", "29.5", "pg", "26.6-33.0"),
             ("786-4", "MCHC", "33.6", "g/dL", "31.5-35.7"),
             ("788-0", "RDW", "13.1", "%", "11.6-15.4"),
             ("777-3", "Platelets", "245", "10*3/uL", "150-450"),
             ("32623-1", "MPV", "10.2", "fL", "9.4-12.3")], start=1)
    ]  # fmt: skip
    lines = [
        f"MSH|^~\\&|SUNQUEST|NWH_LAB|CARELOG|CARELOG|20261106071500-0500||ORU^R01^ORU_R01|B{i}|P|2.5.1",
        f"PID|1||MRN{i if patient is None else patient}^^^NWH^MR||Haddad^Omar^Y||19880217|M",
        obr(i),
        *obx,
    ]
    return ("\r".join(lines) + "\r").encode()


def inbound(i: int, patient: int | None = None) -> InboundMessage:
    return InboundMessage.received(
        oru_r01(i, patient), channel=Channel.mllp, format=Format.hl7v2,
        content_type="x-application/hl7-v2+er7", sender="bench",
    )  # fmt: skip


def stage_costs() -> None:
    events = [inbound(i) for i in range(N_STAGES)]
    records = [
        Record("carelog.inbound.hl7v2", 0, i, b"k", encode_event(e)) for i, e in enumerate(events)
    ]

    def per_message(fn) -> float:  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        for _item in fn():
            pass
        return (time.perf_counter() - start) / N_STAGES * 1000

    decode_ms = per_message(lambda: (decode_event(r.value) for r in records))
    translate_ms = per_message(lambda: (translate_event(e, e.payload or b"") for e in events))
    whole_ms = per_message(lambda: (translate_record(r) for r in records))
    outputs = [o for r in records for o in translate_record(r)]
    out_records = [
        Record("carelog.fhir.translated", 0, i, o.key, o.value) for i, o in enumerate(outputs)
    ]
    start = time.perf_counter()
    states: dict[bytes | None, VersionState | None] = {}
    for r in out_records:
        _, states[r.key] = version_record(r, states.get(r.key))
    version_ms = (time.perf_counter() - start) / N_STAGES * 1000
    print(f"per ORU^R01 (10 OBX, {len(outputs) / N_STAGES:.0f} resources): decode {decode_ms:.3f} ms, "
          f"translate+validate {translate_ms:.3f} ms, whole translate stage {whole_ms:.3f} ms, "
          f"versioning stage {version_ms:.3f} ms -> {1000 / (whole_ms + version_ms):,.0f} messages/s "
          "per core in process")  # fmt: skip


def end_to_end() -> None:
    with bench_settings() as settings:
        os.environ["CARELOG_KAFKA_BOOTSTRAP"] = settings.kafka.bootstrap
        rates = []
        for run in range(RUNS):
            tag = f"{run}-{time.time_ns()}"
            events = [inbound(hash((tag, i)) & 0xFFFFFFF) for i in range(N_E2E)]
            with EventProducer(settings) as producer:
                producer.send_many(
                    Outgoing(inbound_topic(Format.hl7v2), f"NWH|{i}", encode_event(e))
                    for i, e in enumerate(events)
                )
            wanted = {e.event_id for e in events}
            worker = Worker(Path(tempfile.mkdtemp(prefix="bench-worker-")))
            start = time.perf_counter()
            worker.start()
            done = 0
            while done < len(wanted):
                time.sleep(1)
                done = len({e.inbound_event_id for _, e in read_all(settings, FHIR_CHANGES)
                            if isinstance(e, ResourceChanged) and e.inbound_event_id in wanted})  # fmt: skip
            elapsed = time.perf_counter() - start
            worker.stop()
            rates.append(N_E2E / elapsed)
        show(
            "ORU^R01 (10 OBX) inbound -> fhir.changes, 1 worker, incl. start",
            statistics.median(rates),
            rates,
            "msg/s",
        )


def main() -> None:
    stage_costs()
    end_to_end()


if __name__ == "__main__":
    main()
