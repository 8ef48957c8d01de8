"""Splitting HL7 v2 bodies into messages (pure)."""

from __future__ import annotations

from api.hl7v2.batch import split_batch, wrap_acks

A = b"MSH|^~\\&|A|F|R|RF|20260101||ADT^A01|C1|P|2.5.1\rPID|1||M1\r"
B = b"MSH|^~\\&|A|F|R|RF|20260101||ADT^A08|C2|P|2.5.1\nPID|1||M2\n"


def test_single_message_is_kept_whole() -> None:
    body = b"\r\n" + A + b"\r\n"
    batch = split_batch(body)
    assert batch.messages == [body] and not batch.wrapped


def test_messages_keep_their_own_terminators() -> None:
    assert split_batch(A + B).messages == [A, B]


def test_envelope_is_dropped_and_remembered() -> None:
    body = b"BHS|^~\\&|S|SF|R|RF|20260101||||B9\r" + A + B + b"BTS|2\r"
    batch = split_batch(body)
    assert batch.messages == [A, B]
    assert batch.wrapped and batch.batch_control_id == "B9"
    reply = wrap_acks(batch, ["ACK1\r", "ACK2\r"])
    assert reply.startswith("BHS|^~\\&|R|RF|S|SF|") and reply.endswith("ACK1\rACK2\rBTS|2\r")
    assert reply.split("\r")[0].split("|")[11] == "B9"


def test_stray_segments_become_their_own_message() -> None:
    body = b"BHS|^~\\&|S\rPID|1||X\r" + A + b"BTS|1\r"
    assert split_batch(body).messages == [b"PID|1||X\r", A]
