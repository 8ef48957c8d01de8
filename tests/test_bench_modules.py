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
