"""The HL7 v2 translator: exact bytes in, FHIR R4 resources out. MSH-9 picks the mapper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from schemas.outcome import Issue

from .context import MappingContext, mapping_version_of
from .errors import MappingError, UnsupportedMessageType
from .mappers import adt, financial, mdm, orders, oru, pharmacy, problems, referral, siu, vxu
from .mappers.common import message_time
from .parser import ParsedMessage, parse
from .tolerance import tolerant

Mapper = Callable[[ParsedMessage, MappingContext], list[dict[str, Any]]]

# (message code, trigger event) -> mapper. ADT A01..A40 as listed in mappers/adt.py.
MAPPERS: dict[tuple[str, str], Mapper] = {
    **{("ADT", t): adt.map_message for t in adt.TRIGGERS},
    **{(code, t): oru.map_message for code, ts in oru.TRIGGERS.items() for t in ts},
    **{(code, t): orders.map_message for code, ts in orders.TRIGGERS.items() for t in ts},
    **{(code, t): pharmacy.map_message for code, ts in pharmacy.TRIGGERS.items() for t in ts},
    **{("PPR", t): problems.map_message for t in problems.TRIGGERS},
    **{(code, t): financial.map_message for code, ts in financial.TRIGGERS.items() for t in ts},
    **{("REF", t): referral.map_message for t in referral.TRIGGERS},
    ("VXU", "V04"): vxu.map_message,
    **{("SIU", t): siu.map_message for t in siu.TRIGGERS},
    **{("MDM", t): mdm.map_message for t in mdm.TRIGGERS},
}


@dataclass(frozen=True, slots=True)
class MappedMessage:
    """The resources of one message and what the ResourceChanged events need besides them."""

    resources: list[dict[str, Any]]
    business_time: str | None  # EVN-2, else MSH-7, as a FHIR dateTime
    message_type: str  # e.g. "ORU^R01"
    control_id: str  # MSH-10
    mapping_version: str  # the message map that produced them: hl7v2-fhir/1.0.0/ORU_R01
    # Optional fields dropped because their value was malformed or unknown (tolerance.py).
    warnings: tuple[Issue, ...] = ()


def mapper_for(msg: ParsedMessage) -> Mapper:
    code, trigger, _ = msg.message_type
    if not code:
        raise MappingError("MSH-9", "the message type is missing")
    # A few senders put the trigger only in EVN-1 (v2.1 style); respect it when MSH-9.2 is empty.
    if not trigger and msg.segment("EVN") is not None:
        trigger = msg.get("EVN-1").strip()
    mapper = MAPPERS.get((code, trigger))
    if mapper is None:
        raise UnsupportedMessageType(
            "MSH-9", f"{code}^{trigger} is not a message type carelog translates"
        )
    return mapper


def map_parsed(msg: ParsedMessage, ctx: MappingContext) -> MappedMessage:
    """Map `msg`; a bad optional field is dropped with a warning (tolerance.POLICY)."""
    mapped, warnings = tolerant(msg, lambda m: _mapped(m, ctx))
    return replace(mapped, warnings=tuple(warnings)) if warnings else mapped


def _mapped(msg: ParsedMessage, ctx: MappingContext) -> MappedMessage:
    if not msg.control_id.strip():
        raise MappingError("MSH-10", "the message control id is required")
    resources = mapper_for(msg)(msg, ctx)
    code, trigger, _ = msg.message_type
    return MappedMessage(
        resources=resources,
        business_time=message_time(msg, ctx),
        message_type=f"{code}^{trigger}",
        control_id=msg.control_id,
        mapping_version=mapping_version_of(code, trigger),
    )


def map_hl7v2(payload: bytes, ctx: MappingContext | None = None) -> MappedMessage:
    """Parse and map one message. Raises ParseError or MappingError (with `location`)."""
    return map_parsed(parse(payload), ctx or MappingContext())
