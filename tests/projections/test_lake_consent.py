"""Consent honoured by the de-identified lake export (projections/lake/consent.py): the rule
in process, and the sink against the real broker."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from projections.lake import consent
from projections.lake.changes import Change
from projections.lake.deidentify import Deidentifier
from projections.lake.sink import LakeSink
from streams.producer import EventProducer
from streams.settings import Settings
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import append, change, read

SECRET = "a-research-secret-of-32-bytes!!!"


def _consent(cid: str, patient: str, status: str = "active", **provision: Any) -> dict[str, Any]:
    return {"resourceType": "Consent", "id": cid, "status": status,
            "scope": {"coding": [{"code": "research"}]}, "category": [{"text": "research"}],
            "patient": {"reference": f"Patient/{patient}"},
            "provision": {"type": "deny", **provision}}  # fmt: skip


def _changes(*resources: dict[str, Any] | tuple[str, str], start: int = 0) -> list[Change]:
    """Changes at offsets start, start+1, ... of partition 0 (a (type, id) pair: a delete)."""
    out = []
    for i, r in enumerate(resources):
        event = change(None, 2, rtype=r[0], rid=r[1]) if isinstance(r, tuple) else change(r)
        out.append(Change.of(event, "t", 0, start + i))
    return out


@pytest.mark.parametrize(
    ("provision", "status", "denied"),
    [
        ({}, "active", True),  # no actor, no purpose: everyone, every purpose
        ({"purpose": [{"code": "HRESCH"}]}, "active", True),
        ({"purpose": [{"code": "CLINTRCH"}, {"code": "TREAT"}]}, "active", True),
        ({"purpose": [{"code": "TREAT"}]}, "active", False),  # care, not research
        ({"actor": [{"reference": {"reference": "Device/carelog-lake"}}]}, "active", True),
        ({"actor": [{"reference": {"identifier": {"value": "carelog-lake"}}}]}, "active", True),
        ({"actor": [{"reference": {"reference": "Device/app-1"}}]}, "active", False),
        ({}, "inactive", False),
    ],
)
def test_which_consents_deny_the_lake(provision: dict[str, Any], status: str, denied: bool) -> None:
    [c] = _changes(_consent("c1", "x", status, **provision))
    assert consent.denied_by(c) == ("x" if denied else None)


def test_denials_fold_consents_in_log_order_and_say_who_is_newly_denied() -> None:
    denials = consent.Denials({}, {})
    first = _changes(_consent("c1", "x"), fx.observation("o1", "x"), start=0)
    assert denials.apply(first, {("t", 0): 1}) == {"x"}
    assert consent.belongs_to_any(first[1], denials.patients)
    assert not consent.belongs_to_any(_changes(fx.observation("o2", "y"))[0], denials.patients)
    assert denials.apply(first, {("t", 0): 1}) == set()  # already folded: not twice
    # A second Consent for x, then the first deleted: x stays denied by the second.
    assert denials.apply(_changes(_consent("c2", "x"), ("Consent", "c1"), start=2), {}) == set()
    assert denials.patients == {"x"}
    lifted = _changes({**_consent("c2", "x", "inactive")}, start=4)
    assert denials.apply(lifted, {}) == set() and denials.patients == set()
    table = consent.flatten(first + lifted).rows.to_pylist()
    assert [(r["_resource_id"], r["patient"]) for r in table] == [("c1", "x")]


@pytest.mark.kafka
def test_a_consent_keeps_a_patient_out_of_the_deidentified_tables(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    settings = kafka_settings.amended(
        lake={
            "uri": str(tmp_path / "lake"),
            "group_id": f"test-lake-consent-{uuid.uuid4()}",
            "batch_max_seconds": 0.3,
            "deidentify_secret": SecretStr(SECRET),
        }
    )
    p = uuid.uuid4().hex[:12]
    x, y = f"{p}-x", f"{p}-y"
    deid = Deidentifier(SECRET.encode())

    def observations(deidentified: bool = True) -> set[str]:
        prefix = "deidentified/" if deidentified else ""
        ids = read(f"{settings.lake.uri}/{prefix}silver/observation").column("_resource_id")
        names = {f"{p}-{n}" for n in ("x1", "x2", "x3", "x4", "y1", "y2")}
        by_key = {deid.resource_id("Observation", n) if deidentified else n: n for n in names}
        return {by_key[i] for i in ids.to_pylist() if i in by_key}

    def sink(*resources: dict[str, Any]) -> LakeSink:
        with EventProducer(kafka_settings) as producer:
            append(producer, [change(r) for r in resources])
        s = LakeSink(settings)  # a new sink each time: a restart
        s.run(caught_up=True)
        return s

    sink(fx.patient(x), fx.observation(f"{p}-x1", x), fx.patient(y), fx.observation(f"{p}-y1", y))
    assert observations() == {f"{p}-x1", f"{p}-y1"}

    denial = _consent(f"{p}-c", x, purpose=[{"code": "HRESCH"}])
    sink(denial, fx.observation(f"{p}-x2", x), fx.observation(f"{p}-y2", y))
    assert observations() == {f"{p}-y1", f"{p}-y2"}  # x's earlier rows gone, x2 kept out
    patients = read(f"{settings.lake.uri}/deidentified/silver/patient").column("_resource_id")
    assert deid.resource_id("Patient", x) not in patients.to_pylist()
    assert deid.resource_id("Patient", y) in patients.to_pylist()
    assert observations(deidentified=False) == {f"{p}-{n}" for n in ("x1", "x2", "y1", "y2")}

    restarted = sink(fx.observation(f"{p}-x3", x))  # the denial survives a restart
    assert restarted.denials is not None and x in restarted.denials.patients
    assert f"{p}-x3" not in observations()

    lifted = {**denial, "status": "inactive"}
    with EventProducer(kafka_settings) as producer:
        append(producer, [change(lifted, 2)])
    # Written before x4 arrives: the log orders the lift and x4 only within a partition, and
    # x4 read first would be kept out, as it is while the denial stands.
    sink()
    sink(fx.observation(f"{p}-x4", x))
    assert observations() == {f"{p}-y1", f"{p}-y2", f"{p}-x4"}  # new rows only
