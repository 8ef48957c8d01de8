"""HL7 v2 under the translators' common contract: parse + map (processors/hl7v2). The
translate stage validates the resources, as it does for every format."""

from __future__ import annotations

from datetime import UTC, datetime

from processors.attachment_blobs import externalize_big_attachments
from processors.hl7v2.errors import Hl7v2Error
from processors.hl7v2.mapping import map_hl7v2
from processors.translation import TranslatedResource, Translation, TranslationError
from schemas.outcome import Issue


def _instant(value: str | None) -> datetime | None:
    """A FHIR dateTime with a time of day as an aware datetime; dates alone stay unknown."""
    if not value or "T" not in value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def translate_hl7v2(payload: bytes, event_id: str) -> Translation:
    """Raises TranslationError naming the segment and field (or FHIRPath) at fault."""
    try:
        result = map_hl7v2(payload)
    except Hl7v2Error as exc:
        code = "not-supported" if "not a message type" in exc.message else "invalid"
        raise TranslationError([Issue(exc.message, code=code, location=exc.location)]) from exc
    return Translation(
        resources=[TranslatedResource(r) for r in externalize_big_attachments(result.resources)],
        business_time=_instant(result.business_time),
        mapping_version=result.mapping_version,
        warnings=result.warnings,
    )
