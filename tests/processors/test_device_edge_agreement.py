"""The gateway (POST /devices/readings) and the processor give one verdict on any device batch:
what the edge answers 202 the translate stage turns into valid resources, and what it refuses
the processor refuses too, naming the same fields. (The validator's own rules for these
resources, units, LOINC check digits and plausible values, are the contract's as well.)"""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from api.devices.routes import validate_batch
from api.errors import GatewayError
from processors.device_readings import translate_device
from processors.translation import TranslationError
from processors.validation import validated
from tests.conftest import CORPUS

BATCH: dict[str, Any] = orjson.loads(
    (CORPUS / "device" / "bedside_monitor_batch.json").read_bytes()
)
READING_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "code": st.sampled_from(["8867-4", "8867-5", "2339-0", "150456", "x", "", " ", None, 7]),
    "system": st.sampled_from(["http://loinc.org", "urn:iso:std:iso:11073:10101", "http://x"]),
    "display": st.sampled_from(["Heart rate", "", " ", "bad\x01", None, 3]),
    "value": st.sampled_from([0, 72, 72.5, -5, 601, 1e308, True, "72", None]),
    "unit": st.sampled_from(["/min", "bpm", "%", "°C", "Cel", "furlongs", "mg/dL", "a b", ""]),
    "time": st.sampled_from(["2026-11-03T14:00:00-05:00", "2026-11-03T14:00:00", "x", 1, None]),
}
OTHER_VALUES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("device", "id"): st.sampled_from(["MON-1", "", " ", "a\x00b", "x" * 129, None]),
    ("device", "type"): st.sampled_from(["monitor", "", "t\x02", None, 5]),
    ("patient", "system"): st.sampled_from(["urn:oid:1.2", "has space", "", None]),
    ("patient", "value"): st.sampled_from(["MRN7731", "", " ", "v\x1f", None]),
    ("patient", "assigner"): st.sampled_from(["NWH", "", None, "SSA"]),
}


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    batch = copy.deepcopy(BATCH)
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):
            index = draw(st.integers(0, len(batch["readings"]) - 1))
            key = draw(st.sampled_from(sorted(READING_VALUES)))
            batch["readings"][index][key] = draw(READING_VALUES[key])
        else:
            part, key = draw(st.sampled_from(sorted(OTHER_VALUES)))
            batch[part][key] = draw(OTHER_VALUES[(part, key)])
    return orjson.dumps(batch)


def edge(body: bytes) -> set[str] | None:
    try:
        validate_batch(body)
    except GatewayError as exc:
        assert exc.status in (400, 422)
        return {i.location or "" for i in exc.issues}
    return None


def processor(body: bytes) -> set[str] | None:
    try:
        validated(translate_device(body, "event"))
    except TranslationError as exc:
        return {i.location or "" for i in exc.issues}
    return None


@settings(max_examples=400, deadline=None)
@given(batches())
def test_edge_and_processor_agree_on_any_batch(body: bytes) -> None:
    assert edge(body) == processor(body), body


def test_the_batches_on_which_the_edge_and_the_processor_used_to_disagree() -> None:
    """202 at the gateway, then a Rejected downstream: an unknown UCUM unit, a wrong LOINC
    check digit, an impossible heart rate. And the reverse: a temperature in °C (a unit
    alias the processor took) refused by the gateway's own unit pattern."""
    for index, key, value, refused in (
        (0, "unit", "furlongs", True),
        (0, "code", "8867-5", True),
        (0, "value", -5, True),
        (4, "unit", "°C", False),
    ):
        batch = copy.deepcopy(BATCH)
        batch["readings"][index][key] = value
        body = orjson.dumps(batch)
        expected = {f"readings[{index}].{key}"} if refused else None
        assert edge(body) == processor(body) == expected, (key, value)
