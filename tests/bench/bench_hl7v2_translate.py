"""Micro-benchmark (not a test): the worker's in-process path for one ORU^R01 with 10 OBX.

The headline figure, "translate + validate + version per core", is what the worker's two
agents compute per ORU without Kafka (processors/pipeline.py): decode the InboundMessage,
parse, map, validate, build its 14 ResourceTranslated events (canonical JSON, Avro encode),
then for each: decode, version (processors/versioning.next_change: content hash, meta,
canonical body, lineage), encode the ResourceChanged, and the table state's JSON. Every
resource is new to the versioning stage (no previous state): the full cost of each change.
It prints the per-stage split beside it (stages timed alone; their sum is close to the whole),
then the validation options:

  full        processors.validation.resource_issues: the one validator the translate stage
              runs for every format (R4B `model_validate`, bindings, terminology, values)
  json        `model_validate_json` on orjson bytes (pydantic's Rust JSON path), model only
  model       `model_validate` on the dicts, model only
  construct   `model_construct` (NOT validation: builds models unchecked; a floor for reference)

Wall-clock figures are medians of 3 runs. `--before <checkout>` also measures the whole path's
CPU time per ORU in another checkout and this one, alternating fresh processes (a ratio that
holds on a loaded machine; e.g. `git worktree add --detach ../base main`).

Run: .venv/bin/python -m tests.bench.bench_hl7v2_translate [--before /path/to/checkout]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from processors.hl7v2.adapter import translate_hl7v2
from processors.hl7v2.context import MappingContext
from processors.hl7v2.mapping import map_parsed
from processors.hl7v2.parser import parse
from processors.payloads import read_payload
from processors.pipeline import Record, translate_record, version_record
from processors.validation import resource_issues, resource_model, validated
from processors.version_store import state_header
from processors.versioning import next_change
from schemas.events import Channel, Format, InboundMessage, ResourceTranslated
from streams.event_codec import decode_event, encode_event
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, inbound_topic
from tests.bench.common import keys_in_this_process

GOAL_PER_SECOND = 1000

OBX = [
    (
        "6690-2",
        "Leukocytes [#/volume] in Blood by Automated count",
        "11.8",
        "10*3/uL",
        "3.4-10.8",
        "H",
    ),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "13.9", "g/dL", "13.0-17.7", "N"),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "245", "10*3/uL", "150-450", "N"),
    (
        "789-8",
        "Erythrocytes [#/volume] in Blood by Automated count",
        "4.61",
        "10*6/uL",
        "4.14-5.80",
        "N",
    ),
    (
        "4544-3",
        "Hematocrit [Volume Fraction] of Blood by Automated count",
        "41.2",
        "%",
        "37.5-51.0",
        "N",
    ),
    ("787-2", "MCV [Entitic volume] by Automated count", "89", "fL", "79-97", "N"),
    ("785-6", "MCH [Entitic mass] by Automated count", "30.2", "pg", "26.6-33.0", "N"),
    ("786-4", "MCHC [Mass/volume] by Automated count", "33.7", "g/dL", "31.5-35.7", "N"),
    (
        "788-0",
        "Erythrocyte distribution width [Ratio] by Automated count",
        "13.1",
        "%",
        "11.6-15.4",
        "N",
    ),
    ("770-8", "Neutrophils/100 leukocytes in Blood by Automated count", "78", "%", "40-74", "H"),
]


def oru_10_obx() -> bytes:
    segments = [
        "MSH|^~\\&|SUNQUEST|NWH_LAB|CARELOG|CARELOG|20261106071500-0500||ORU^R01^ORU_R01|NWH-LAB-7001|P|2.5.1",
        "PID|1||MRN5520^^^NWH^MR||Haddad^Omar^Y||19880217|M|||9 Pine Ct^^Madison^WI^53711^USA",
        "OBR|1|ORD-90001^NWH_CPOE|LAB-60001^NWH_LAB|58410-2^CBC panel - Blood by Automated count^LN"
        "|||20261106060000-0500|||||||||||||||20261106071000-0500|||F",
    ]
    for n, (code, name, value, unit, rng, flag) in enumerate(OBX, 1):
        segments.append(f"OBX|{n}|NM|{code}^{name}^LN||{value}|{unit}^{unit}^UCUM|{rng}|{flag}|||F")
    return ("\r".join(segments) + "\r").encode()


def inbound_record(payload: bytes) -> Record:
    """The ORU as the translate agent reads it: an Avro InboundMessage on its inbound topic."""
    event = InboundMessage.received(
        payload,
        channel=Channel.mllp,
        format=Format.hl7v2,
        content_type="x-application/hl7-v2+er7",
        sender="bench",
    )
    return Record(inbound_topic(Format.hl7v2), 0, 1, b"bench", encode_event(event))


def translate_and_version(record: Record) -> int:
    """What the worker's agents compute for one inbound record, in process: the translate
    stage, then the versioning stage of each resource (new: no previous state) and its table
    state as JSON. Returns the number of ResourceChanged events."""
    changes = 0
    for offset, out in enumerate(translate_record(record)):
        assert out.topic == FHIR_TRANSLATED, out.topic
        items, state = version_record(Record(out.topic, 0, offset, out.key, out.value), None)
        assert state is not None and all(i.topic == FHIR_CHANGES for i in items)
        state_header(state)  # the state the change record carries
        changes += len(items)
    return changes


def whole_path_cpu_ms(batches: int = 5, n: int = 200) -> float:
    """CPU time of `translate_and_version` per ORU, best of `batches` batches of `n`."""
    record = inbound_record(oru_10_obx())
    for _ in range(n):
        translate_and_version(record)
    best = float("inf")
    for _ in range(batches):
        start = time.process_time()
        for _ in range(n):
            translate_and_version(record)
        best = min(best, (time.process_time() - start) / n * 1e3)
    return best


# Runs in the checkout measured (its processors/, schemas/), with this file's functions.
_PROGRAM = r"""
import importlib.util, sys
sys.path.insert(0, ".")
spec = importlib.util.spec_from_file_location("_bench", {path!r})
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)
print(bench.whole_path_cpu_ms())
"""


def cpu_ms_in(checkout: Path) -> float:
    program = _PROGRAM.format(path=str(Path(__file__).resolve()))
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=checkout, capture_output=True, text=True, check=True
    )
    return float(done.stdout)


def compare(before: Path) -> None:
    runs: dict[str, list[float]] = {"before": [], "after": []}
    here = Path(__file__).resolve().parents[2]
    for _ in range(3):
        runs["before"].append(cpu_ms_in(before.resolve()))
        runs["after"].append(cpu_ms_in(here))
    b, a = statistics.median(runs["before"]), statistics.median(runs["after"])
    print("translate + validate + version, CPU per ORU (median of 3 processes, alternating)")
    print(f"  before ({before})  {b:8.3f} ms  {1e3 / b:6.0f}/s")
    print(f"  after  (this checkout)  {a:8.3f} ms  {1e3 / a:6.0f}/s   ratio {a / b:.2f}")


def per_call_ms(fn: Callable[[], Any], n: int) -> float:
    runs = []
    for _ in range(3):
        t = time.process_time()
        for _ in range(n):
            fn()
        runs.append((time.process_time() - t) / n * 1e3)
    return statistics.median(runs)


def whole_path(payload: bytes) -> None:
    record = inbound_record(payload)
    inbound = decode_event(record.value)
    assert isinstance(inbound, InboundMessage)
    translation = translate_hl7v2(payload, inbound.event_id)
    outs = translate_record(record)
    translated = [Record(o.topic, 0, i, o.key, o.value) for i, o in enumerate(outs)]
    events = [decode_event(r.value) for r in translated]
    assert all(isinstance(e, ResourceTranslated) for e in events)
    changes = [next_change(e, None) for e in events]  # type: ignore[arg-type]
    changed = [c for c, _ in changes if c is not None]
    states = [s for _, s in changes if s is not None]
    assert translate_and_version(record) == len(changed) == len(events)

    n = 300
    whole = per_call_ms(lambda: translate_and_version(record), n)
    translate = per_call_ms(lambda: translate_record(record), n)
    stages = {
        "decode InboundMessage + read payload": per_call_ms(
            lambda: read_payload(decode_event(record.value)),  # type: ignore[arg-type]
            3000,
        ),
        "parse + map (translate_hl7v2)": per_call_ms(
            lambda: translate_hl7v2(payload, inbound.event_id), n
        ),
        "validate (processors.validation.validated)": per_call_ms(
            lambda: validated(translation), n
        ),
    }
    stages["ResourceTranslated events (translate_record less the above)"] = translate - sum(
        stages.values()
    )
    stages[f"decode {len(events)} ResourceTranslated"] = per_call_ms(
        lambda: [decode_event(r.value) for r in translated], n
    )
    stages[f"next_change x{len(events)} (hash, meta, canonical body)"] = per_call_ms(
        lambda: [next_change(e, None) for e in events],  # type: ignore[arg-type]
        n,
    )
    stages[f"encode {len(changed)} ResourceChanged"] = per_call_ms(
        lambda: [encode_event(c) for c in changed], n
    )
    stages["change header (state)"] = per_call_ms(lambda: [state_header(s) for s in states], n)
    print(
        f"ORU^R01 with {len(OBX)} OBX -> {len(events)} ResourceTranslated -> {len(changed)} ResourceChanged"
    )
    print(f"  translate + validate + version per core     {whole:8.3f} ms  {1e3 / whole:6.0f}/s")
    for name, ms in stages.items():
        print(f"    {name:<60} {ms:8.3f} ms")
    print(f"    {'(sum of the stages)':<60} {sum(stages.values()):8.3f} ms")
    verdict = "met" if 1e3 / whole >= GOAL_PER_SECOND else "NOT met"
    print(f"  goal >= {GOAL_PER_SECOND}/s per core: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout of carelog to compare")
    args = parser.parse_args()
    keys_in_this_process()
    payload = oru_10_obx()
    whole_path(payload)
    if args.before:
        compare(args.before)
    ctx = MappingContext()
    msg = parse(payload)
    resources = map_parsed(msg, ctx).resources
    assert not [i for r in resources for i in resource_issues(r)]
    classes = [resource_model(r["resourceType"]) for r in resources]
    blobs = [orjson.dumps(r) for r in resources]
    text = payload.decode()

    from hl7apy.parser import parse_message

    def validate_full() -> None:
        for r in resources:
            resource_issues(r)

    def validate_json() -> None:
        for cls, b in zip(classes, blobs, strict=True):
            cls.model_validate_json(b)  # type: ignore[union-attr]

    def validate_model() -> None:
        for cls, r in zip(classes, resources, strict=True):
            cls.model_validate(r)  # type: ignore[union-attr]

    def construct() -> None:
        for cls, r in zip(classes, resources, strict=True):
            cls.model_construct(**r)  # type: ignore[union-attr]

    def end_to_end() -> None:
        m = parse(payload)
        for r in map_parsed(m, ctx).resources:
            resource_issues(r)

    n = 300
    stages = {
        "parse (carelog)": per_call_ms(lambda: parse(payload), 3000),
        "parse + touch every leaf": per_call_ms(
            lambda: [
                s.field(i).value for s in parse(payload).segments() for i in range(1, len(s) + 1)
            ],
            1000,
        ),
        "map (parsed -> 14 resources)": per_call_ms(lambda: map_parsed(msg, ctx), n),
        "validate: full (the one validator)": per_call_ms(validate_full, n),
        "validate: model_validate_json only": per_call_ms(validate_json, n),
        "validate: model_validate only": per_call_ms(validate_model, n),
        "model_construct (NOT validation)": per_call_ms(construct, n),
        "translate + full validate, end to end": per_call_ms(end_to_end, n),
        "hl7apy parse_message(find_groups=False)": per_call_ms(
            lambda: parse_message(text, find_groups=False), 20
        ),
    }
    print(f"ORU^R01 with {len(OBX)} OBX: {len(payload)} bytes, {len(resources)} resources")
    for name, ms in stages.items():
        print(f"  {name:<45} {ms:8.3f} ms")
    e2e = stages["translate + full validate, end to end"]
    print(f"  messages/s (translate + full validate)        {1e3 / e2e:8.0f}")
    print(f"  goal <= 1 ms per message: {'met' if e2e <= 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
