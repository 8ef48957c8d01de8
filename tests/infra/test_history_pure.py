"""The pure parts of rejected/lineage/replay: filters, references, starts, field diffs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from infra.history.lineage import LineageError, parse_reference
from infra.history.rejections import Selection
from infra.replay.diff import field_changes
from infra.replay.names import Shadow, ShadowError
from infra.replay.start import parse_start
from schemas.events import Rejected
from streams.settings import Settings


def rejected(**fields: object) -> Rejected:
    base: dict[str, object] = {
        "event_id": "r1", "rejected_at": datetime(2026, 5, 1, 12, tzinfo=UTC),
        "stage": "translate", "reason": "PID-3: no identifier", "operation_outcome": "{}",
        "original": b"", "sender": "lab",
    }  # fmt: skip
    return Rejected(**{**base, **fields})  # type: ignore[arg-type]


def test_a_selection_matches_only_when_every_set_filter_does() -> None:
    event = rejected()
    assert Selection().matches(event)
    assert Selection(stage="translate", sender="lab", reason="pid-3").matches(event)
    assert not Selection(stage="version").matches(event)
    assert not Selection(sender="ris").matches(event)
    assert not Selection(reason="OBX").matches(event)
    assert not Selection(ids=frozenset({"r2"})).matches(event)
    assert Selection(since=datetime(2026, 5, 1, 12, tzinfo=UTC)).matches(event)
    assert not Selection(until=datetime(2026, 5, 1, 12, tzinfo=UTC)).matches(event)


def test_references_parse_with_and_without_a_version() -> None:
    assert parse_reference("Patient/abc-1") == ("Patient", "abc-1", None)
    assert parse_reference("Observation/x.2/_history/3") == ("Observation", "x.2", 3)
    for bad in ("Patient", "Patient/", "Patient/a b", "Patient/a/_history/x"):
        with pytest.raises(LineageError):
            parse_reference(bad)


def test_replay_starts_from_the_beginning_a_time_or_offsets() -> None:
    assert parse_start("beginning").from_beginning
    start = parse_start("2026-05-01T12:00:00")
    assert start.since_ms == int(datetime(2026, 5, 1, 12, tzinfo=UTC).timestamp() * 1000)
    offsets = parse_start("hl7v2:0=120,carelog.inbound.fhir:3=7").offsets
    assert offsets == {("carelog.inbound.hl7v2", 0): 120, ("carelog.inbound.fhir", 3): 7}
    for bad in ("yesterday", "hl7v2:x=1", "nosuch:0=1"):
        with pytest.raises(ValueError):
            parse_start(bad)


def test_field_changes_name_each_differing_leaf_by_its_path() -> None:
    old = {"name": [{"given": ["Ann"]}], "gender": "female", "active": True}
    new = {"name": [{"given": ["Ann", "B"]}], "gender": "male", "birthDate": "1970-01-01",
           "active": True}  # fmt: skip
    assert list(field_changes(old, new)) == [
        ("birthDate", None, "1970-01-01"),
        ("gender", "female", "male"),
        ("name[0].given[1]", None, "B"),
    ]
    assert list(field_changes(old, old)) == []


def test_shadow_names_stay_under_their_own_prefix(tmp_path: object) -> None:
    settings = Settings(var_dir=tmp_path)  # type: ignore[call-arg]
    shadow = Shadow.named("trial-1", settings)
    assert shadow.changes == "carelog.shadow.trial-1.fhir.changes"
    assert {t.name for t in shadow.topics("test")} == {
        "carelog.shadow.trial-1.fhir.changes", "carelog.shadow.trial-1.fhir.translated",
        "carelog.shadow.trial-1.rejected",
    }  # fmt: skip
    for bad in ("", "Upper", "a.b", "../x", "x" * 50):
        with pytest.raises(ShadowError):
            Shadow.named(bad, settings)


def test_partitions_merge_in_append_order_without_waiting_for_the_whole_log() -> None:
    from streams.log_scan import LogRecord, Position, _by_time

    def rec(partition: int, offset: int, ts: int) -> LogRecord:
        return LogRecord("t", partition, offset, ts, None, b"")

    stream: list[LogRecord | Position] = [
        rec(0, 0, 10), rec(0, 1, 30), rec(1, 0, 20), ("t", 0), rec(1, 1, 40), ("t", 1),
    ]  # fmt: skip
    seen: list[LogRecord | Position] = []

    def feed() -> Iterator[LogRecord | Position]:
        for item in stream:
            seen.append(item)
            yield item

    merged = _by_time(feed(), [("t", 0), ("t", 1)])
    assert next(merged).timestamp_ms == 10
    assert len(seen) == 3  # let out as soon as partition 1 had a record: not the whole log
    assert [r.timestamp_ms for r in merged] == [20, 30, 40]
