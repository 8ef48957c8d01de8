"""Every schema version ever released reads with the current one; the rules are enforced."""

from __future__ import annotations

import json
import shutil
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from fastavro import schemaless_reader
from fastavro.utils import generate_many

from schemas.catalogue import AVRO_DIR, SchemaVersion, default_catalogue, load_catalogue
from schemas.codec import HEADER_SIZE, AvroCodec, encode_with
from schemas.errors import UnknownFingerprint

RELEASED = default_catalogue().all()


def _fields(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for field in schema.get("fields", []):
        found.append(field)
        kind = field["type"]
        for sub in kind if isinstance(kind, list) else [kind]:
            if isinstance(sub, dict) and sub.get("type") == "record":
                found.extend(_fields(sub))
    return found


@pytest.mark.parametrize("version", RELEASED, ids=lambda v: v.path.name)
def test_data_written_with_each_released_version_reads_with_the_current(
    version: SchemaVersion,
) -> None:
    codec = AvroCodec()
    current = default_catalogue().current(version.name)
    for record in generate_many(version.parsed, 50):
        data = encode_with(version, record)
        as_written = schemaless_reader(BytesIO(data[HEADER_SIZE:]), version.parsed, None)
        name, read = codec.decode(data)
        assert name == version.name
        assert set(read) == {f["name"] for f in current.parsed["fields"]}
        for key, value in as_written.items():
            if key in read:
                assert read[key] == value
        _, plain = codec.decode(data, plain=True)  # the same fields, resolved alike
        assert set(plain) == set(read)


@pytest.mark.parametrize("version", RELEASED, ids=lambda v: v.path.name)
def test_every_field_has_a_doc(version: SchemaVersion) -> None:
    raw = json.loads(version.path.read_text())
    assert raw.get("namespace") == "io.carelog.events"
    assert raw.get("doc")
    missing = [f["name"] for f in _fields(raw) if not f.get("doc")]
    assert not missing, f"{version.path.name}: fields without doc: {missing}"


def test_a_reader_with_a_newer_schema_fills_defaults(tmp_path: Path) -> None:
    """Simulates the next release: v2 adds an optional field; v1 data must read with it."""
    for path in AVRO_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path)
    v1 = json.loads((AVRO_DIR / "InboundMessage.v1.avsc").read_text())
    v1["fields"].append(
        {"name": "priority", "type": ["null", "string"], "default": None, "doc": "Test field."}
    )
    (tmp_path / "InboundMessage.v2.avsc").write_text(json.dumps(v1))
    newer = load_catalogue(tmp_path)
    old = newer.versions["InboundMessage"][0]
    record = next(iter(generate_many(old.parsed, 1)))
    name, read = AvroCodec(newer).decode(encode_with(old, record))
    assert name == "InboundMessage"
    assert read["priority"] is None
    assert read["event_id"] == record["event_id"]


def test_a_gap_in_released_versions_is_refused(tmp_path: Path) -> None:
    shutil.copy(AVRO_DIR / "Rejected.v1.avsc", tmp_path / "Rejected.v2.avsc")
    with pytest.raises(ValueError, match="gap"):
        load_catalogue(tmp_path)


def test_an_old_reader_without_the_new_schema_says_what_is_missing(tmp_path: Path) -> None:
    for path in AVRO_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path)
    v2 = json.loads((AVRO_DIR / "Rejected.v1.avsc").read_text())
    v2["fields"].append({"name": "extra", "type": "int", "default": 0, "doc": "Test field."})
    (tmp_path / "Rejected.v2.avsc").write_text(json.dumps(v2))
    newer = load_catalogue(tmp_path)
    data = encode_with(
        newer.current("Rejected"), next(iter(generate_many(newer.current("Rejected").parsed, 1)))
    )
    with pytest.raises(UnknownFingerprint, match=r"carelog\.schemas"):
        AvroCodec().decode(data)
