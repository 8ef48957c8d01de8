"""Every released version of every event schema, parsed once and indexed by fingerprint.

Schema files live in schemas/avro/ as <RecordName>.v<N>.avsc. A released file is never
edited or deleted: a change is a new file with the next version number, and the highest
version of each record is the one carelog writes. Old versions stay so that any event ever
written can be resolved by its fingerprint and read with the current schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

AVRO_DIR = Path(__file__).parent / "avro"
_FILE_NAME = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    """One released version of one event schema."""

    name: str
    version: int
    path: Path
    parsed: Any  # fastavro's parsed schema
    canonical_form: str
    fingerprint: bytes  # CRC-64-AVRO, little-endian, as in the single-object header

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


@dataclass(frozen=True)
class Catalogue:
    """All schema versions, by fingerprint and by record name."""

    by_fingerprint: dict[bytes, SchemaVersion]
    versions: dict[str, tuple[SchemaVersion, ...]]  # oldest first

    def current(self, name: str) -> SchemaVersion:
        try:
            return self.versions[name][-1]
        except KeyError:
            known = ", ".join(sorted(self.versions))
            raise KeyError(f"no schema named {name!r} in {AVRO_DIR}; known: {known}") from None

    def all(self) -> list[SchemaVersion]:
        return [v for name in sorted(self.versions) for v in self.versions[name]]


def crc64_fingerprint(canonical_form: str) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint, little-endian as the single-object header wants."""
    value = int(fingerprint(canonical_form, "CRC-64-AVRO"), 16)
    return value.to_bytes(8, "little")


def load_schema_file(path: Path) -> SchemaVersion:
    match = _FILE_NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path}: schema files must be named <RecordName>.v<N>.avsc")
    raw = json.loads(path.read_text(encoding="utf-8"))
    name = match["name"]
    if raw.get("name") != name:
        raise ValueError(f"{path}: record name {raw.get('name')!r} does not match the file name")
    # Each file is parsed on its own (no shared named types), so versions never clash.
    parsed = parse_schema(raw, named_schemas={})
    canonical = to_parsing_canonical_form(parsed)
    return SchemaVersion(
        name=name,
        version=int(match["version"]),
        path=path,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=crc64_fingerprint(canonical),
    )


def load_catalogue(folder: Path = AVRO_DIR) -> Catalogue:
    loaded = [load_schema_file(p) for p in sorted(folder.glob("*.avsc"))]
    if not loaded:
        raise FileNotFoundError(f"no .avsc files in {folder}")
    by_fp: dict[bytes, SchemaVersion] = {}
    versions: dict[str, list[SchemaVersion]] = {}
    for sv in loaded:
        clash = by_fp.get(sv.fingerprint)
        if clash is not None:
            raise ValueError(f"{sv.path} and {clash.path} have the same fingerprint")
        by_fp[sv.fingerprint] = sv
        versions.setdefault(sv.name, []).append(sv)
    ordered = {n: tuple(sorted(vs, key=lambda v: v.version)) for n, vs in versions.items()}
    for name, vs in ordered.items():
        numbers = [v.version for v in vs]
        if numbers != list(range(1, len(vs) + 1)):
            raise ValueError(
                f"{name}: versions {numbers} have a gap; released files are never deleted"
            )
    return Catalogue(by_fingerprint=by_fp, versions=ordered)


@cache
def default_catalogue() -> Catalogue:
    return load_catalogue()
