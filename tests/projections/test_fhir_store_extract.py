"""The compiled FHIRPath extractors select exactly what fhirpathpy selects."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.fhir_store.definitions import RESOURCE_TYPES, load_registry, split_union
from projections.fhir_store.extract import extractors, index_rows
from projections.fhirpath import CHOICES, compile_path, fhirpathpy_path
from projections.fhirpath.search import branch_steps, root_keys
from tests.projections.test_fhir_store_search import RESOURCES


def canonical(values: list[Any]) -> set[bytes]:
    def plain(v: Any) -> Any:
        if isinstance(v, bool):
            return v
        if isinstance(v, int | float):
            return float(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    return {orjson.dumps(plain(v), option=orjson.OPT_SORT_KEYS) for v in values}


def assert_same(resource: dict[str, Any]) -> None:
    for ex in extractors(resource["resourceType"]):
        reference = fhirpathpy_path(ex.param.expression, ex.param.base)
        try:
            expected = reference(resource)
        except ValueError as exc:
            # `x as T` on several items is an error in FHIRPath (fhirpathpy raises); the
            # compiled form reads it item by item, like ofType(T): pin that difference.
            assert "singleton" in str(exc)
            assert " as " in ex.param.expression or ".as(" in ex.param.expression
            continue
        assert canonical(ex.extract(resource)) == canonical(expected), (
            f"{ex.param.base}.{ex.param.name}: {ex.param.expression} on {resource}"
        )


def test_nearly_every_definition_compiles() -> None:
    registry = load_registry()
    total = sum(len(p) for p in registry.by_type.values())
    fallback = [
        f"{t}.{name}"
        for t, params in registry.by_type.items()
        for name, p in params.items()
        if not compile_path(p.expression, t).compiled
    ]
    assert total > 300
    assert fallback == []  # the one odd form (Patient.deceased) is compiled by pattern


def test_every_type_has_its_official_parameters() -> None:
    registry = load_registry()
    assert set(registry.by_type) == set(RESOURCE_TYPES)
    assert registry.params("Observation")["patient"].expression == (
        "Observation.subject.where(resolve() is Patient)"
    )
    assert registry.params("Patient")["_tag"].expression == "Patient.meta.tag"
    assert registry.params("Condition")["onset-date"].expression == (
        "Condition.onset.as(dateTime) | Condition.onset.as(Period)"
    )


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: f"{r['resourceType']}/{r['id']}")
def test_compiled_equals_fhirpathpy_on_samples(resource: dict[str, Any]) -> None:
    assert_same(resource)


# -- generated resources: every element a search expression reads, in random shapes ------

text = st.text(alphabet="abcAÉé xyz-|,", min_size=0, max_size=6)
code = st.sampled_from(["a", "b", "8867-4", "final", "email", "phone", "true"])
system = st.sampled_from(["http://loinc.org", "email", "phone", "urn:x", ""])
coding = st.fixed_dictionaries({}, optional={"system": system, "code": code, "display": text})
concept = st.fixed_dictionaries({}, optional={"coding": st.lists(coding, max_size=2), "text": text})
reference = st.fixed_dictionaries(
    {},
    optional={
        "reference": st.sampled_from(
            [
                "Patient/p1",
                "Practitioner/x",
                "http://h/fhir/Patient/p2",
                "Location/l/_history/2",
                "#c",
                "Group/g",
                "Device/d",
                "urn:uuid:1",
                "",
            ]
        ),
        "display": text,
    },
)
date = st.sampled_from(["2020", "2020-02", "2020-02-03", "2020-02-03T10:11:12Z", "bad"])
period = st.fixed_dictionaries({}, optional={"start": date, "end": date})
quantity = st.fixed_dictionaries(
    {},
    optional={
        "value": st.one_of(st.integers(-5, 5), st.floats(-10, 10, allow_nan=False)),
        "unit": text,
        "system": system,
        "code": code,
    },
)
identifier = st.fixed_dictionaries({}, optional={"system": system, "value": text, "type": concept})
contact = st.fixed_dictionaries({}, optional={"system": system, "value": text, "use": code})
name = st.fixed_dictionaries(
    {}, optional={"family": text, "given": st.lists(text, max_size=2), "text": text}
)
address = st.fixed_dictionaries({}, optional={"city": text, "line": st.lists(text, max_size=2),
                                              "postalCode": text, "use": code})  # fmt: skip
leaf = st.one_of(concept, reference, period, quantity, identifier, contact, name, address, coding,
                 date, text, st.booleans())  # fmt: skip


def paths(resource_type: str) -> list[list[str]]:
    """JSON key paths each search expression of the type reads (choice keys spelled out)."""
    out = []
    for p in load_registry().params(resource_type).values():
        for branch in split_union(p.expression):
            steps = re.sub(r"^\((.+?) as (\w+)\)", r"\1.as(\2)", branch.strip())
            steps = re.sub(r"^(.+?) as (\w+)$", r"\1.as(\2)", steps)
            keys: list[str] = []
            trail = resource_type
            for step in steps.split(".")[1:]:
                picked = re.fullmatch(r"as\((\w+)\)", step)
                if picked and keys:
                    keys[-1] = keys[-1].split("|")[0] + "|" + picked.group(1)
                elif step.isidentifier():
                    trail += "." + step
                    choice = CHOICES.get(trail)
                    keys.append(step + ("|" + "|".join(choice) if choice else ""))
            if keys:
                out.append(keys)
    return out


TYPED = {
    "datetime": date, "instant": date, "period": period, "quantity": quantity, "age": quantity,
    "duration": quantity, "range": st.fixed_dictionaries({}, optional={"low": quantity, "high": quantity}),
    "string": text, "codeableconcept": concept, "boolean": st.booleans(),
    "sampleddata": st.fixed_dictionaries({"origin": quantity}), "reference": reference,
    "timing": st.fixed_dictionaries({}, optional={"event": st.lists(date, max_size=2)}),
}  # fmt: skip


@st.composite
def along(draw: st.DrawFn, keys: list[str], picks: dict[str, str], typed: str | None = None) -> Any:
    """A value along `keys`; one type per choice element (`picks`), as FHIR allows."""
    if not keys:
        return draw(TYPED.get((typed or "").lower(), leaf))
    name, *types = keys[0].split("|")
    key = name
    chosen = None
    if types:
        chosen = picks.get(name)  # an earlier path's pick wins: one type per element
        if chosen is None:
            chosen = picks[name] = draw(st.sampled_from(types))
        key = name + chosen[0].upper() + chosen[1:]
    value = draw(along(keys[1:], picks, chosen))
    if draw(st.booleans()):
        value = [value, draw(along(keys[1:], picks, chosen))]
    return {key: value}


def merge(a: Any, b: Any) -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        return {**a, **{k: merge(a[k], v) if k in a else v for k, v in b.items()}}
    return b


def prune(value: Any) -> Any:
    """FHIR JSON has no empty objects, arrays or strings: drop them, as a parser would."""
    if isinstance(value, dict):
        kept = {k: prune(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in ({}, [], "", None)}
    if isinstance(value, list):
        kept_items = [prune(v) for v in value]
        return [v for v in kept_items if v not in ({}, [], "", None)]
    return value


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any]:
    resource_type = draw(st.sampled_from(RESOURCE_TYPES))
    options = paths(resource_type)
    body: dict[str, Any] = {}
    picks: dict[str, str] = {}
    for keys in draw(st.lists(st.sampled_from(options), min_size=1, max_size=6)):
        body = merge(body, draw(along(keys, picks)))
    return {**prune(body), "resourceType": resource_type, "id": "x"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resources())
def test_compiled_equals_fhirpathpy_on_generated_resources(resource: dict[str, Any]) -> None:
    assert_same(resource)
    assert index_rows(resource["resourceType"], resource) == rows_via_fhirpathpy(resource)


def rows_via_fhirpathpy(resource: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """The index rows computed from fhirpathpy's values, every parameter evaluated."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for ex in extractors(resource["resourceType"]):
        try:
            values = fhirpathpy_path(ex.param.expression, ex.param.base)(resource)
        except ValueError:  # `as` on several items: see assert_same
            values = ex.extract(resource)
        rows = ex.rows(values)
        if rows:
            out.setdefault(ex.table, []).extend((ex.param.pid, *r) for r in rows)
    return out


# -- the per-type plan: shared branches evaluated once, choices narrowed by `as` ----------


def test_a_branch_shared_by_parameters_is_one_branch_of_the_plan() -> None:
    from projections.fhir_store.extract import _plan

    plan = _plan("Observation")
    pids = {p.name: p.pid for p in load_registry().params("Observation").values()}
    by_pid = {emit.pid: emit.branches for emit in plan.emits}
    # `code` is Observation.code; `combo-code` is Observation.code | Observation.component.code
    assert set(by_pid[pids["code"]]) < set(by_pid[pids["combo-code"]])
    uses = sum(
        len(split_union(p.expression)) for p in load_registry().params("Observation").values()
    )
    assert len(plan.branches) < uses


def test_each_step_runs_at_most_once_per_resource() -> None:
    """`Patient.address.city` and `Patient.address.state` walk `Patient.address` once."""
    from projections.fhir_store.extract import _plan

    plan = _plan("Patient")
    params = load_registry().params("Patient").values()
    walked = sum(
        len(branch_steps(b, "Patient") or ()) for p in params for b in split_union(p.expression)
    )
    assert len(plan.steps) < walked
    calls: list[int] = []
    saved = list(plan.steps)
    try:
        for i, step in enumerate(saved):

            def counted(nodes: list[Any], i: int = i, inner: Any = step) -> list[Any]:
                calls.append(i)
                return inner(nodes)  # type: ignore[no-any-return]

            plan.steps[i] = counted
        resource = {
            "resourceType": "Patient", "id": "p",
            "address": [{"city": "Lyon", "state": "Rhone", "postalCode": "69001"}],
            "name": [{"family": "Dupont", "given": ["Jean"]}],
            "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}],
        }  # fmt: skip
        rows = index_rows("Patient", resource)
    finally:
        plan.steps[:] = saved
    assert calls and len(calls) == len(set(calls))
    assert rows == rows_via_fhirpathpy(resource)


def test_a_choice_narrowed_by_as_reads_only_that_key() -> None:
    assert root_keys("(Observation.value as Quantity)", "Observation") == frozenset(
        {"valueQuantity"}
    )
    assert root_keys("Observation.value.as(Quantity)", "Observation") == frozenset(
        {"valueQuantity"}
    )
    assert root_keys(
        "Condition.onset.as(dateTime) | Condition.onset.as(Period)", "Condition"
    ) == frozenset({"onsetDateTime", "onsetPeriod"})
    assert "valueString" in (root_keys("Observation.value", "Observation") or ())


def test_index_rows_on_the_corpus_equal_fhirpathpy_rows() -> None:
    """Every resource the translators make of the corpus: the compiled plan's index rows are
    the rows computed from fhirpathpy's values, parameter by parameter."""
    from tests.processors.test_structure_shapes import corpus_resources

    checked = 0
    for text in corpus_resources():
        resource = orjson.loads(text)
        if resource["resourceType"] not in RESOURCE_TYPES:
            continue
        assert index_rows(resource["resourceType"], resource) == rows_via_fhirpathpy(resource)
        checked += 1
    assert checked > 100
