"""What a mapper needs beyond the message: naming systems and the local time zone."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote
from zoneinfo import ZoneInfo

MAPPING_VERSION = "hl7v2-fhir/1.0.0"


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

    identifier_system_base: str = "urn:carelog:sid:"
    code_system_base: str = "urn:carelog:v2-coding-system:"
    timezone: str = "UTC"
    authorities: dict[str, str] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def authority_system(self, namespace: str) -> str:
        return self.authorities.get(namespace) or self.identifier_system_base + quote(
            namespace, safe=""
        )
