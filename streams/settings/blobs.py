"""The blob store: where payloads too big for an event go (streams/blobstore.py)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class BlobSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_BLOB_")

    threshold_bytes: int = Field(
        900_000,
        description="Payloads larger than this are kept in the blob store and the event carries "
        "a reference; keep it below kafka.message_max_bytes.",
    )
    uri: str | None = Field(
        None, description="Where big payloads go (file:///path); default file://<var_dir>/blobs."
    )
    attachment_inline_max_bytes: int = Field(
        262_144,
        validation_alias="CARELOG_ATTACHMENT_INLINE_MAX_BYTES",
        description="Largest document (HL7 v2 OBX ED, e.g. a PDF) kept inline in "
        "DocumentReference.content.attachment.data; bigger ones go to the blob store and the "
        "attachment carries its url, size and hash. Keep it well below kafka.message_max_bytes.",
    )
