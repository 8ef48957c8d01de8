"""What a mapper needs beyond the message: naming systems and the local time zone."""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from processors.ids import LOCAL_SYSTEM_BASE, authority_system

MAPPING_VERSION = "hl7v2-fhir/1.0.0"


def mapping_version_of(message_code: str, trigger: str) -> str:
    """The mapping version recorded on a message's resources: MAPPING_VERSION and the message
    map that produced them, named as the v2-to-FHIR IG names them (hl7v2-fhir/1.0.0/ORU_R01).

    The versioning stage reads the message code back (message_code_of): resources from
    messages other than ADT never overwrite what the ADT feed owns (processors/version_policy).
    """
    return f"{MAPPING_VERSION}/{message_code}_{trigger}"


def message_code_of(mapping_version: str) -> str | None:
    """The HL7 message code (ADT, ORU, ...) of a mapping_version_of(...); None for others."""
    family, _, rest = mapping_version.partition("/")
    message_map = rest.partition("/")[2]
    if family != MAPPING_VERSION.partition("/")[0] or not message_map:
        return None
    return message_map.partition("_")[0]


@dataclass(frozen=True, slots=True)
class MappingContext:
    """Configuration of one mapping run; the same context and message give the same resources.

    Attributes:
        identifier_system_base: prefix of Identifier.system for an assigning authority that
            has no OID/URI of its own (HD-1 namespace id is appended, URL-quoted).
        code_system_base: prefix of Coding.system for a v2 coding system name carelog does
            not know (the name is appended), so that nothing sent is dropped.
        timezone: IANA zone of senders that omit the offset; FHIR requires one on a time.
        authorities: namespace id -> Identifier.system overrides (e.g. an MRN authority's URL).
    """

    identifier_system_base: str = LOCAL_SYSTEM_BASE
    code_system_base: str = "urn:carelog:v2-coding-system:"
    timezone: str = "UTC"
    authorities: dict[str, str] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def authority_system(self, namespace: str) -> str:
        """The system of an authority named by its namespace id (processors/ids.py)."""
        return authority_system(namespace, self.authorities, self.identifier_system_base)
