"""The edge (gateway, MLLP: streams.keys over schemas.hl7v2) and the processor (the parser and
the Patient mapper) give one verdict on any MSH and PID: both accept or both refuse (naming
the same field), and the Kafka key is built from the identifier the Patient id derives from."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.hl7v2.context import MappingContext
from processors.hl7v2.errors import MappingError, ParseError
from processors.hl7v2.mappers.common import patient
from processors.hl7v2.parser import parse
from processors.ids import patient_id
from schemas.events import Format
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import read_er7
from schemas.hl7v2.patient import message_patient
from streams.keys import inbound_key
from streams.privacy.pseudonym import pseudonym

CTX = MappingContext(authorities={"AUTHX": "https://mrn.example/x"})
CODECS = {"": "utf-8", "8859/1": "latin-1", "UNICODE UTF-8": "utf-8", "ASCII": "ascii",
          "NOPE": "utf-8"}  # fmt: skip
SEPARATOR = st.sampled_from(["|", "^", "~", "\\", "&", "#", "!", "A", "1", " ", "é", "\t"])
# Values mixing plain text, HL7 nulls, escapes and the usual separators.
TEXT = st.lists(
    st.sampled_from(["A", "b", "7", " ", '""', "é", "\\F\\", "\\X41\\", "\\T\\", "AUTHX", "MR"]),
    max_size=4,
).map("".join)
HD_TYPE = st.sampled_from(["", "ISO", "UUID", "URI", "L", "iso"])


@st.composite
def cx(draw: st.DrawFn, comp: str, sub: str) -> str:
    authority = sub.join([draw(TEXT), draw(TEXT), draw(HD_TYPE)]) if sub else draw(TEXT)
    id_type = draw(st.sampled_from(["", "MR", "mr", "SS", "PI"]))
    return comp.join([draw(TEXT), "", "", authority, id_type])


@st.composite
def message(draw: st.DrawFn) -> bytes:
    fs = draw(SEPARATOR)
    chars = "".join(draw(st.lists(SEPARATOR, min_size=0, max_size=6)))
    standard = draw(st.booleans())
    if standard:
        fs, chars = "|", draw(st.sampled_from(["^~\\&", "^~\\&#", "^~", "^~\\"]))
    comp = chars[0] if chars else "^"
    rep = chars[1] if len(chars) > 1 else "~"
    sub = chars[3] if len(chars) > 3 else ""
    charset = draw(st.sampled_from(sorted(CODECS)))
    msh = ["MSH", chars, draw(TEXT), comp.join([draw(TEXT), draw(TEXT)]), "R", "R", "2026", "",
           draw(st.sampled_from(["ADT" + comp + "A01", "", " ", comp + "A01"])),
           draw(st.sampled_from(["C1", "", " "])), "P",
           draw(st.sampled_from(["2.5.1", "", comp + "x"])), "", "", "", "", "", charset]  # fmt: skip
    segments = [fs.join(msh)]
    if draw(st.booleans()):
        pid3 = rep.join(draw(st.lists(cx(comp, sub), max_size=3)))
        segments.append(fs.join(["PID", "1", "", pid3]))
    if draw(st.integers(0, 9)) == 0:
        segments.append(draw(st.sampled_from(["pid", "ZZ", "Z1X", "OBX"])) + fs + "x")
    text = draw(st.sampled_from(["\r", "\n", "\r\n"])).join(segments)
    return text.encode(CODECS[charset], "replace")


def edge(payload: bytes) -> tuple[str | None, str | None]:
    """(refused at, key) as the gateway and MLLP see the message."""
    try:
        read_er7(payload)
    except FormatError as exc:
        return exc.location, None
    return None, inbound_key(Format.hl7v2, payload, "sender")


@settings(max_examples=500, deadline=None)
@given(message())
def test_edge_and_processor_agree_on_any_msh_and_pid(payload: bytes) -> None:
    refused_at, key = edge(payload)
    try:
        msg = parse(payload)
    except ParseError as exc:
        assert refused_at == exc.location, (payload, refused_at, exc.location)
        return
    assert refused_at is None, (payload, refused_at)
    er7 = read_er7(payload)
    chosen = message_patient(er7)
    facility = er7.header.sending_facility or "sender"
    pid = msg.segment("PID")
    try:
        resource = patient(msg, pid, CTX) if pid is not None else None
    except MappingError as exc:
        assert exc.location.startswith("PID-3") and chosen is None, (payload, exc)
        assert key == facility
        return
    if resource is None:
        assert chosen is None and key == facility
        return
    assert chosen is not None
    assert key == f"{facility}|{pseudonym(chosen.key)}"
    assert resource["id"] == patient_id(chosen.system(CTX.authority_system), chosen.value)


def test_the_same_patient_from_one_sender_has_one_key_whatever_else_pid3_lists() -> None:
    msh = "MSH|^~\\&|APP|FAC|R|R|2026||ADT^A08|{}|P|2.5.1"
    first = f"{msh.format(1)}\rPID|1||999^^^SSA^SS~123^^^AUTHX^MR\r".encode()
    second = f"{msh.format(2)}\rPID|1||123^^^AUTHX^MR\r".encode()
    ids = {patient(parse(m), parse(m).segments("PID")[0], CTX)["id"] for m in (first, second)}
    keys = {inbound_key(Format.hl7v2, m, "s") for m in (first, second)}
    assert len(ids) == 1 and keys == {f"FAC|{pseudonym('123^AUTHX')}"}
