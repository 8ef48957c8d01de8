"""Golden tests: each corpus message -> the FHIR resources written by hand in golden/*.json.

Ids in the golden files are written as the business key they derive from:
"uuid5:Patient|urn:carelog:sid:NWH|MRN5520" (a nested key in braces), so a reader sees why
each id is what it is; the test turns them into the UUIDv5 values before comparing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from processors.hl7v2 import ids
from processors.hl7v2.errors import MappingError
from processors.hl7v2.mapping import map_hl7v2
from processors.validation import resource_issues

TESTS = Path(__file__).resolve().parents[2]
GOLDEN = TESTS / "processors" / "golden"
CASES = sorted(GOLDEN.glob("*.json"))
_NESTED = re.compile(r"\{([^{}]*)\}")


def _source(golden: Path) -> Path:
    name = golden.with_suffix(".hl7").name
    for folder in sorted((TESTS / "corpus").glob("hl7v2*")):
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(name)


def _key_to_id(key: str) -> str:
    while _NESTED.search(key):
        key = _NESTED.sub(lambda m: _key_to_id(m.group(1)), key)
    rtype, *parts = key.split("|")
    return ids.resource_id(rtype, *parts)


def resolve(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: resolve(v) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v) for v in node]
    if isinstance(node, str) and "uuid5:" in node:
        prefix, key = node.split("uuid5:", 1)
        return prefix + _key_to_id(key)
    return node


def test_every_corpus_message_has_a_golden() -> None:
    names = {p.stem for p in CASES}
    assert {p.stem for p in (TESTS / "corpus" / "hl7v2").glob("*.hl7")} <= names


@pytest.mark.parametrize("golden", CASES, ids=lambda p: p.stem)
def test_golden(golden: Path) -> None:
    expected = json.loads(golden.read_text(encoding="utf-8"))
    payload = _source(golden).read_bytes()
    if "error" in expected:
        with pytest.raises(MappingError) as info:
            map_hl7v2(payload)
        assert type(info.value).__name__ == expected["error"]["type"]
        assert info.value.location == expected["error"]["location"]
        return
    result = map_hl7v2(payload)
    want = resolve(expected["resources"])
    assert [f"{r['resourceType']}/{r['id']}" for r in result.resources] == [
        f"{r['resourceType']}/{r['id']}" for r in want
    ]
    for got, exp in zip(result.resources, want, strict=True):
        assert got == exp, got["resourceType"]
    assert result.business_time == expected["business_time"]
    assert [i for r in result.resources for i in resource_issues(r)] == []
    # A malformed optional field is dropped with a warning naming it (tolerance.POLICY).
    assert [
        {"location": w.location, "severity": w.severity} for w in result.warnings
    ] == expected.get("warnings", [])
