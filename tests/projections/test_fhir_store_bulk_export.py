"""The export writer on its own (no API): one snapshot while the store changes, files split,
pretty-printed JSON made one line, cancelling, levels and the log position."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from projections.fhir_store import FhirStore, bulk_export
from projections.fhir_store.bulk_export import ExportCancelled, ExportRequest, export
from projections.fhir_store.errors import StoreError
from tests.projections.fhir_store_support import Offsets, changed, write_store


def patient(n: int) -> dict[str, object]:
    return {"resourceType": "Patient", "id": f"p{n:03d}", "name": [{"family": f"F{n}"}]}


def lines(out: Path, names: list[str]) -> list[dict[str, object]]:
    return [orjson.loads(line) for name in names for line in (out / name).read_text().splitlines()]


def test_a_snapshot_split_into_files_at_the_log_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk_export, "_FETCH", 5)  # the change lands between two fetches
    offsets = Offsets()
    store = FhirStore.open(tmp_path / "s.sqlite")
    store.applier().apply(offsets.records(changed(patient(n)) for n in range(25)))
    out = tmp_path / "out"
    out.mkdir()
    applier = store.applier()
    seen: list[int] = []

    def progress(written: int) -> bool:
        if not seen:  # the store changes while the export runs: the export must not see it
            applier.apply(offsets.records([changed(patient(99)), changed(patient(20), 2,
                                                                     delete=True)]))  # fmt: skip
        seen.append(written)
        return True

    request = ExportRequest("system", (), max_per_file=10)
    result = export(tmp_path / "s.sqlite", request, out, progress)
    assert [(f.name, f.count) for f in result.files] == [
        ("Patient-1.ndjson", 10), ("Patient-2.ndjson", 10), ("Patient-3.ndjson", 5)]  # fmt: skip
    got = lines(out, [f.name for f in result.files])
    assert [r["id"] for r in got] == [f"p{n:03d}" for n in range(25)]  # p020 not yet deleted
    assert result.position == {f"{offsets.topic}:{offsets.partition}": 24}
    assert seen[:2] == [5, 10] and seen[-1] == 25
    again = tmp_path / "again"
    again.mkdir()
    later = export(tmp_path / "s.sqlite", request, again)
    ids = [r["id"] for r in lines(again, [f.name for f in later.files])]
    assert "p099" in ids and "p020" not in ids
    assert later.position == {f"{offsets.topic}:{offsets.partition}": 26}
    store.close()


def test_pretty_printed_json_is_written_on_one_line(tmp_path: Path) -> None:
    event = changed(patient(1))
    pretty = orjson.dumps(orjson.loads(event.resource or ""), option=orjson.OPT_INDENT_2).decode()
    write_store(tmp_path / "s.sqlite", [dataclasses.replace(event, resource=pretty)])
    out = tmp_path / "out"
    out.mkdir()
    result = export(tmp_path / "s.sqlite", ExportRequest("system", ("Patient",)), out)
    text = (out / result.files[0].name).read_text()
    assert text.count("\n") == 1 and orjson.loads(text) == orjson.loads(pretty)


def test_cancel_and_an_unknown_group(tmp_path: Path) -> None:
    write_store(tmp_path / "s.sqlite", [changed(patient(n)) for n in range(5)])
    with pytest.raises(ExportCancelled):
        export(tmp_path / "s.sqlite", ExportRequest("system", ()), tmp_path, lambda n: False)
    with pytest.raises(StoreError, match="Group/g1 is not known"):
        export(tmp_path / "s.sqlite", ExportRequest("group", (), group="g1"), tmp_path)
