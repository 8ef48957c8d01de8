"""The shape fast path of the structure check (processors/structure_shapes.py) agrees with the
fhir.resources model: on the corpus, and on resources mutated from it by hypothesis, it never
calls valid what the model refuses, and the validator's issues are the same with it or
without it."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from processors import structure_shapes, validation
from processors.device_readings import translate_device
from processors.fhir_input import translate_fhir
from processors.hl7v2.adapter import translate_hl7v2
from processors.translation import TranslationError
from processors.validation import resource_issues, resource_model
from schemas.outcome import Issue
from tests.bench.bench_processors import oru_r01

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


@pytest.fixture(autouse=True)
def no_shapes_learned() -> Iterator[None]:
    structure_shapes.forget_shapes()
    yield
    structure_shapes.forget_shapes()


@cache
def corpus_resources() -> tuple[str, ...]:
    """Every resource the translators make of the corpus (and of the bench's ORU^R01), as
    JSON text, plus the corpus' invalid Observation."""
    translations = []
    for path in sorted([*CORPUS.glob("hl7v2/*.hl7"), *CORPUS.glob("hl7v2_extra/*.hl7")]):
        try:
            translations.append(translate_hl7v2(path.read_bytes(), "corpus"))
        except TranslationError:
            continue  # the corpus' broken messages: nothing to validate
    translations.append(translate_hl7v2(oru_r01(7), "bench"))
    bundle = (CORPUS / "fhir" / "transaction_patient_with_condition.json").read_bytes()
    headers = {"http.method": "POST", "http.path": "/fhir"}
    translations.append(translate_fhir(bundle, headers, "corpus"))
    device = (CORPUS / "device" / "bedside_monitor_batch.json").read_bytes()
    translations.append(translate_device(device, "corpus"))
    resources = [
        json.dumps(item.resource)
        for translation in translations
        for item in translation.resources
        if item.operation == "upsert"
    ]
    resources.append((CORPUS / "fhir" / "observation_invalid_status.json").read_text())
    return tuple(resources)


def model_accepts(resource: dict[str, Any]) -> bool:
    model = resource_model(resource["resourceType"])
    assert model is not None
    return not validation._model_issues(model, resource, resource["resourceType"])


def test_every_valid_corpus_resource_is_known_by_its_shape_once_learned() -> None:
    valid = [r for r in map(json.loads, corpus_resources()) if model_accepts(r)]
    assert len(valid) > 90
    for resource in valid:
        model = resource_model(resource["resourceType"])
        assert model is not None
        structure_shapes.forget_shapes()
        for _ in range(structure_shapes.SIGHTINGS_TO_LEARN):
            assert not structure_shapes.known_valid(model, resource)  # not learned yet
            structure_shapes.learn(model, resource)
        assert structure_shapes.known_valid(model, resource), resource["resourceType"]


def test_orus_of_a_known_shape_build_no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    # Counted on the models themselves: validation's own functions may be compiled
    # (infra/native_build.py), where a call within the module cannot be replaced.
    for name in ("Patient", "Organization", "DiagnosticReport", "Observation"):
        model = resource_model(name)
        assert model is not None
        validate_json = model.model_validate_json

        def counted(
            data: Any, *args: Any, _name: str = name, _v: Any = validate_json, **kw: Any
        ) -> Any:
            calls.append(_name)
            return _v(data, *args, **kw)

        monkeypatch.setattr(model, "model_validate_json", counted)
    sightings = structure_shapes.SIGHTINGS_TO_LEARN
    for n in range(sightings):  # Patient, Organization, DiagnosticReport: one per message
        oru = [i.resource for i in translate_hl7v2(oru_r01(n), str(n)).resources]
        assert not [issue for r in oru for issue in resource_issues(r)]
    # the ten Observations of the first have two shapes (integer and decimal values), each
    # learned after `sightings` of them
    assert calls.count("Observation") == 2 * sightings
    assert calls.count("Patient") == sightings
    calls.clear()
    later = [i.resource for i in translate_hl7v2(oru_r01(99), "later").resources]
    assert not [issue for r in later for issue in resource_issues(r)]
    assert calls == []


def test_a_shape_seen_once_builds_no_validator() -> None:
    observation = next(
        i.resource
        for i in translate_hl7v2(oru_r01(5), "e").resources
        if i.resource["resourceType"] == "Observation"
    )
    model = resource_model("Observation")
    assert model is not None
    structure_shapes.learn(model, observation)
    assert structure_shapes._shapes == {}
    assert not structure_shapes.known_valid(model, observation)


@pytest.mark.parametrize(
    ("path", "value", "model_refuses"),
    [
        (("status",), "finished-ish", False),  # a FHIR code, not in the binding: bindings say
        (("status",), "final ", True),  # trailing space: not a FHIR code
        (("valueQuantity", "value"), "abc", True),  # a string where a decimal belongs
        (("effectiveDateTime",), "2026-13-40T00:00:00Z", True),
        (("issued",), "2026-11-06", True),  # an instant needs a time and a zone
        (("id",), "has space", True),
        (("code", "coding", 0, "code"), "a  b", True),  # two spaces: not a FHIR code
        (("valueQuantity", "value"), True, True),
    ],
)
def test_a_bad_leaf_in_a_known_shape_goes_to_the_model(
    path: tuple[Any, ...], value: Any, model_refuses: bool
) -> None:
    oru = [i.resource for i in translate_hl7v2(oru_r01(3), "c").resources]
    observation = next(r for r in oru if r["resourceType"] == "Observation")
    observation["issued"] = "2026-11-06T07:10:00-05:00"
    for _ in range(structure_shapes.SIGHTINGS_TO_LEARN):
        assert not resource_issues(observation)  # learned
    model = resource_model("Observation")
    assert model is not None and structure_shapes.known_valid(model, observation)
    bad = copy.deepcopy(observation)
    parent: Any = bad
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    assert model_accepts(bad) is not model_refuses
    assert structure_shapes.known_valid(model, bad) is not model_refuses
    with_shapes = resource_issues(bad)
    structure_shapes.forget_shapes()
    assert with_shapes == resource_issues(bad) != []


def leaf_paths(node: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in `node` that holds a value, containers included."""
    if isinstance(node, dict):
        items: Iterator[tuple[Any, Any]] = iter(node.items())
    elif isinstance(node, list):
        items = iter(enumerate(node))
    else:
        return
    for step, child in items:
        yield (*here, step)
        yield from leaf_paths(child, (*here, step))


def dict_paths(node: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        yield here
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else []
    )
    for step, child in children:
        yield from dict_paths(child, (*here, step))


def at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


FHIR_LIKE_TEXT = st.sampled_from(
    ["", " ", "final", "amended", "x y", " x", "x\n", "\x01", "2026-11-06", "2026-11",
     "2026-02-30", "2026-11-06T07:10:00-05:00", "2026-11-06T07:10:00", "07:10:00", "12.5",
     "-0", "1e400", "01", "urn:oid:1.2.3", "urn:uuid:not-a-uuid", "http://loinc.org",
     "Patient/p-1", "mg/dL", "true", "Observation", "Patient", "a" * 70]
)  # fmt: skip
LEAVES = st.one_of(
    FHIR_LIKE_TEXT,
    st.text(max_size=12),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
)
VALUES = st.one_of(
    LEAVES,
    st.lists(LEAVES, max_size=2),
    st.dictionaries(
        st.sampled_from(["value", "text", "code", "foo", "extension"]), LEAVES, max_size=2
    ),
)
NEW_KEYS = st.sampled_from(
    ["foo", "id", "text", "extension", "_status", "status__ext", "valueString",
     "valueQuantity", "resourceType", "resource_type", "fhir_comments", "code", "display"]
)  # fmt: skip


@st.composite
def mutated(draw: st.DrawFn, shape_kept: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """A corpus resource and a copy with one to three changes: a value replaced by one of
    the same JSON type (the shape kept, so the leaf checks answer), or, unless `shape_kept`,
    also any value replaced, an element removed or added."""
    texts = corpus_resources()
    original = json.loads(texts[draw(st.integers(0, len(texts) - 1))])
    resource = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 3))):
        kinds = ["same-type leaf"] if shape_kept else ["same-type leaf", "replace", "remove", "add"]
        kind = draw(st.sampled_from(kinds))
        if kind in ("same-type leaf", "replace", "remove"):
            paths = [p for p in leaf_paths(resource) if p != ("resourceType",)]
            if not paths:
                continue
            path = draw(st.sampled_from(paths))
            parent, step = at(resource, path[:-1]), path[-1]
            old = parent[step]
            if kind == "remove":
                del parent[step]
            elif kind == "replace":
                parent[step] = draw(VALUES)
            elif isinstance(old, str):
                parent[step] = draw(st.one_of(FHIR_LIKE_TEXT, st.text(max_size=12)))
            elif isinstance(old, bool):
                parent[step] = not old
            elif isinstance(old, int):
                parent[step] = draw(st.integers(min_value=-(2**70), max_value=2**70))
            elif isinstance(old, float):
                parent[step] = draw(st.floats(allow_nan=True, allow_infinity=True))
        else:
            parent = at(resource, draw(st.sampled_from(list(dict_paths(resource)))))
            parent[draw(NEW_KEYS)] = draw(VALUES)
    return original, resource


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated(shape_kept=True), mutated(shape_kept=False)))
def test_fast_path_and_model_agree_on_mutated_corpus_resources(
    pair: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    original, resource = pair
    structure_shapes.forget_shapes()
    for _ in range(structure_shapes.SIGHTINGS_TO_LEARN):
        resource_issues(original)  # learns its shape when the model accepts it
    model = (
        resource_model(resource["resourceType"])
        if isinstance(resource.get("resourceType"), str)
        else None
    )
    if model is not None and structure_shapes.known_valid(model, resource):
        event("the fast path answered valid")
        assert model_accepts(resource), "the fast path called valid what the model refuses"
    elif model is not None and not model_accepts(resource):
        event("the model refused it")
    with_shapes = outcome(resource)
    structure_shapes.forget_shapes()
    assert with_shapes == outcome(resource)


def outcome(resource: dict[str, Any]) -> list[Issue] | str:
    """The validator's issues, or the exception it raised."""
    try:
        return resource_issues(resource)
    except Exception as exc:  # compared, not hidden: both paths must fail alike
        return repr(exc)


def test_non_finite_and_huge_numbers_still_reach_the_value_checks() -> None:
    oru = [i.resource for i in translate_hl7v2(oru_r01(4), "d").resources]
    observation = next(r for r in oru if r["resourceType"] == "Observation")
    assert not resource_issues(observation)
    for value in (math.inf, 2**80):
        bad = copy.deepcopy(observation)
        bad["valueQuantity"]["value"] = value
        assert any(i.location == "Observation.valueQuantity.value" for i in resource_issues(bad))


def fhirpath(resource_type: str, path: tuple[Any, ...]) -> str:
    return resource_type + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in path)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_control_character_anywhere_is_located_at_its_fhirpath(data: st.DataObject) -> None:
    resources = [json.loads(t) for t in corpus_resources()]
    valid = [r for r in resources if not resource_issues(r)]
    resource = data.draw(st.sampled_from(valid))
    strings = [p for p in leaf_paths(resource) if isinstance(at(resource, p), str)]
    path = data.draw(st.sampled_from([p for p in strings if p != ("resourceType",)]))
    parent = at(resource, path[:-1])
    parent[path[-1]] = parent[path[-1]] + "\x07"
    issues = resource_issues(resource)
    expected = fhirpath(resource["resourceType"], path)
    # the control character, or (a code bound to a value set) the binding, names the place
    assert expected in {i.location for i in issues}
    assert {i.location for i in issues if "U+0007" in i.diagnostics} <= {expected}
