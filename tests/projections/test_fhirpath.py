"""The compiled FHIRPath subset gives exactly what fhirpathpy gives (no broker needed)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from projections.fhirpath import compile_path, fhirpathpy_path
from projections.lake.views import SHIPPED_VIEWS, Select, load_views
from tests.projections import fhir_samples as fx

SAMPLES = [
    *fx.corpus_like("s"),
    {"resourceType": "Patient", "id": "bare"},
    {
        **fx.patient("dead"),
        "deceasedDateTime": "2020-01-01",
        "deceasedBoolean": None,
        "link": [
            {"type": "replaced-by", "other": {"reference": "Patient/survivor"}},
            {"type": "seealso", "other": {"reference": "http://x.org/fhir/Patient/p9/_history/2"}},
        ],
        "name": [{"family": "A", "given": []}, {"use": "official", "family": "B", "given": ["x"]}],
    },
    {**fx.observation("str", "p"), "valueQuantity": None, "valueString": "positive"},
    {
        **fx.observation("cc", "p"),
        "valueQuantity": None,
        "valueCodeableConcept": {"coding": [{"code": "260385009"}]},
    },
    {**fx.observation("bool", "p"), "valueQuantity": None, "valueBoolean": False},
    {**fx.observation("int", "p"), "valueQuantity": {"value": 5}},
]
EXTRA = [
    ("Patient", "name.given"),
    ("Patient", "name[1].family"),
    ("Patient", "name.family[0]"),
    ("Patient", "Patient.name.family"),
    ("Patient", "name.where(use = 'official').given.first()"),
    ("Patient", "name.where(use != 'official').family"),
    ("Patient", "identifier.exists()"),
    ("Patient", "telecom.empty()"),
    ("Patient", "name.given.count()"),
    ("Patient", "name.given.join(',')"),
    ("Patient", "name.given.join()"),
    ("Patient", "deceased"),
    ("Patient", "link.other.getReferenceKey()"),
    ("Patient", "link.other.getReferenceKey(Patient)"),
    ("Patient", "link.other.getReferenceKey(Group)"),
    ("Patient", "active = true"),
    ("Patient", "active = false"),
    ("Patient", "gender = 'male'"),
    ("Patient", "gender != 'male'"),
    ("Patient", "name.last().family"),
    ("Observation", "value"),
    ("Observation", "value.ofType(integer)"),
    ("Observation", "component.value.ofType(Quantity).value"),
    ("Observation", "component.code.coding.code"),
    ("Observation", "referenceRange.low.value"),
    ("Observation", "code.coding.where(system = 'http://loinc.org').code"),
]
FALLBACK = [
    ("Patient", "name.select(family)"),
    ("Patient", "iif(active, 'y', 'n')"),
    ("Patient", "birthDate > @2000-01-01"),
    ("Observation", "value is Quantity"),
]


def normalise(value: Any) -> Any:
    """fhirpathpy gives Decimal for FHIR decimals, orjson float: compare numbers as floats."""
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return round(float(value), 9)  # Decimal arithmetic (fhirpathpy) against float's
    return value


def agree(expression: str, fast: list[Any], slow: list[Any]) -> bool:
    """Equal answers; join() of nothing is "" here (issue 14) where fhirpathpy gives empty."""
    if ".join(" in expression and fast == [""] and slow == []:
        return True
    return bool(normalise(fast) == normalise(slow))


def view_paths() -> list[tuple[str, str, str]]:
    """(resource type, context, expression) of every path in the shipped views."""
    out = []

    def walk(resource: str, select: Select) -> None:
        if select.for_each is not None:
            out.append((resource, select.for_each.context or "", select.for_each.expression))
        for col in select.columns:
            out.append((resource, col.path.context or "", col.path.expression))
        for sub in (*select.selects, *select.union_all):
            walk(resource, sub)

    for view in load_views(SHIPPED_VIEWS):
        walk(view.resource, view.root)
    return out


@pytest.mark.parametrize("resource_type,context,expression", view_paths())
def test_every_shipped_view_path_is_compiled_and_equal(
    resource_type: str, context: str, expression: str
) -> None:
    fast = compile_path(expression, context)
    slow = fhirpathpy_path(expression, context)
    assert fast.compiled, f"{expression} falls back to fhirpathpy"
    nodes = [r for r in SAMPLES if r["resourceType"] == resource_type]
    if "." in context:  # a forEach element path: evaluate on every such element of the samples
        member = context.split(".", 1)[1]
        nodes = [item for r in nodes for item in compile_path(member, resource_type)(r)]
    for node in nodes:
        assert agree(expression, fast(node), slow(node)), (expression, node.get("id"))


@pytest.mark.parametrize("resource_type,expression", EXTRA)
def test_more_expressions_equal(resource_type: str, expression: str) -> None:
    fast = compile_path(expression, resource_type)
    assert fast.compiled
    slow = fhirpathpy_path(expression, resource_type)
    for node in (r for r in SAMPLES if r["resourceType"] == resource_type):
        assert agree(expression, fast(node), slow(node)), (expression, node["id"])


@pytest.mark.parametrize("resource_type,expression", FALLBACK)
def test_outside_the_subset_fhirpathpy_answers(resource_type: str, expression: str) -> None:
    path = compile_path(expression, resource_type)
    assert not path.compiled
    node = next(r for r in SAMPLES if r["resourceType"] == resource_type)
    assert path(node) == fhirpathpy_path(expression, resource_type)(node)
