"""Publishing the schema catalogue to carelog.schemas, keyed by fingerprint.

A reader in any language that meets an unknown fingerprint can look it up there.
"""

from __future__ import annotations

from schemas.catalogue import Catalogue, default_catalogue
from streams.producer import EventProducer, Outgoing
from streams.topics import SCHEMAS


def publish_schemas(producer: EventProducer, catalogue: Catalogue | None = None) -> int:
    """Append every released schema (its .avsc text) keyed by its fingerprint in hex."""
    catalogue = catalogue or default_catalogue()
    versions = catalogue.all()
    producer.send_many(
        Outgoing(
            SCHEMAS,
            key=v.fingerprint_hex,
            value=v.path.read_bytes(),
            headers=[("schema.name", v.name), ("schema.version", str(v.version))],
        )
        for v in versions
    )
    return len(versions)
