"""Which PID-3 identifier a message's patient is, chosen once for the Kafka key and the
Patient id.

The edge keys an HL7 v2 message by sender and patient (streams/keys.py) so that one patient's
messages stay in order; the processor derives the Patient's id from the same choice
(processors/hl7v2/mappers/common.py), so two messages about one Patient from one sender
always share a key. The choice: the first PID-3 repetition typed MR (CX-5) with a value, else
the first with a value. Its authority: CX-4 when it names one by a typed universal id (ISO:
urn:oid:, UUID: urn:uuid:, URI/URL: itself; the system as is), else CX-4.1, CX-4.2, else the
sender's (MSH-4.1, MSH-4.2, else MSH-3.1); the processor turns a name into a system by the
configured authorities (processors/ids.py authority_system).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from schemas.hl7v2.frame import Encoding, Er7, msh_fields


@dataclass(frozen=True, slots=True)
class PatientIdentifier:
    value: str  # CX-1, decoded and trimmed
    authority: str  # a name, or a system when is_system; "" when nothing names one
    is_system: bool = False

    @property
    def key(self) -> str:
        """The patient's part of the Kafka key: value^authority."""
        return f"{self.value}^{self.authority}" if self.authority else self.value

    def system(self, system_of: Callable[[str], str]) -> str:
        """Identifier.system, `system_of` turning an authority's name into one."""
        if self.is_system or not self.authority:
            return self.authority
        return system_of(self.authority)


def leaf(raw: str, encoding: Encoding) -> str:
    """A value as FHIR wants it: escapes decoded, trimmed, HL7's null ("") read as empty."""
    value = encoding.unescape(raw).strip()
    return "" if value == '""' else value


def component(raw: str, n: int, s: int, encoding: Encoding) -> str:
    """Raw component n, subcomponent s (1-based) of one repetition; empty when absent."""
    components = raw.split(encoding.component)
    if not 0 < n <= len(components):
        return ""
    part = components[n - 1]
    sub = encoding.subcomponent
    if sub and sub in part:
        subs = part.split(sub)
        return subs[s - 1] if 0 < s <= len(subs) else ""
    return part if s == 1 else ""


def hd_uri(namespace: str, universal_id: str, universal_type: str) -> str | None:
    """The system an HD names by its universal id alone (urn:oid, urn:uuid, a URI), else None."""
    kind = universal_type.upper()
    if universal_id and kind == "ISO":
        return f"urn:oid:{universal_id}"
    if universal_id and kind == "UUID":
        return f"urn:uuid:{universal_id.lower()}"
    if universal_id and kind in ("URI", "URL"):
        return universal_id
    return None


def sending_authority(msh: Sequence[str], encoding: Encoding) -> str:
    """MSH-4.1, else MSH-4.2, else MSH-3.1 (`msh[n]` is MSH-n): the implied authority of
    identifiers that name none."""

    def first_rep(n: int) -> str:
        raw = msh[n] if len(msh) > n else ""
        return raw.split(encoding.repetition)[0] if encoding.repetition else raw

    facility = first_rep(4)
    return (
        leaf(component(facility, 1, 1, encoding), encoding)
        or leaf(component(facility, 2, 1, encoding), encoding)
        or leaf(component(first_rep(3), 1, 1, encoding), encoding)
    )


def choose(
    repetitions: Sequence[str], encoding: Encoding, implied_authority: str
) -> PatientIdentifier | None:
    """The identifier among raw CX repetitions (PID-3, MRG-1) a Patient id derives from."""

    def c(raw: str, n: int, s: int = 1) -> str:
        return leaf(component(raw, n, s, encoding), encoding)

    present = [r for r in repetitions if c(r, 1)]
    chosen = next((r for r in present if c(r, 5).upper() == "MR"), None)
    chosen = chosen or (present[0] if present else None)
    if chosen is None:
        return None
    namespace, universal_id, universal_type = c(chosen, 4, 1), c(chosen, 4, 2), c(chosen, 4, 3)
    system = hd_uri(namespace, universal_id, universal_type)
    if system is not None:
        return PatientIdentifier(c(chosen, 1), system, is_system=True)
    return PatientIdentifier(c(chosen, 1), namespace or universal_id or implied_authority)


def message_patient(er7: Er7) -> PatientIdentifier | None:
    """The patient of a message: `choose` over its first PID's PID-3; None without one."""
    encoding = er7.encoding
    pid = next((s for s in er7.segments if s.startswith("PID" + encoding.field)), None)
    if pid is None:
        return None
    fields = pid.split(encoding.field)
    pid3 = fields[3] if len(fields) > 3 else ""
    repetitions = pid3.split(encoding.repetition) if pid3 else []
    msh = msh_fields(er7.segments[0], encoding.field)
    return choose(repetitions, encoding, sending_authority(msh, encoding))


def about_one_patient(er7: Er7) -> bool:
    """Whether the message names one patient only: one PID and no MRG (a merge or a move
    names another patient's identifiers)."""
    encoding = er7.encoding
    pid, mrg = "PID" + encoding.field, "MRG" + encoding.field
    pids = 0
    for segment in er7.segments:
        if segment.startswith(mrg):
            return False
        pids += segment.startswith(pid)
    return pids == 1
