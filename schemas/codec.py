"""Avro single-object encoding of carelog events (marker C3 01, CRC-64-AVRO fingerprint, datum).

Any Avro reader with the .avsc files can decode what carelog writes without a registry
server: the 8-byte fingerprint names the writer schema, and the reader resolves it against
its own (newer) schema by Avro's schema resolution rules.
"""

from __future__ import annotations

import json
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.catalogue import Catalogue, SchemaVersion, default_catalogue
from schemas.errors import CodecError, CorruptEvent, UnknownFingerprint
from schemas.flat_reader import Reader, flat_reader
from schemas.flat_writer import FlatWriter, flat_writer

MARKER = b"\xc3\x01"
HEADER_SIZE = len(MARKER) + 8


class AvroCodec:
    """Encodes records with the current schema of their name and decodes any released version."""

    def __init__(self, catalogue: Catalogue | None = None) -> None:
        self.catalogue = catalogue or default_catalogue()

    def encode(self, name: str, record: dict[str, Any]) -> bytes:
        schema = self.catalogue.current(name)
        return encode_with(schema, record)

    def writer_of(self, data: bytes) -> SchemaVersion:
        """The schema version that wrote these bytes, from the header alone."""
        if len(data) < HEADER_SIZE:
            raise CorruptEvent(
                f"expected at least {HEADER_SIZE} bytes (C3 01 + 8-byte fingerprint), got {len(data)}"
            )
        if data[:2] != MARKER:
            raise CorruptEvent(
                f"expected the Avro single-object marker C3 01, got {data[:2].hex(' ').upper()}"
            )
        fp = bytes(data[2:HEADER_SIZE])
        schema = self.catalogue.by_fingerprint.get(fp)
        if schema is None:
            known = ", ".join(
                f"{s.name} v{s.version} = {s.fingerprint_hex}" for s in self.catalogue.all()
            )
            raise UnknownFingerprint(
                f"writer schema fingerprint {fp.hex()} is not in the catalogue; expected one of: "
                f"{known}. Add the writer's .avsc to schemas/avro/ or read carelog.schemas."
            )
        return schema

    def decode(
        self, data: bytes, reader: str | None = None, *, plain: bool = False
    ) -> tuple[str, dict[str, Any]]:
        """Decode to (record name, record), read with the current schema of that name.

        `reader` names the record expected; a different record raises CodecError. `plain`
        leaves logical types as Avro stores them (timestamp-micros as an int of microseconds
        since the epoch): about three times cheaper, for readers that write them on as such.
        """
        writer = self.writer_of(data)
        if reader is not None and writer.name != reader:
            raise CodecError(f"expected a {reader} event, got {writer.name} v{writer.version}")
        current = self.catalogue.current(writer.name)
        if current is writer and (read := _flat_reader(writer, plain)) is not None:
            try:
                record, end = read(data, HEADER_SIZE)
            except Exception as exc:  # IndexError (past the end), ValueError, UnicodeError
                raise _not_a_datum(writer, exc) from exc
            if end != len(data):
                raise _trailing(writer, len(data) - end)
            return writer.name, record
        stream = BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            if plain:
                writer_schema, reader_schema = _plain(writer.path), _plain(current.path)
            else:
                writer_schema, reader_schema = writer.parsed, current.parsed
            resolved = schemaless_reader(
                stream, writer_schema, None if current is writer else reader_schema
            )
        except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, ...
            raise _not_a_datum(writer, exc) from exc
        if stream.tell() != len(data):
            raise _trailing(writer, len(data) - stream.tell())
        assert isinstance(resolved, dict)
        return writer.name, resolved


def _not_a_datum(writer: SchemaVersion, exc: Exception) -> CorruptEvent:
    return CorruptEvent(
        f"bytes after the header are not a valid {writer.name} v{writer.version} datum: "
        f"{type(exc).__name__}: {exc}"
    )


def _trailing(writer: SchemaVersion, count: int) -> CorruptEvent:
    return CorruptEvent(f"{count} trailing bytes after a {writer.name} v{writer.version} datum")


_flat_readers: dict[tuple[bytes, bool], Reader | None] = {}


def _flat_reader(schema: SchemaVersion, plain: bool) -> Reader | None:
    """schemas/flat_reader.py's reader of `schema`, made once per schema version and mode."""
    key = (schema.fingerprint, plain)
    if key not in _flat_readers:
        _flat_readers[key] = flat_reader(schema.parsed, plain=plain)
    return _flat_readers[key]


_flat_writers: dict[bytes, FlatWriter | None] = {}


def _flat_writer(schema: SchemaVersion) -> FlatWriter | None:
    """schemas/flat_writer.py's writer of `schema`, made once per schema version."""
    if schema.fingerprint not in _flat_writers:
        _flat_writers[schema.fingerprint] = flat_writer(schema.parsed)
    return _flat_writers[schema.fingerprint]


@cache
def _plain(path: Path) -> Any:
    """The schema in `path` parsed without logical types (their values read as the base type)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return parse_schema(_without_logical_types(raw), named_schemas={})


def _without_logical_types(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_logical_types(n) for n in node]
    if isinstance(node, dict):
        return {k: _without_logical_types(v) for k, v in node.items() if k != "logicalType"}
    return node


def encode_with(schema: SchemaVersion, record: dict[str, Any]) -> bytes:
    """Encode with one specific schema version (the current one in production, old ones in tests)."""
    writer = _flat_writer(schema)
    if writer is not None:
        try:
            return MARKER + schema.fingerprint + writer.write(record)
        except Exception:  # a value not of the plain kind: fastavro writes it, or says why not
            pass
    out = BytesIO()
    out.write(MARKER)
    out.write(schema.fingerprint)
    try:
        schemaless_writer(out, schema.parsed, record)
    except Exception as exc:
        raise CodecError(f"record does not fit {schema.name} v{schema.version}: {exc}") from exc
    return out.getvalue()
