"""What a malformed or unknown value costs: the message, or only the element it fed.

`POLICY` is the one table. A mapper raises MappingError at the field it could not read (its
`location`, e.g. AL1[1]-6); `tolerant` looks the field up here:

- required: identity or meaning of the message depends on it; the message is refused with
  the reason (and kept on carelog.rejected by the translate stage).
- drop-field: the field is emptied, as if the sender had left it out, and the message is
  mapped again; the element it fed is missing and a warning names the field.
- drop-segment: the segment is removed (its element cannot exist without the field, e.g. an
  AllergyIntolerance without AL1-3); what follows it in the message is still mapped.
- drop-element: the mapper leaves the element out itself and calls `dropped` (used where
  removing the segment would orphan its children: a SPM without SPM-2 gives no Specimen,
  and its OBX are still mapped).

A field not in the table is optional (drop-field): the required ones are listed explicitly.
A location that names no field (a missing segment, a group) refuses the message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from schemas.outcome import Issue

from .errors import MappingError, StructureError
from .parser import ParsedMessage, parse

T = TypeVar("T")


class Action(StrEnum):
    REQUIRED = "required"
    DROP_FIELD = "drop-field"
    DROP_SEGMENT = "drop-segment"
    DROP_ELEMENT = "drop-element"


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    datatype: str  # the v2 datatype read (for the README table and the corruption tests)
    why: str


_R, _F, _S, _E = Action.REQUIRED, Action.DROP_FIELD, Action.DROP_SEGMENT, Action.DROP_ELEMENT

# field -> what a malformed or unknown value does. Keep it sorted by segment.
POLICY: dict[str, Rule] = {
    "AL1-3": Rule(_S, "CWE", "the allergen: no AllergyIntolerance without it"),
    "AL1-6": Rule(_F, "DT", "onset date"),
    "DG1-3": Rule(_S, "CWE", "the diagnosis code: no Condition without it"),
    "DG1-5": Rule(_F, "DTM", "diagnosis date"),
    "EVN-2": Rule(_F, "DTM", "recorded time (MSH-7 is used instead)"),
    "FT1-4": Rule(_F, "DR", "transaction date"),
    "FT1-7": Rule(_R, "CWE", "the charge code: meaning of a DFT"),
    "IAM-3": Rule(_S, "CWE", "the allergen: no AllergyIntolerance without it"),
    "IAM-11": Rule(_F, "DT", "onset date"),
    "MRG-1": Rule(_R, "CX", "identity: the patient merged away"),
    "NTE-3": Rule(_E, "FT", "a comment no element takes (after PID): reported, not mapped"),
    "MRG-3": Rule(_R, "CX", "identity: the account merged away"),
    "MSH-7": Rule(_F, "DTM", "message time (business time unknown)"),
    "MSH-9": Rule(_R, "MSG", "message type: picks the map"),
    "MSH-10": Rule(_R, "ST", "message control id: identity of the message"),
    "OBR-2": Rule(_R, "EI", "identity: placer order number"),
    "OBR-3": Rule(_R, "EI", "identity: filler order number"),
    "OBR-4": Rule(_R, "CWE", "meaning: what was ordered"),
    "OBR-7": Rule(_F, "DTM", "observation time"),
    "OBR-25": Rule(_R, "ID", "meaning: report status (table 0123), as the IG requires"),
    "OBX-2": Rule(_R, "ID", "meaning: how to read OBX-5"),
    "OBX-3": Rule(_R, "CWE", "identity: what was observed"),
    "OBX-5": Rule(_R, "varies", "meaning: the result itself"),
    "OBX-11": Rule(_R, "ID", "meaning: result status (table 0085), as the IG requires"),
    "OBX-14": Rule(_F, "DTM", "observation time"),
    "ORC-1": Rule(_F, "ID", "order control (table 0119): status becomes unknown"),
    "ORC-2": Rule(_R, "EI", "identity: placer order number"),
    "ORC-3": Rule(_R, "EI", "identity: filler order number"),
    "ORC-9": Rule(_F, "DTM", "order time"),
    "PID-3": Rule(_R, "CX", "identity: the patient (the configured identifier)"),
    "PID-7": Rule(_F, "DTM", "birth date"),
    "PID-18": Rule(_R, "CX", "identity: the account, where the message is about it"),
    "PID-29": Rule(_F, "DTM", "death time"),
    "PR1-3": Rule(_S, "CWE", "the procedure code: no Procedure without it"),
    "PR1-5": Rule(_F, "DTM", "procedure time"),
    "PRB-3": Rule(_R, "CWE", "identity: the problem"),
    "PV1-44": Rule(_F, "DTM", "admit time"),
    "PV1-45": Rule(_F, "DTM", "discharge time"),
    "RF1-6": Rule(_R, "EI", "identity: the referral"),
    "RXA-3": Rule(_R, "DTM", "meaning: when it was given"),
    "RXA-4": Rule(_F, "DTM", "end of administration"),
    "RXA-5": Rule(_R, "CWE", "meaning: what was given"),
    "RXA-16": Rule(_F, "DT", "vaccine expiry date"),
    "RXA-22": Rule(_F, "DTM", "system entry time (recorded)"),
    "RXD-2": Rule(_R, "CWE", "meaning: what was dispensed"),
    "RXE-2": Rule(_R, "CWE", "meaning: what was ordered"),
    "RXO-1": Rule(_R, "CWE", "meaning: what was ordered"),
    "SCH-1": Rule(_R, "EI", "identity: the appointment"),
    "SCH-11": Rule(_R, "TQ", "meaning: a booked appointment's start and end"),
    "SPM-2": Rule(_E, "EIP", "the specimen id: no Specimen, its OBX kept"),
    "SPM-17": Rule(_F, "DR", "collection time"),
    "SPM-18": Rule(_F, "DTM", "received time"),
    "TXA-12": Rule(_R, "EI", "identity: the document"),
}
OTHER_FIELD = Rule(_F, "any", "any field not listed: optional")
MAX_DROPS = 32  # a message with more bad optional fields than this is refused as garbage

# AL1[2]-6 or AL1-6 (the first AL1); a location without a field number names a segment.
_LOCATION = re.compile(r"^(?P<seg>[A-Z][A-Z0-9]{2})(?:\[(?P<nth>[0-9]+)\])?-(?P<field>[0-9]+)$")


def rule_for(location: str) -> Rule | None:
    """The rule for an error location; None when the location names no field (refuse)."""
    m = _LOCATION.match(location)
    if m is None:
        return None
    return POLICY.get(f"{m['seg']}-{m['field']}", OTHER_FIELD)


def dropped(msg: ParsedMessage, location: str, message: str) -> None:
    """Record that the mapper left out the element of an optional field (drop-element)."""
    rule, warnings = rule_for(location), _WARNINGS.get(None)
    if rule is None or rule.action is not Action.DROP_ELEMENT or warnings is None:
        raise MappingError(location, message)  # outside `tolerant`: strict
    warning = _warning(msg, location, message, rule.action)
    if warning not in warnings:  # a segment some maps read twice (a shared SPM) warns once
        warnings.append(warning)


_WARNINGS: ContextVar[list[Issue]] = ContextVar("hl7v2_warnings")


def tolerant(
    msg: ParsedMessage, map_message: Callable[[ParsedMessage], T]
) -> tuple[T, list[Issue]]:
    """`map_message(msg)`, dropping what POLICY lets drop until it maps; the warnings name
    each dropped field. Raises the MappingError of a required field (or a segment)."""
    warnings: list[Issue] = []
    while True:
        in_place: list[Issue] = []
        token = _WARNINGS.set(in_place)
        try:
            return map_message(msg), warnings + in_place
        except StructureError:
            raise
        except MappingError as exc:
            rule = rule_for(exc.location)
            if rule is None or rule.action is Action.REQUIRED or len(warnings) >= MAX_DROPS:
                raise
            edited = _edited(msg, exc.location, rule.action)
            if edited is None:  # nothing left to drop there: the mapper needs it after all
                raise
            warnings.append(_warning(msg, exc.location, exc.message, rule.action))
            msg = parse(edited)
        finally:
            _WARNINGS.reset(token)


_DONE = {
    Action.DROP_FIELD: "the field is dropped",
    Action.DROP_SEGMENT: "the segment is dropped",
    Action.DROP_ELEMENT: "its element is left out",
}


def _warning(msg: ParsedMessage, location: str, message: str, action: Action) -> Issue:
    return Issue(
        f"{message}; {_DONE[action]}, the rest of the message is mapped",
        code="value",
        severity="warning",
        location=_normalized(location),
    )


def _normalized(location: str) -> str:
    """AL1-6 -> AL1[1]-6: the warning always says which occurrence."""
    m = _LOCATION.match(location)
    assert m is not None
    return f"{m['seg']}[{m['nth'] or 1}]-{m['field']}"


def _edited(msg: ParsedMessage, location: str, action: Action) -> str | None:
    """The message text without that field (or segment); None when there is nothing to drop."""
    m = _LOCATION.match(location)
    assert m is not None
    name, nth, number = m["seg"], int(m["nth"] or 1), int(m["field"])
    fs = msg.encoding.field
    lines = msg.text.split("\r")
    seen = 0
    for i, line in enumerate(lines):
        if line[:3] != name or (len(line) > 3 and line[3] != fs):
            continue
        seen += 1
        if seen != nth:
            continue
        if action is Action.DROP_SEGMENT:
            del lines[i]
            return "\r".join(lines)
        fields = line.split(fs)
        index = number - 1 if name == "MSH" else number  # MSH-1 is the separator itself
        if action is not Action.DROP_FIELD or index >= len(fields) or not fields[index]:
            return None
        fields[index] = ""
        lines[i] = fs.join(fields)
        return "\r".join(lines)
    return None
