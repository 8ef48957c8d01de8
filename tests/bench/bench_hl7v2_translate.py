"""Micro-benchmark (not a test): per-stage cost of translating one ORU^R01 with 10 OBX.

Prints parse / map / validate costs per message (median of 3 runs of N messages each), the
messages per second of translate + validate, and hl7apy.parser.parse_message on the same
message. Validation options measured:

  full        processors.validation.resource_issues: the one validator the translate stage
              runs for every format (R4B `model_validate`, bindings, terminology, values)
  json        `model_validate_json` on orjson bytes (pydantic's Rust JSON path), model only
  model       `model_validate` on the dicts, model only
  construct   `model_construct` (NOT validation: builds models unchecked; a floor for reference)

Run: .venv/bin/python tests/bench/bench_hl7v2_translate.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from processors.hl7v2.context import MappingContext
from processors.hl7v2.mapping import map_parsed
from processors.hl7v2.parser import parse
from processors.validation import resource_issues, resource_model

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


def per_call_ms(fn: Callable[[], Any], n: int) -> float:
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - t) / n * 1e3)
    return statistics.median(runs)


def main() -> None:
    payload = oru_10_obx()
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
        "map (parsed -> 13 resources)": per_call_ms(lambda: map_parsed(msg, ctx), n),
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
