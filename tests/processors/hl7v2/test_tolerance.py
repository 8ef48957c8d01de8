"""Tolerance (processors/hl7v2/tolerance.py): a bad optional field costs only its element and
a warning naming it; a bad required field refuses the message with the reason.

The property tests corrupt one field of a valid corpus message and compare with the same
message as if the sender had left that field out (or the segment, for drop-segment rules);
the field is blanked here by plain string edits, independently of the module under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.hl7v2.errors import Hl7v2Error, MappingError, ParseError, StructureError
from processors.hl7v2.mapping import map_hl7v2
from processors.hl7v2.parser import parse
from processors.hl7v2.tolerance import POLICY, Action, dropped, rule_for

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
# Values no v2 parser accepts for the datatype; "" for a field whose absence is the fault.
BAD = {
    "DT": ["MI", "20261341", "2026-10-01", "UNK"],
    "DTM": ["MI", "20261341", "yesterday", "20261301"],
    "DR": ["MI^20260101", "20261341"],
    "ID": ["ZZ", "XQ"],
    "CWE": [""],
    "EIP": [""],
}


def _text(path: Path) -> str:
    return path.read_bytes().decode("latin-1").replace("\r\n", "\r").replace("\n", "\r")


def _lines(text: str) -> list[str]:
    return [line for line in text.strip("\r").split("\r") if line]


def _fields(line: str, name: str) -> list[str]:
    """The fields by number: [n] is SEG-n (MSH-1, the separator, counted as in the standard)."""
    parts = line.split("|")
    return ["MSH", "|", *parts[1:]] if name == "MSH" else parts


def _joined(fields: list[str], name: str) -> str:
    return "|".join(["MSH", *fields[2:]]) if name == "MSH" else "|".join(fields)


def _with_field(text: str, name: str, nth: int, number: int, value: str | None) -> str:
    """`text` with field `number` of the nth `name` segment set to value (None: no segment)."""
    lines, seen = _lines(text), 0
    for i, line in enumerate(lines):
        if not line.startswith(name + "|"):
            continue
        seen += 1
        if seen == nth:
            if value is None:
                del lines[i]
                return "\r".join(lines)
            fields = _fields(line, name)
            fields += [""] * (number + 1 - len(fields))
            fields[number] = value
            lines[i] = _joined(fields, name)
            return "\r".join(lines)
    raise AssertionError(f"no {name}[{nth}] in the message")


def _valid_corpus() -> list[tuple[str, str]]:
    found = []
    for path in sorted(CORPUS.glob("hl7v2*/*.hl7")):
        text = _text(path)
        try:
            result = map_hl7v2(text.encode("latin-1"))
        except Hl7v2Error:
            continue
        if not result.warnings and text[3] == "|":
            found.append((path.name, text))
    return found


VALID = _valid_corpus()


def _candidates(optional: bool) -> list[tuple[str, str, str, int, int]]:
    """(file, text, segment, nth, field) for every policy field sent in a valid message."""
    out = []
    for name, text in VALID:
        counts: dict[str, int] = {}
        for line in _lines(text):
            seg = line[:3]
            counts[seg] = counts.get(seg, 0) + 1
            for key, rule in POLICY.items():
                if key.split("-")[0] != seg or (rule.action is not Action.REQUIRED) != optional:
                    continue
                number = int(key.split("-")[1])
                fields = _fields(line, seg)
                if number < len(fields) and fields[number] and rule.datatype in BAD:
                    out.append((name, text, seg, counts[seg], number))
    return out


OPTIONAL = _candidates(optional=True)


def _resources(text: str) -> list[dict[str, Any]]:
    return map_hl7v2(text.encode("latin-1")).resources


def _meaning(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """What a message says: its resources and its business time."""
    result = map_hl7v2(text.encode("latin-1"))
    return result.resources, result.business_time


def test_the_corpus_gives_the_property_enough_to_corrupt() -> None:
    assert len(VALID) >= 100
    assert {c[2] for c in OPTIONAL} >= {"AL1", "PID", "ORC", "SPM", "RXA", "OBR", "OBX"}


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(OPTIONAL), st.data())
def test_a_bad_optional_field_is_dropped_with_a_warning(
    case: tuple[str, str, str, int, int], data: st.DataObject
) -> None:
    name, text, seg, nth, number = case
    rule = POLICY[f"{seg}-{number}"]
    bad = data.draw(st.sampled_from(BAD[rule.datatype]), label="bad value")
    corrupted = map_hl7v2(_with_field(text, seg, nth, number, bad).encode("latin-1"))
    dropped = _with_field(
        text, seg, nth, number, None if rule.action is Action.DROP_SEGMENT else ""
    )
    # Everything else is mapped exactly as if the sender had left the element out.
    assert (corrupted.resources, corrupted.business_time) == _meaning(dropped), name
    warned = [(w.location, w.severity) for w in corrupted.warnings]
    named = [(f"{seg}[{nth}]-{number}", "warning")]
    if _meaning(dropped) == _meaning(text):
        # The map ignores the field, or another field says the same (EVN-2 and MSH-7).
        assert warned in ([], named), name
    else:
        assert warned == named, name


REQUIRED = [
    ("PID", 3, ""),  # identity: the patient
    ("MSH", 9, "ZZZ^Z99"),  # message type
    ("MSH", 10, ""),  # message control id
]
RESULT_REQUIRED = [("OBX", 3, ""), ("OBX", 11, "ZZ"), ("OBR", 25, "ZZ")]  # ORU/OUL, per the IG


def _required_cases() -> list[tuple[str, str, str, int, str]]:
    out = []
    for name, text in VALID:
        segs = {line[:3] for line in _lines(text)}
        kinds = REQUIRED + (RESULT_REQUIRED if text.split("|")[8][:3] in ("ORU", "OUL") else [])
        out += [(name, text, s, f, v) for s, f, v in kinds if s in segs]
    return out


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(_required_cases()))
def test_a_bad_required_field_refuses_the_message_with_the_reason(
    case: tuple[str, str, str, int, str],
) -> None:
    name, text, seg, number, bad = case
    # The parser (the one HL7 v2 contract) refuses what the frame needs, e.g. MSH-10; the
    # mappers refuse the rest.
    with pytest.raises((MappingError, ParseError)) as info:
        map_hl7v2(_with_field(text, seg, 1, number, bad).encode("latin-1"))
    assert rule_for(info.value.location) is not None, name
    assert info.value.location.split("[")[0].split("-")[0] == seg, name
    assert info.value.location.rsplit("-", 1)[1] == str(number), name
    assert info.value.message


# The five cases of issue 13, each on a corpus message that carries the field.


def _first(seg: str, number: int, sent: str | None = None) -> tuple[str, int]:
    """A valid corpus message whose map reads seg-number (set to `sent` first, if given)."""
    for _name, text, *_ in [(n, t, None) for n, t in VALID]:
        for nth in range(1, 1 + sum(line.startswith(seg + "|") for line in _lines(text))):
            have = _with_field(text, seg, nth, number, sent) if sent else text
            if _resources(_with_field(have, seg, nth, number, "")) != _resources(have):
                return have, nth
    raise AssertionError(f"no corpus message maps {seg}-{number}")


@pytest.mark.parametrize(
    ("seg", "number", "sent", "bad", "element"),
    [
        ("AL1", 6, None, "MI", ("AllergyIntolerance", "onsetDateTime")),
        ("PID", 29, None, "not a date", ("Patient", "deceasedDateTime")),
        ("ORC", 1, None, "ZZ", ("ServiceRequest", "status")),
        ("RXA", 16, "20271231", "MI", ("Immunization", "expirationDate")),  # none in the corpus
    ],
)
def test_issue_cases_drop_the_element_and_warn(
    seg: str, number: int, sent: str | None, bad: str, element: tuple[str, str]
) -> None:
    text, nth = _first(seg, number, sent)
    result = map_hl7v2(_with_field(text, seg, nth, number, bad).encode("latin-1"))
    rtype, path = element
    before = {r["id"]: r for r in _resources(text) if r["resourceType"] == rtype}
    after = {r["id"]: r for r in result.resources if r["resourceType"] == rtype}
    assert before.keys() == after.keys()
    changed = [i for i in after if after[i] != before[i]]
    assert len(changed) == 1
    if path == "status":
        assert after[changed[0]]["status"] == "unknown" != before[changed[0]]["status"]
    else:
        assert path in before[changed[0]] and path not in after[changed[0]]
    others = [r for r in result.resources if r["resourceType"] != rtype]
    assert others == [r for r in _resources(text) if r["resourceType"] != rtype]
    assert [w.location for w in result.warnings] == [f"{seg}[{nth}]-{number}"]
    assert result.warnings[0].severity == "warning"


def test_an_empty_spm2_drops_the_specimen_and_keeps_its_observations() -> None:
    text, nth = _first("SPM", 2)
    before = _resources(text)
    result = map_hl7v2(_with_field(text, "SPM", nth, 2, "").encode("latin-1"))
    assert [w.location for w in result.warnings] == [f"SPM[{nth}]-2"]
    kinds = [r["resourceType"] for r in result.resources]
    assert kinds.count("Specimen") == [r["resourceType"] for r in before].count("Specimen") - 1
    assert kinds.count("Observation") == [r["resourceType"] for r in before].count("Observation")


# The edges of the policy itself.

MSH = "MSH|^~\\&|LAB|NWH|CARELOG|CARELOG|20261110090000-0500||{type}|C1|P|2.5.1"
PID = "PID|1||MRN1^^^NWH^MR||Doe^Jane||19700101|F"


def _er7(mtype: str, *segments: str) -> bytes:
    return "\r".join([MSH.format(type=mtype), *segments]).encode()


def test_a_segment_out_of_place_refuses_the_message_even_at_an_optional_field() -> None:
    with pytest.raises(StructureError) as info:  # reported at OBX-1, which is not required
        map_hl7v2(_er7("ORU^R01^ORU_R01", PID, "OBX|1|NM|718-7^Hb^LN||13|g/dL|||||F"))
    assert rule_for(info.value.location) is not None
    assert rule_for(info.value.location).action is not Action.REQUIRED  # type: ignore[union-attr]


def test_a_location_naming_no_field_refuses() -> None:
    assert rule_for("MRG") is None and rule_for("DTM") is None
    with pytest.raises(MappingError) as info:
        map_hl7v2(_er7("ADT^A40^ADT_A39", PID))
    assert info.value.location == "MRG"


def test_every_bad_optional_field_of_a_message_is_dropped_and_named() -> None:
    result = map_hl7v2(
        _er7(
            "ADT^A08^ADT_A01",
            "PID|1||MRN1^^^NWH^MR||Doe^Jane||1970XX01|F" + "|" * 21 + "not-a-time",
            "AL1|1|DA|PCN^Penicillin^L|SV|hives|MI",
            "AL1|2|DA|^^L|SV|hives",
        )
    )
    assert [w.location for w in result.warnings] == [
        "PID[1]-7",
        "PID[1]-29",
        "AL1[1]-6",
        "AL1[2]-3",
    ]
    kinds = [r["resourceType"] for r in result.resources]
    assert kinds.count("AllergyIntolerance") == 1


def test_an_element_drop_outside_the_tolerant_mapping_is_strict() -> None:
    msg = parse(_er7("ORU^R01^ORU_R01", PID, "SPM|1"))
    with pytest.raises(MappingError) as info:
        dropped(msg, "SPM-2", "SPM-2 (specimen id) is empty")
    assert info.value.location == "SPM-2"
