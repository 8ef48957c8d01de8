"""Where a translated or changed resource came from: the inbound record, the mapping that
translated it, its business time and the warnings of its translation. The translate stage
builds it once per inbound record; the version stage passes it on unchanged."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict, cast

from schemas.events import ResourceTranslated


class Lineage(TypedDict):
    """The fields ResourceTranslated and ResourceChanged share, given to both by keyword."""

    inbound_event_id: str
    inbound_topic: str
    inbound_partition: int
    inbound_offset: int
    mapping_version: str
    business_time: datetime | None
    warnings: str | None


def lineage_of(translated: ResourceTranslated) -> Lineage:
    """The lineage a ResourceTranslated hands on to the ResourceChanged it becomes."""
    return cast(Lineage, {name: getattr(translated, name) for name in Lineage.__annotations__})
