"""HL7 v2 batches: splitting a body into its messages (exact bytes) and wrapping the ACKs.

A body is one message, several MSH messages back to back, or a batch wrapped in FHS/BHS ...
BTS/FTS. Splitting works on the bytes and keeps each message's own segment terminators, so
what is stored is byte for byte what the sender sent for that message.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

_SEGMENT = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n|$)")
_ENVELOPE_HEAD = (b"FHS", b"BHS")
_ENVELOPE_TAIL = (b"BTS", b"FTS")


@dataclass(slots=True)
class Hl7Batch:
    messages: list[bytes] = field(default_factory=list)
    fhs: bytes | None = None  # the request's FHS segment, when it had one
    bhs: bytes | None = None  # the request's BHS segment, when it had one

    @property
    def wrapped(self) -> bool:
        return self.fhs is not None or self.bhs is not None

    @property
    def batch_control_id(self) -> str:
        """BHS-11 (else FHS-11): the sender's id of the batch, '' when none."""
        return _field(self.bhs or self.fhs or b"", 11)


def split_batch(body: bytes) -> Hl7Batch:
    start = body.lstrip(b"\xef\xbb\xbf\x0b \t\r\n")
    if not start.startswith(_ENVELOPE_HEAD) and start.count(b"MSH") <= 1:
        return Hl7Batch([body])  # the common case: one message, kept whole as received
    batch = Hl7Batch()
    current: list[bytes] | None = None
    for match in _SEGMENT.finditer(body):
        segment = match.group()
        if not segment:
            break
        name = segment.lstrip(b"\xef\xbb\xbf\x0b \t")[:3]
        if name in _ENVELOPE_HEAD or name in _ENVELOPE_TAIL:
            if name == b"FHS":
                batch.fhs = segment.rstrip(b"\r\n")
            elif name == b"BHS":
                batch.bhs = segment.rstrip(b"\r\n")
            current = None
        elif name == b"MSH" or (current is None and segment.strip()):
            # A stray segment outside any message becomes its own (it will fail the MSH check).
            current = [segment]
            batch.messages.append(b"")
        elif current is not None:
            current.append(segment)
        if current is not None and batch.messages:
            batch.messages[-1] = b"".join(current)
    return batch


def wrap_acks(batch: Hl7Batch, acks: list[str]) -> str:
    """The ACKs of a batch: plain when the request was plain, else in BHS/BTS (and FHS/FTS)."""
    if not batch.wrapped:
        return "".join(acks)
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    out: list[str] = []
    if batch.fhs is not None:
        out.append(_envelope_header("FHS", batch.fhs, now))
    out.append(_envelope_header("BHS", batch.bhs or batch.fhs or b"", now))
    out.append("".join(acks))
    out.append(f"BTS|{len(acks)}\r")
    if batch.fhs is not None:
        out.append("FTS|1\r")
    return "".join(out)


def _field(segment: bytes, n: int) -> str:
    """Field n of an FHS/BHS segment (n >= 3; -1 and -2 are the separators)."""
    text = segment.decode("latin-1")
    if len(text) < 4:
        return ""
    fields = text.split(text[3])
    return fields[n - 1] if len(fields) > n - 1 else ""


def _envelope_header(name: str, request_segment: bytes, now: str) -> str:
    """A reply FHS/BHS: sender and receiver swapped, -12 referring to the request's -11."""
    fields = [
        name, "^~\\&", _field(request_segment, 5) or "CARELOG", _field(request_segment, 6),
        _field(request_segment, 3), _field(request_segment, 4), now, "", "", "",
        uuid.uuid4().hex[:20], _field(request_segment, 11),
    ]  # fmt: skip
    return "|".join(fields) + "\r"
