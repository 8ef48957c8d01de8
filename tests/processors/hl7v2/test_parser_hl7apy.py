"""The fast parser's tree equals hl7apy's, on every corpus message and on generated messages.

Where the two differ on purpose (each has a test below):
1. Escapes: hl7apy never decodes them; a leaf keeps the raw text, and `to_er7()` re-escapes
   any escape character not followed by one of H N F S T R E, so `\\X0A\\` comes back as
   `\\E\\X0A\\E\\` (a different text). carelog decodes escapes when a leaf value is read; the
   comparison is on raw text, decoding is tested against the v2.5.1 rules separately.
2. Whitespace: hl7apy strips each segment (trailing spaces of the last field are lost) and
   drops whitespace-only fields/components; carelog keeps the values exactly as sent.
3. Segment terminators: hl7apy splits on CR only (an LF-separated message is one segment);
   carelog tolerates LF and CRLF.
4. Segment names: hl7apy rejects an unknown non-Z name (InvalidName); carelog accepts any
   well-formed name (mappers ignore what they do not know).
5. Character set: hl7apy takes text; carelog decodes the bytes by MSH-18.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hl7apy.exceptions import InvalidName
from hl7apy.parser import parse_message, parse_segment
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.hl7v2.parser import parse

from .hl7apy_tree import carelog_leaves, hl7apy_leaves

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
MESSAGES = sorted((CORPUS / "hl7v2").glob("*.hl7")) + sorted((CORPUS / "hl7v2_extra").glob("*.hl7"))


@pytest.mark.parametrize("path", MESSAGES, ids=lambda p: p.name)
def test_corpus_tree_equals_hl7apy(path: Path) -> None:
    msg = parse(path.read_bytes())
    theirs = parse_message(msg.text, find_groups=False)
    assert [s.name for s in msg.segments()] == [s.name for s in theirs.children]
    assert carelog_leaves(msg) == hl7apy_leaves(theirs)


# --- generated messages --------------------------------------------------------------------

_ESCAPES = ["\\F\\", "\\S\\", "\\R\\", "\\E\\", "\\T\\", "\\X0A\\", "\\X41\\", "\\.br\\", "\\H\\", "\\N\\"]
_CHARS = st.sampled_from(list("abcXYZ0189 -.,:/()#@'é") + _ESCAPES)
leaf = st.lists(_CHARS, max_size=6).map(lambda xs: "".join(xs).rstrip())
component = st.lists(leaf, min_size=1, max_size=3).map("&".join)
repetition = st.lists(component, min_size=1, max_size=4).map("^".join)
field = st.lists(repetition, min_size=1, max_size=3).map("~".join)
z_name = st.sampled_from(["ZPI", "ZXY", "ZZ1", "ZAL"])
# Known segments whose fields hl7apy types by the 2.5 structure (CX, XPN, CWE, varies...).
known = st.sampled_from(["PID", "NK1", "OBX", "NTE", "PV1", "AL1", "DG1", "ORC"])


@st.composite
def segment(draw: st.DrawFn) -> str:
    name = draw(st.one_of(z_name, known))
    fields = draw(st.lists(field, max_size=12))
    return "|".join([name, *fields])


@st.composite
def message(draw: st.DrawFn) -> str:
    msh = "MSH|^~\\&|" + "|".join(draw(st.lists(field, min_size=0, max_size=4)))
    msh += "|" * (8 - msh.count("|") if msh.count("|") < 8 else 1) + "ADT^A01|CTRL1|P|2.5"
    return "\r".join([msh, *draw(st.lists(segment(), min_size=1, max_size=6))])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message())
def test_generated_tree_equals_hl7apy(text: str) -> None:
    msg = parse(text.encode("utf-8"))
    theirs = parse_message(text, find_groups=False)
    assert [s.name for s in msg.segments()] == [s.name for s in theirs.children]
    assert carelog_leaves(msg) == hl7apy_leaves(theirs)


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
    seg = parse_segment("ZXY|a|  |b  ")
    assert seg.to_er7() == "ZXY|a||b"
    ours = parse(text.encode()).segment("ZXY")
    assert ours is not None
    assert [ours.field(i).raw for i in (1, 2, 3)] == ["a", "  ", "b  "]


def test_difference_lf_segments() -> None:
    text = HEADER + "\nPID|1||X1\n"
    assert [s.name for s in parse(text.encode()).segments()] == ["MSH", "PID"]
    assert [s.name for s in parse_message(text, find_groups=False).children] == ["MSH"]


def test_difference_unknown_segment_name() -> None:
    with pytest.raises(InvalidName):
        parse_segment("QQQ|1")
    assert parse((HEADER + "\rQQQ|1").encode()).segments("QQQ")[0].field(1).value == "1"
