"""Both parsers' trees in one comparable shape: the set of non-blank leaves by position.

A leaf is (segment index, segment name, field, repetition, component, subcomponent) -> raw
ER7 text (escapes not decoded: hl7apy never decodes them). Blank leaves (empty or only
whitespace) are left out of both: hl7apy drops blank fields, components and subcomponents
that have a name, so "absent" and "blank" are the same thing there.
"""

from __future__ import annotations

import re
from typing import Any

from processors.hl7v2.parser import ParsedMessage

Leaf = tuple[int, str, int, int, int, int]
_POS = re.compile(r"_(\d+)$")


def carelog_leaves(msg: ParsedMessage) -> dict[Leaf, str]:
    out: dict[Leaf, str] = {}
    for si, seg in enumerate(msg.segments()):
        for fi in range(1, len(seg) + 1):
            f = seg.field(fi)
            if not f.raw.strip():
                continue
            if seg.name == "MSH" and fi in (1, 2):
                out[(si, seg.name, fi, 1, 1, 1)] = f.raw
                continue
            for ri, rep in enumerate(f.repetitions, 1):
                for ci, comp in enumerate(rep.components, 1):
                    subs = comp.split(msg.encoding.subcomponent)
                    for ti, sub in enumerate(subs, 1):
                        if sub.strip():
                            out[(si, seg.name, fi, ri, ci, ti)] = sub
    return out


def _pos(name: str | None, previous: int) -> int:
    m = _POS.search(name or "")
    return int(m.group(1)) if m else previous + 1


def _leaf_text(sub: Any) -> str:
    value = sub.value
    if isinstance(value, str):
        return value
    inner = getattr(value, "value", None)
    if isinstance(inner, str):
        return inner
    return str(sub.to_er7())


def hl7apy_leaves(msg: Any) -> dict[Leaf, str]:
    out: dict[Leaf, str] = {}
    for si, seg in enumerate(msg.children):
        reps: dict[int, int] = {}
        for field in seg.children:
            fi = _pos(field.name, 0)
            ri = reps[fi] = reps.get(fi, 0) + 1
            if seg.name == "MSH" and fi in (1, 2):
                out[(si, seg.name, fi, 1, 1, 1)] = _leaf_text(field.children[0].children[0])
                continue
            ci = 0
            for comp in field.children:
                ci = _pos(comp.name, ci)
                ti = 0
                for sub in comp.children:
                    ti = _pos(sub.name, ti)
                    text = _leaf_text(sub)
                    if text.strip():
                        out[(si, seg.name, fi, ri, ci, ti)] = text
    return out
