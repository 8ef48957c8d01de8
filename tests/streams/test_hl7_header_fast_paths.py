"""read_msh and patient_identifier take shortcuts (first segment only, PID found by search);
they must agree with the plain reading over split_segments on any input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.hl7_header import HeaderError, MshHeader, patient_identifier, read_msh, split_segments
from streams.settings import PROJECT_ROOT

CORPUS = [p.read_bytes() for p in sorted((PROJECT_ROOT / "tests/corpus").glob("hl7v2*/*.hl7"))]
NOISE = st.sampled_from([b"\r", b"\n", b"\r\n", b"|", b"^", b"~", b"PID|", b"MSH|", b" ", b"x"])


def reference_pid(payload: bytes, header: MshHeader) -> str | None:
    sep = header.field_separator.encode("latin-1")
    comp = header.component_separator.encode("latin-1")
    rep = header.encoding_characters[1].encode("latin-1")
    for segment in split_segments(payload):
        if segment.startswith(b"PID" + sep):
            fields = segment.split(sep)
            if len(fields) <= 3 or not fields[3]:
                return None
            cx = fields[3].split(rep)[0].split(comp)
            authority = cx[3] if len(cx) > 3 else b""
            return (cx[0] + (b"^" + authority if authority else b"")).decode("latin-1")
    return None


@settings(max_examples=400)
@given(
    base=st.sampled_from(CORPUS),
    cut=st.integers(0, 5000),
    noise=st.lists(st.tuples(st.integers(0, 5000), NOISE), max_size=4),
)
def test_fast_paths_agree_with_split_segments(
    base: bytes, cut: int, noise: list[tuple[int, bytes]]
) -> None:
    data = base[: max(cut, 20)]
    for at, piece in noise:
        at %= len(data) + 1
        data = data[:at] + piece + data[at:]
    try:
        header = read_msh(data)
    except HeaderError:
        return
    start = data.lstrip(b"\x0b \t\r\n").removeprefix(b"\xef\xbb\xbf")
    first = split_segments(start)[0].decode("latin-1")
    assert first.split(header.field_separator)[9] == header.control_id
    assert patient_identifier(data, header) == reference_pid(data, header)
