"""The pure MLLP frame decoder: properties over arbitrary byte streams and chunkings."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from api.mllp.framing import Broken, Decoded, Fault, Frame, FrameDecoder, frame

# Bytes that make framing interesting turn up often; the rest is arbitrary.
framing_bytes = st.lists(
    st.one_of(st.sampled_from([0x0B, 0x1C, 0x0D, 0x0A, 0x20]), st.integers(0, 255)), max_size=300
).map(bytes)
payloads = st.binary(max_size=120).map(lambda b: bytes(c for c in b if c not in (0x0B, 0x1C)))


def decode_all(chunks: list[bytes], max_bytes: int = 64, keep: int = 16) -> list[Decoded]:
    decoder = FrameDecoder(max_bytes, keep_bytes=keep)
    out: list[Decoded] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.close())
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@settings(max_examples=500)
@given(data=framing_bytes, cuts=st.lists(st.integers(0, 10_000), max_size=40))
def test_any_split_of_a_stream_decodes_the_same(data: bytes, cuts: list[int]) -> None:
    assert decode_all(split(data, cuts)) == decode_all([data])


@given(data=framing_bytes)
def test_byte_by_byte_equals_all_at_once(data: bytes) -> None:
    assert decode_all([bytes([b]) for b in data]) == decode_all([data])


@given(messages=st.lists(payloads, max_size=12), cuts=st.lists(st.integers(0, 10_000), max_size=30))
def test_well_framed_messages_come_back_exactly(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(m) for m in messages)
    assert decode_all(split(stream, cuts), max_bytes=1000) == [Frame(m) for m in messages]


@given(data=framing_bytes)
def test_nothing_decoded_is_over_the_limit(data: bytes) -> None:
    for item in decode_all([data], max_bytes=20, keep=8):
        if isinstance(item, Frame):
            assert len(item.payload) <= 20
        else:
            assert len(item.head) <= 8 and item.size >= len(item.head)


def test_oversize_frame_is_reported_with_its_head_and_the_stream_goes_on() -> None:
    big = b"MSH|" + b"x" * 200
    out = decode_all([frame(big), frame(b"MSH|ok")], max_bytes=64, keep=16)
    assert out == [Broken(Fault.too_large, big[:16], len(big)), Frame(b"MSH|ok")]


def test_frame_without_start_block() -> None:
    out = decode_all([b"MSH|no-vt\x1c\r", frame(b"MSH|ok")])
    assert out == [Broken(Fault.missing_start, b"MSH|no-vt", 9), Frame(b"MSH|ok")]


def test_stray_bytes_before_a_frame_are_reported_but_whitespace_is_not() -> None:
    assert decode_all([b"\r\n" + frame(b"A") + b"\n" + frame(b"B")]) == [Frame(b"A"), Frame(b"B")]
    assert decode_all([b"junk" + frame(b"A")]) == [
        Broken(Fault.outside_frame, b"junk", 4),
        Frame(b"A"),
    ]


def test_new_start_block_inside_a_frame_and_truncated_end() -> None:
    out = decode_all([b"\x0bMSH|first\x0bMSH|second\x1c\r\x0bMSH|cut"])
    assert out == [
        Broken(Fault.interrupted, b"MSH|first", 9),
        Frame(b"MSH|second"),
        Broken(Fault.truncated, b"MSH|cut", 7),
    ]


def test_end_block_without_cr_still_ends_the_frame() -> None:
    assert decode_all([b"\x0bA\x1c\x0bB\x1c\r"]) == [Frame(b"A"), Frame(b"B")]


def test_open_and_overflowing_follow_the_run_in_progress() -> None:
    decoder = FrameDecoder(64, keep_bytes=16)
    decoder.feed(b"\r\n")  # whitespace between frames opens nothing
    assert not decoder.open
    decoder.feed(b"\x0bMSH|")
    assert decoder.open and not decoder.overflowing
    decoder.feed(b"x" * 100)  # no end block within the limit
    assert decoder.overflowing
    assert decoder.abandon(Fault.too_large) == Broken(Fault.too_large, b"MSH|" + b"x" * 12, 104)
    assert not decoder.open and not decoder.overflowing
    assert decoder.feed(frame(b"MSH|ok")) == [Frame(b"MSH|ok")]
    decoder.feed(b"junk")  # stray bytes are a run in progress too
    assert decoder.open
