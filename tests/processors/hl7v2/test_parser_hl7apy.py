"""The fast parser's tree equals hl7apy's, on every corpus message and on generated messages.

Where the two differ on purpose (each has a test below):
1. Escapes: hl7apy never decodes them; a leaf keeps the raw text, and `to_er7()` re-escapes
   any escape character not followed by one of H N F S T R E, so `\\X0A\\` comes back as
   `\\E\\X0A\\E\\` (a different text). carelog decodes escapes when a leaf value is read; the
   comparison is on raw text, decoding is tested against the v2.5.1 rules separately.
2. Whitespace: hl7apy strips each segment (trailing spaces of the last field are lost) and
   drops whitespace-only fields/components; carelog keeps the values exactly as sent.
3. Segment terminators: hl7apy splits on CR only (an LF-separated message is one segment,
   and fails as MSH-12 then reads "2.5\\nPID...");
   carelog tolerates LF and CRLF.
4. Segment names: hl7apy rejects an unknown non-Z name (InvalidName); carelog accepts any
   well-formed name (mappers ignore what they do not know).
5. Character set: hl7apy takes text; carelog decodes the bytes by MSH-18.
6. Positions past the structure: in a known (non-Z) segment hl7apy cannot name a field past
   the standard's last field, nor a component/subcomponent past its data type's last one; it
   keeps them unnamed, so after a dropped blank sibling their position is lost. carelog keeps
   every position as sent (test_difference_positions_past_structure).
7. Numbers: hl7apy converts SI leaves to int (" 8" -> 8); carelog keeps the text as sent.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from hl7apy.exceptions import InvalidName, UnsupportedVersion
from hl7apy.parser import parse_message, parse_segment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.hl7v2.parser import ParsedMessage, parse

from .hl7apy_tree import carelog_leaves, hl7apy_leaves

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
MESSAGES = sorted((CORPUS / "hl7v2").glob("*.hl7")) + sorted((CORPUS / "hl7v2_extra").glob("*.hl7"))


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.name)
def test_corpus_tree_equals_hl7apy(path: Path) -> None:
    msg = parse(path.read_bytes())
    theirs = parse_message(msg.text, find_groups=False)
    _assert_same_tree(msg, theirs)


def _assert_same_tree(msg: ParsedMessage, theirs: Any) -> None:
    assert [s.name for s in msg.segments()] == [s.name for s in theirs.children]
    assert _numbers_normalised(carelog_leaves(msg)) == _numbers_normalised(hl7apy_leaves(theirs))


def _numbers_normalised(leaves: dict[Any, str]) -> dict[Any, str]:
    """hl7apy rewrites values of numeric types (SI, NM) in canonical form: "00" -> "0",
    ".9" -> "0.9" (difference 7). Compare numbers by value, everything else as text."""
    out = {}
    for key, value in leaves.items():
        try:
            out[key] = str(Decimal(value).normalize()) if value.strip() else value
        except InvalidOperation:
            out[key] = value
    return out


# --- generated messages --------------------------------------------------------------------

_ESCAPES = [f"\\{e}\\" for e in ("F", "S", "R", "E", "T", "X0A", "X41", ".br", "H", "N")]
_CHARS = st.sampled_from(list("abcXYZ0189 -.,:/()#@'é") + _ESCAPES)
# Leaves are stripped: hl7apy strips each segment (difference 2) and turns SI leaves into
# ints, so " 8" in AL1-1 comes back as "8" (difference 7).
leaf = st.lists(_CHARS, max_size=6).map(lambda xs: "".join(xs).strip())


def field(max_components: int, max_subcomponents: int) -> st.SearchStrategy[str]:
    component = st.lists(leaf, min_size=1, max_size=max_subcomponents).map("&".join)
    repetition = st.lists(component, min_size=1, max_size=max_components).map("^".join)
    return st.lists(repetition, min_size=1, max_size=3).map("~".join)


# Z-segments: every field is ST to hl7apy, so any shape keeps its positions.
z_segment = st.tuples(
    st.sampled_from(["ZPI", "ZXY", "ZZ1", "ZAL"]), st.lists(field(5, 4), max_size=12)
)
# Known segments: hl7apy types their fields by the 2.5 structure (CX, XPN, CWE, varies...).
# hl7apy loses the position of a field past the structure's last field, and of a component
# or subcomponent past its data type's last one when a blank one precedes it (they become
# unnamed): difference 6. So these stay inside the structure: at most 2 components and
# subcomponents (every composite type has at least 2) and the segment's field count.
_FIELD_COUNT = {"PID": 12, "NK1": 12, "OBX": 12, "NTE": 4, "PV1": 12, "AL1": 6, "DG1": 12}
# Field 1 of each of these is a set ID (SI, numeric): hl7apy normalises it ("00" -> "0",
# " 8" -> "8"; difference 7), so it is drawn as a plain number or left empty.
set_id = st.one_of(st.just(""), st.integers(min_value=1, max_value=999).map(str))
known_segment = st.sampled_from(sorted(_FIELD_COUNT)).flatmap(
    lambda name: st.tuples(
        st.just(name),
        st.tuples(set_id, st.lists(field(2, 2), max_size=_FIELD_COUNT[name] - 1)).map(
            lambda parts: [parts[0], *parts[1]]
        ),
    )
)


@st.composite
def message(draw: st.DrawFn) -> str:
    msh3_to_8 = draw(st.lists(field(2, 2), min_size=6, max_size=6))
    msh = "|".join(["MSH", "^~\\&", *msh3_to_8, "ADT^A01", "CTRL1", "P", "2.5"])
    segments = draw(st.lists(st.one_of(z_segment, known_segment), min_size=1, max_size=6))
    return "\r".join([msh, *("|".join([name, *fields]) for name, fields in segments)])


# 150 examples a run (300 took 28 s of the suite's 15-minute budget on 2 cores): hypothesis
# draws anew each run, so the runs together cover far more.
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message())
def test_generated_tree_equals_hl7apy(text: str) -> None:
    msg = parse(text.encode("utf-8"))
    theirs = parse_message(text, find_groups=False)
    _assert_same_tree(msg, theirs)


# --- the differences, pinned ---------------------------------------------------------------

HEADER = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5"


def test_difference_escapes_hl7apy_keeps_raw_and_re_escapes_hex() -> None:
    text = HEADER + "\rNTE|1||line1\\X0A\\line2\\F\\x"
    seg = parse_message(text, find_groups=False).children[1]
    assert seg.nte_3.to_er7() == "line1\\E\\X0A\\E\\line2\\F\\x"  # hl7apy changed the text
    ours = parse(text.encode()).segment("NTE")
    assert ours is not None
    assert ours.field(3).raw == "line1\\X0A\\line2\\F\\x"
    assert ours.field(3).value == "line1\nline2|x"


def test_difference_whitespace_kept_as_sent() -> None:
    text = HEADER + "\rZXY|a|  |b  "
    seg = parse_message(text, find_groups=False).children[1]
    assert seg.to_er7() == "ZXY|a||b"  # blank field dropped, segment stripped
    ours = parse(text.encode()).segment("ZXY")
    assert ours is not None
    assert [ours.field(i).raw for i in (1, 2, 3)] == ["a", "  ", "b  "]


def test_difference_lf_segments() -> None:
    text = HEADER + "\nPID|1||X1\n"
    assert [s.name for s in parse(text.encode()).segments()] == ["MSH", "PID"]
    with pytest.raises(UnsupportedVersion):  # the LF is read as part of MSH-12 ("2.5\nPID")
        parse_message(text, find_groups=False)


def test_difference_unknown_segment_name() -> None:
    with pytest.raises(InvalidName):
        parse_segment("QQQ|1")
    assert parse((HEADER + "\rQQQ|1").encode()).segments("QQQ")[0].field(1).value == "1"


def test_difference_positions_past_structure() -> None:
    text = HEADER + "\rAL1|1|DA|X^Y|||20260101|extra7|extra8"
    seg = parse_message(text, find_groups=False).children[1]
    assert [f.name for f in seg.children][-2:] == [None, None]  # positions 7 and 8 lost
    ours = parse(text.encode()).segment("AL1")
    assert ours is not None
    assert (ours.field(7).value, ours.field(8).value) == ("extra7", "extra8")
