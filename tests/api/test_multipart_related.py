"""The pure multipart/related parser: round trips and malformed bodies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.dicomweb.multipart_related import (
    MultipartError,
    Part,
    TooManyParts,
    parse_media_type,
    split_parts,
)

BOUNDARY = "b0undary-42"


def build(parts: list[Part], preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    out = preamble
    for part in parts:
        head = "".join(f"{k}: {v}\r\n" for k, v in part.headers.items()).encode()
        out += f"\r\n--{BOUNDARY}\r\n".encode() + head + b"\r\n" + part.content
    return out + f"\r\n--{BOUNDARY}--\r\n".encode() + epilogue


contents = st.binary(max_size=200).filter(lambda b: BOUNDARY.encode() not in b)


@given(
    items=st.lists(contents, min_size=1, max_size=5),
    preamble=st.sampled_from([b"", b"preamble text", b"x\r\ny"]),
)
def test_round_trip(items: list[bytes], preamble: bytes) -> None:
    parts = [Part({"content-type": "application/dicom"}, c) for c in items]
    assert split_parts(build(parts, preamble, b"epilogue"), BOUNDARY) == parts


def test_body_starting_with_the_boundary_and_parts_without_headers() -> None:
    body = f"--{BOUNDARY}\r\n\r\nfirst\r\n--{BOUNDARY}\r\nX-A: 1\r\n\r\n\r\n--{BOUNDARY}--".encode()
    assert split_parts(body, BOUNDARY) == [Part({}, b"first"), Part({"x-a": "1"}, b"")]


@pytest.mark.parametrize(
    "body",
    [
        b"no boundary at all",
        f"--{BOUNDARY}\r\nContent-Type: a\r\n\r\nnever closed".encode(),
        f"--{BOUNDARY}\r\nno blank line\r\n--{BOUNDARY}--".encode(),
        f"--{BOUNDARY}\r\nbad header\r\n\r\nx\r\n--{BOUNDARY}--".encode(),
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(MultipartError):
        split_parts(body, BOUNDARY)


def test_media_type_parameters() -> None:
    media = parse_media_type('Multipart/Related; type="application/dicom"; boundary="a;b\\"c"')
    assert media.type == "multipart/related"
    assert media.params == {"type": "application/dicom", "boundary": 'a;b"c'}
    assert parse_media_type("multipart/related;boundary=xyz").params == {"boundary": "xyz"}


def test_more_parts_than_max_parts_raise_too_many_parts() -> None:
    body = build([Part({}, bytes([i])) for i in range(4)])
    assert len(split_parts(body, BOUNDARY, max_parts=4)) == 4
    with pytest.raises(TooManyParts, match="more than 3 parts"):
        split_parts(body, BOUNDARY, max_parts=3)
