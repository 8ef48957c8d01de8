"""A fast ER7 parser: segments -> fields -> repetitions -> components -> subcomponents.

Splitting is lazy (a field is split into repetitions and components only when read) and
escape sequences are decoded only when a leaf value is read, so parsing a 2 KB message is a
few string splits. Positions are 1-based as in HL7: `seg.field(5)`, `get(seg, "PID-5.1")`.
`tests/processors/test_parser_hl7apy.py` proves the tree equal to hl7apy's on the corpus
and on generated messages, and lists where the two differ on purpose.

Raw values (`.raw`) are ER7 as sent; `.value` and `get()` decode escapes. MSH-1 and MSH-2
are special: their value is the separator characters themselves, never split or decoded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .charset import decode, msh18
from .errors import ParseError
from .escapes import unescape

_NAME = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_PATH = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})-(?P<f>\d+)(?:\[(?P<r>\d+)\])?(?:\.(?P<c>\d+))?(?:\.(?P<s>\d+))?$"
)
_LEADING: Final = b"\x0b \t\r\n"  # MLLP start block, stray whitespace
_TRAILING: Final = b"\x1c\r\n"  # MLLP end block, last segment terminator


@dataclass(frozen=True, slots=True)
class Encoding:
    """The separators of one message (MSH-1, MSH-2) and its character set codec."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""
    codec: str = "utf-8"

    def unescape(self, text: str) -> str:
        if not self.escape or self.escape not in text:
            return text
        return unescape(
            text,
            self.field,
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
            self.codec,
        )


class Component:
    """One component: subcomponents split by the subcomponent separator."""

    __slots__ = ("_enc", "_subs", "raw")

    def __init__(self, raw: str, enc: Encoding) -> None:
        self.raw = raw
        self._enc = enc
        self._subs: list[str] | None = None

    @property
    def subcomponents(self) -> list[str]:
        """Raw (still escaped) subcomponents."""
        if self._subs is None:
            sep = self._enc.subcomponent
            self._subs = self.raw.split(sep) if sep else [self.raw]
        return self._subs

    def sub(self, n: int = 1) -> str:
        """Subcomponent n (1-based), decoded; empty when absent."""
        subs = self.subcomponents
        return self._enc.unescape(subs[n - 1]) if 0 < n <= len(subs) else ""

    @property
    def value(self) -> str:
        """The first subcomponent, decoded (the component's value when it has no subcomponents)."""
        return self.sub(1)

    def __bool__(self) -> bool:
        return bool(self.raw)

    def __repr__(self) -> str:
        return f"Component({self.raw!r})"


_EMPTY_ENC = Encoding()


class Repetition:
    """One repetition of a field: components split by the component separator."""

    __slots__ = ("_comps", "_enc", "raw")

    def __init__(self, raw: str, enc: Encoding) -> None:
        self.raw = raw
        self._enc = enc
        self._comps: list[str] | None = None

    @property
    def components(self) -> list[str]:
        """Raw (still escaped) components."""
        if self._comps is None:
            self._comps = self.raw.split(self._enc.component)
        return self._comps

    def component(self, n: int) -> Component:
        comps = self.components
        return Component(comps[n - 1] if 0 < n <= len(comps) else "", self._enc)

    def c(self, n: int, s: int = 1) -> str:
        """Component n, subcomponent s, decoded; empty when absent."""
        comps = self.components
        if not 0 < n <= len(comps):
            return ""
        raw = comps[n - 1]
        sc = self._enc.subcomponent
        if sc and sc in raw:
            subs = raw.split(sc)
            raw = subs[s - 1] if 0 < s <= len(subs) else ""
        elif s != 1:
            return ""
        return self._enc.unescape(raw)

    @property
    def value(self) -> str:
        return self.c(1)

    def __bool__(self) -> bool:
        return bool(self.raw)

    def __repr__(self) -> str:
        return f"Repetition({self.raw!r})"


class Field:
    """One field with all its repetitions. An absent field is an empty Field."""

    __slots__ = ("_enc", "_reps", "raw")

    def __init__(self, raw: str, enc: Encoding, *, atomic: bool = False) -> None:
        self.raw = raw
        self._enc = enc
        self._reps: list[Repetition] | None = None
        if atomic:  # MSH-1, MSH-2: never split, never decoded
            self._reps = [_Atomic(raw)]

    @property
    def repetitions(self) -> list[Repetition]:
        if self._reps is None:
            enc = self._enc
            if not self.raw:
                self._reps = []
            else:
                self._reps = [Repetition(r, enc) for r in self.raw.split(enc.repetition)]
        return self._reps

    def rep(self, n: int = 1) -> Repetition:
        reps = self.repetitions
        return reps[n - 1] if 0 < n <= len(reps) else Repetition("", self._enc)

    def component(self, n: int) -> Component:
        return self.rep(1).component(n)

    def c(self, n: int, s: int = 1) -> str:
        return self.rep(1).c(n, s)

    @property
    def value(self) -> str:
        """First repetition, first component, first subcomponent, decoded."""
        return self.rep(1).value

    def __bool__(self) -> bool:
        return bool(self.raw)

    def __repr__(self) -> str:
        return f"Field({self.raw!r})"


class _Atomic(Repetition):
    """MSH-1/MSH-2: one component holding the raw text, never decoded."""

    __slots__ = ()

    def __init__(self, raw: str) -> None:
        super().__init__(raw, _EMPTY_ENC)
        self._comps = [raw]

    def c(self, n: int, s: int = 1) -> str:
        return self.raw if n == 1 and s == 1 else ""


class Segment:
    """One segment. `fields[n]` is the raw field n (fields[0] is the name), as in HL7."""

    __slots__ = ("_enc", "fields", "index", "name")

    def __init__(self, name: str, fields: list[str], enc: Encoding, index: int) -> None:
        self.name = name
        self.fields = fields
        self._enc = enc
        self.index = index  # position in the message, 0-based

    def raw(self, n: int) -> str:
        f = self.fields
        return f[n] if 0 < n < len(f) else ""

    def field(self, n: int) -> Field:
        f = self.fields
        raw = f[n] if 0 < n < len(f) else ""
        return Field(raw, self._enc, atomic=self.name == "MSH" and n in (1, 2))

    def __getitem__(self, n: int) -> Field:
        return self.field(n)

    def __len__(self) -> int:
        """Number of fields present (the highest position sent)."""
        return len(self.fields) - 1

    @property
    def encoding(self) -> Encoding:
        return self._enc

    def __repr__(self) -> str:
        return f"Segment({self._enc.field.join(self.fields)!r})"


class ParsedMessage:
    """A parsed ER7 message: its segments in order, separators and character set."""

    __slots__ = ("_by_name", "encoding", "segment_list", "text")

    def __init__(self, segment_list: list[Segment], encoding: Encoding, text: str) -> None:
        self.segment_list = segment_list
        self.encoding = encoding
        self.text = text
        by_name: dict[str, list[Segment]] = {}
        for s in segment_list:
            by_name.setdefault(s.name, []).append(s)
        self._by_name = by_name

    def segments(self, name: str | None = None) -> list[Segment]:
        """All segments, or those named `name`, in message order."""
        if name is None:
            return self.segment_list
        return self._by_name.get(name, [])

    def segment(self, name: str) -> Segment | None:
        """The first segment named `name`, or None."""
        found = self._by_name.get(name)
        return found[0] if found else None

    @property
    def msh(self) -> Segment:
        return self.segment_list[0]

    @property
    def message_type(self) -> tuple[str, str, str]:
        """(code, trigger, structure) from MSH-9, e.g. ("ORU", "R01", "ORU_R01")."""
        f = self.msh.field(9)
        return f.c(1).strip(), f.c(2).strip(), f.c(3).strip()

    @property
    def version(self) -> str:
        return self.msh.field(12).c(1).strip()

    @property
    def control_id(self) -> str:
        return self.msh.field(10).value

    def get(self, path: str) -> str:
        """`get` on the first segment the path names, e.g. msg.get("PID-5.1")."""
        seg = self.segment(path[:3])
        return get(seg, path) if seg is not None else ""


def get(seg: Segment, path: str) -> str:
    """A decoded leaf by HL7 path: "PID-5", "PID-5.1", "PID-3[2].4.2" (1-based, [] = repetition).

    Unstated levels default to 1, so "PID-5" is PID-5[1].1.1.
    """
    m = _PATH.match(path)
    if m is None:
        raise ValueError(f"not an HL7 path: {path!r}")
    if m.group("seg") != seg.name:
        raise ValueError(f"path {path!r} does not name segment {seg.name}")
    f = seg.field(int(m.group("f")))
    r = int(m.group("r") or 1)
    c = int(m.group("c") or 1)
    s = int(m.group("s") or 1)
    return f.rep(r).c(c, s)


def parse(payload: bytes | str) -> ParsedMessage:
    """Parse one ER7 message from its exact bytes (or already decoded text).

    MSH-18 chooses the character set (no MSH-18: UTF-8, else Latin-1). Segments end with CR;
    LF and CRLF are tolerated. MLLP framing bytes and a UTF-8 BOM around the message are ignored.
    """
    if isinstance(payload, bytes):
        data = payload.lstrip(_LEADING).rstrip(_TRAILING)
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        if not data.startswith(b"MSH"):
            raise ParseError("MSH", "the message must start with an MSH segment")
        end = data.find(b"\r")
        nl = data.find(b"\n")
        if end < 0 or 0 <= nl < end:
            end = nl
        first = data if end < 0 else data[:end]
        text, codec = decode(data, msh18(first))
    else:
        text = payload.lstrip("\x0b \t\r\n\ufeff").rstrip("\x1c\r\n")
        codec = "utf-8"
        if not text.startswith("MSH"):
            raise ParseError("MSH", "the message must start with an MSH segment")
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    lines = text.split("\r")
    if len(lines[0]) < 8:
        raise ParseError("MSH", "the MSH segment is too short to hold MSH-1 and MSH-2")
    msh = lines[0]
    fs = msh[3]
    if fs.isalnum() or fs.isspace():
        raise ParseError("MSH-1", f"field separator {fs!r} is not valid")
    parts = msh.split(fs)
    enc_chars = parts[1]
    if len(enc_chars) < 2 or len(enc_chars) > 5:
        raise ParseError("MSH-2", f"encoding characters {enc_chars!r} are not valid")
    if len(set(enc_chars + fs)) != len(enc_chars) + 1:
        raise ParseError("MSH-2", f"encoding characters {enc_chars!r} repeat a separator")
    enc = Encoding(
        field=fs,
        component=enc_chars[0],
        repetition=enc_chars[1],
        escape=enc_chars[2] if len(enc_chars) > 2 else "",
        subcomponent=enc_chars[3] if len(enc_chars) > 3 else "",
        truncation=enc_chars[4] if len(enc_chars) > 4 else "",
        codec=codec,
    )
    segments: list[Segment] = [Segment("MSH", ["MSH", fs, *parts[1:]], enc, 0)]
    for line in lines[1:]:
        if not line or line.isspace():
            continue
        fields = line.split(fs)
        name = fields[0]
        if not _NAME.match(name):
            raise ParseError(f"segment {len(segments) + 1}", f"{name[:10]!r} is not a segment name")
        segments.append(Segment(name, fields, enc, len(segments)))
    return ParsedMessage(segments, enc, text)
