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

from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import Encoding, Er7, er7_of_text, read_er7

from .errors import ParseError

_PATH = re.compile(
    r"^(?P<seg>[A-Z][A-Z0-9]{2})-(?P<f>\d+)(?:\[(?P<r>\d+)\])?(?:\.(?P<c>\d+))?(?:\.(?P<s>\d+))?$"
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

    @property
    def encoding(self) -> Encoding:
        return self._enc

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

    Whether the bytes are a message at all is the contract's verdict (schemas.hl7v2.frame,
    the one the gateway and MLLP accept by): MSH-18 chooses the character set (no MSH-18:
    UTF-8, else Latin-1), segments end with CR (LF and CRLF tolerated), MLLP framing bytes and
    a UTF-8 BOM around the message are ignored. Raises ParseError naming the field at fault.
    """
    try:
        er7 = read_er7(payload) if isinstance(payload, bytes) else er7_of_text(payload)
    except FormatError as exc:
        raise ParseError(exc.location, exc.message) from None
    return parsed(er7)


def parsed(er7: Er7) -> ParsedMessage:
    """The tree of a message the contract accepted."""
    enc = er7.encoding
    fs = enc.field
    first, *rest = er7.segments
    segments: list[Segment] = [Segment("MSH", ["MSH", fs, *first.split(fs)[1:]], enc, 0)]
    for line in rest:
        fields = line.split(fs)
        segments.append(Segment(fields[0], fields, enc, len(segments)))
    return ParsedMessage(segments, enc, er7.text)
