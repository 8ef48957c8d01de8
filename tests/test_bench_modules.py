"""Every benchmark module imports: `make bench` is not part of `make test`, so a moved name
would otherwise break a bench unnoticed until someone measures."""

from __future__ import annotations

import importlib

import pytest

from streams.settings import PROJECT_ROOT

BENCHES = sorted(p.stem for p in (PROJECT_ROOT / "tests" / "bench").glob("*.py"))


@pytest.mark.parametrize("name", [b for b in BENCHES if b != "__init__"])
def test_bench_module_imports(name: str) -> None:
    importlib.import_module(f"tests.bench.{name}")


def test_the_worker_bench_sends_a_returning_patients_messages_for_that_patient() -> None:
    """`bench_worker_cpu --patients`: each message is for a patient seen before (the edge
    seals it with that patient's key), with orders of its own."""
    from processors.inbound_owner import inbound_owner
    from schemas.events import Format
    from tests.bench.bench_processors import inbound

    first, later, other = inbound(100, 7), inbound(200, 7), inbound(100, 8)
    owner = inbound_owner(Format.hl7v2, first.payload or b"")
    assert owner is not None and owner == inbound_owner(Format.hl7v2, later.payload or b"")
    assert inbound_owner(Format.hl7v2, other.payload or b"") not in (None, owner)
    assert b"MRN7^" in (later.payload or b"") and first.payload != later.payload
