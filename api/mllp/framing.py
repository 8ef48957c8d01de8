"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol): VT <message> FS CR, decoded incrementally.

Pure and I/O free: feed it the chunks a socket delivers, however they are split, and it
returns what they complete — whole frames, and the byte runs that break the framing, each
with its reason, so the listener can answer every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

VT = 0x0B  # start block
FS = 0x1C  # end block
CR = 0x0D  # closes the end block

START = bytes([VT])
END = bytes([FS, CR])


def frame(payload: bytes) -> bytes:
    """`payload` wrapped for the wire."""
    return START + payload + END


class Fault(StrEnum):
    outside_frame = "bytes outside a frame (before a start block VT)"
    missing_start = "a frame without a start block (VT): end block FS came first"
    interrupted = "a start block (VT) before the end block (FS) of the previous frame"
    too_large = "message larger than the limit"
    truncated = "connection closed inside a frame (no end block FS)"
    too_slow = "a frame started but not finished within the time limit"


@dataclass(frozen=True, slots=True)
class Frame:
    """One message: the exact bytes between VT and FS."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Broken:
    """Bytes that are not a well-formed frame. `head` is the start of them (at most the
    decoder's `keep_bytes`); `size` is how many there were in all."""

    fault: Fault
    head: bytes
    size: int


Decoded = Frame | Broken

_OUTSIDE, _INSIDE, _AFTER_END = 0, 1, 2


class FrameDecoder:
    """Incremental MLLP decoder.

    Whitespace between frames (a stray CR or LF) is tolerated; any other byte outside a
    frame is reported. A frame over `max_message_bytes` is not kept: its first `keep_bytes`
    are, and it is reported as `too_large` once its end block arrives.
    """

    def __init__(self, max_message_bytes: int, keep_bytes: int = 65_536) -> None:
        self.max_message_bytes = max_message_bytes
        self.keep_bytes = min(keep_bytes, max_message_bytes)
        self._state = _OUTSIDE
        self._parts: list[bytes] = []  # the current run (frame or stray bytes), or its head
        self._size = 0  # bytes seen in the current run, held or not
        self._overflowed = False
        self._stray = False  # the current run outside a frame holds more than whitespace

    @property
    def open(self) -> bool:
        """A frame, or a run of stray bytes, has started and not ended (cheap: no join)."""
        return self._state == _INSIDE or self._stray

    @property
    def overflowing(self) -> bool:
        """The run in progress is already larger than `max_message_bytes`."""
        return self._size > self.max_message_bytes

    def abandon(self, fault: Fault) -> Broken:
        """Give up the run in progress (too large, too slow): what it held, as `fault`; the
        decoder is back between frames."""
        data, size = self._take()
        self._state = _OUTSIDE
        return Broken(fault, data[: self.keep_bytes], size)

    def _append(self, piece: bytes) -> None:
        if not piece:
            return
        if self._state != _INSIDE and not self._stray and piece.strip():
            self._stray = True
        self._size += len(piece)
        if self._size <= self.max_message_bytes:
            self._parts.append(piece)
        elif not self._overflowed:  # crossed the limit: hold only the head of the run
            self._parts = [(b"".join(self._parts) + piece[: self.keep_bytes])[: self.keep_bytes]]
            self._overflowed = True

    def _take(self) -> tuple[bytes, int]:
        data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        size = self._size
        self._parts, self._size, self._overflowed, self._stray = [], 0, False, False
        return data, size

    def _end_frame(self, out: list[Decoded]) -> None:
        data, size = self._take()
        if size > self.max_message_bytes:
            out.append(Broken(Fault.too_large, data, size))
        else:
            out.append(Frame(data))

    def _end_outside(self, out: list[Decoded], fault: Fault, always: bool) -> None:
        data, size = self._take()
        if always or size > self.max_message_bytes or data.strip():
            out.append(Broken(fault, data[: self.keep_bytes], size))

    def feed(self, data: bytes) -> list[Decoded]:
        """What `data`, following everything fed before, completes (often nothing)."""
        out: list[Decoded] = []
        pos, end = 0, len(data)
        while pos < end:
            if self._state == _AFTER_END:
                self._state = _OUTSIDE
                if data[pos] == CR:
                    pos += 1
                continue
            fs = data.find(FS, pos)
            vt = data.find(VT, pos, fs if fs >= 0 else end)
            if self._state == _INSIDE:
                if vt >= 0:  # a new start block before this frame ended
                    self._append(data[pos:vt])
                    data_, size = self._take()
                    out.append(Broken(Fault.interrupted, data_[: self.keep_bytes], size))
                    pos = vt + 1
                elif fs >= 0:
                    self._append(data[pos:fs])
                    self._end_frame(out)
                    self._state = _AFTER_END
                    pos = fs + 1
                else:
                    self._append(data[pos:])
                    pos = end
            elif vt >= 0:  # outside, a start block: what came before it was stray
                self._append(data[pos:vt])
                self._end_outside(out, Fault.outside_frame, always=False)
                self._state = _INSIDE
                pos = vt + 1
            elif fs >= 0:  # outside, an end block with no start block
                self._append(data[pos:fs])
                self._end_outside(out, Fault.missing_start, always=True)
                self._state = _AFTER_END
                pos = fs + 1
            else:
                self._append(data[pos:])
                pos = end
        return out

    def close(self) -> list[Decoded]:
        """The end of the stream: what was left unfinished."""
        out: list[Decoded] = []
        if self._state == _INSIDE:
            data, size = self._take()
            out.append(Broken(Fault.truncated, data[: self.keep_bytes], size))
        else:
            self._end_outside(out, Fault.outside_frame, always=False)
        self._state = _OUTSIDE
        return out
