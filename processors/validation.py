"""carelog's one validator of the FHIR resources it produces, whatever the format they came in.

The translate stage (`processors.translators`) calls `validated` once on every translation,
HL7 v2, FHIR, device and DICOM alike, so that a resource the log holds has passed:

1. structure: the fhir.resources R4B model (types, cardinality, unknown elements, regexes).
   carelog speaks R4 (4.0.1); fhir.resources 8 ships R4B, whose models match R4 for the
   resources carelog produces (projections/fhir_store/definitions.py, RESOURCE_TYPES);
2. required bindings, the one set of tables in `processors.fhir_bindings`: per resource type,
   per data type, and the code systems checked offline (LOINC check digit, SNOMED CT Verhoeff,
   ICD-10 shape, UCUM grammar and atoms);
3. values: every number finite (and an integer within 64 bits), no string holding a control
   character FHIR forbids (below U+0020 other than tab, LF, CR), and the vital signs within
   the plausible ranges of `processors.plausibility`.

Issues are located by FHIRPath under where the resource was in the input, e.g.
"Observation.code.coding[0].code" or "Bundle.entry[1].resource.valueQuantity.value".
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from functools import cache
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from processors.fhir_bindings import (
    CODE_SYSTEMS,
    DATATYPE_BINDINGS,
    QUANTITY_COMPARATORS,
    REQUIRED_BINDINGS,
    Binding,
)
from processors.structure_shapes import known_valid, learn
from processors.translation import Translation, TranslationError
from schemas.fhir_string import FORBIDDEN_CONTROL
from schemas.outcome import Issue
from schemas.plausibility import plausibility_issues

_INT64 = 2**63 - 1


def validated(translation: Translation) -> Translation:
    """`translation` unchanged when every resource it writes is valid; else TranslationError
    naming each problem (resource, element path, rule)."""
    issues: list[Issue] = []
    for item in translation.resources:
        if item.operation == "upsert":
            issues.extend(resource_issues(item.resource, item.where))
    if issues:
        raise TranslationError(issues)
    return translation


def resource_issues(resource: dict[str, Any], where: str | None = None) -> list[Issue]:
    """Every problem found in `resource`, located under `where` (default: its resourceType)."""
    resource_type = str(resource.get("resourceType"))
    prefix = where or resource_type
    model = resource_model(resource_type)
    if model is None:
        return [
            Issue(
                f"unknown resource type {resource_type[:64]!r}",
                code="not-supported",
                location=f"{prefix}.resourceType",
            )
        ]
    issues = _structure_issues(model, resource, prefix)
    for binding in REQUIRED_BINDINGS.get(resource_type, ()):
        issues.extend(_binding_issues(resource, binding, prefix))
    _check(resource, _Path(prefix), "", issues)
    issues.extend(plausibility_issues(resource, prefix))
    return issues


@cache
def resource_model(resource_type: str) -> type[Resource] | None:
    """The R4B model of a concrete resource type; None for data types and abstract types."""
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None
    if issubclass(model, Resource) and model not in (Resource, DomainResource):
        return model
    return None


def _structure_issues(model: type[Resource], resource: dict[str, Any], prefix: str) -> list[Issue]:
    if known_valid(model, resource):  # the shape of one the model accepted, each leaf checked
        return []
    issues = _model_issues(model, resource, prefix)
    if not issues:
        learn(model, resource)
    return issues


def _model_issues(model: type[Resource], resource: dict[str, Any], prefix: str) -> list[Issue]:
    try:
        # From JSON text pydantic-core parses and validates in one pass in Rust: about 1.2x
        # faster than model_validate on the dicts (tests/bench/bench_hl7v2_translate.py).
        data = orjson.dumps(resource)
    except TypeError:  # orjson cannot encode it (an integer beyond 64 bits): the dict path
        data = None
    try:
        if data is None:
            model.model_validate(resource)
        else:
            model.model_validate_json(data)
    except ValidationError as exc:
        issues = []
        for error in exc.errors(include_url=False):
            path = _fhirpath(error["loc"])
            code = "value"
            if error["type"] == "missing" or "is required" in error["msg"]:
                code = "required"
            elif error["type"] == "extra_forbidden":
                code = "structure"
            issues.append(
                Issue(error["msg"], code=code, location=f"{prefix}.{path}" if path else prefix)
            )
        return issues
    except (AttributeError, TypeError) as exc:
        # fhir.resources reads a string given for a complex element as JSON text; a number
        # or a list there makes one of its own validators raise instead of reporting.
        element = _element_the_model_fails_on(model, resource)
        return [
            Issue(
                f"fhir.resources failed on it ({type(exc).__name__}: {str(exc)[:120]}): an "
                "element holds a value of the wrong kind, e.g. text where an object belongs",
                code="structure",
                location=f"{prefix}.{element}" if element else prefix,
            )
        ]
    return []


def _element_the_model_fails_on(model: type[Resource], resource: dict[str, Any]) -> str | None:
    """The first element of `resource` that, alone, makes the model raise other than with a
    ValidationError."""
    for key, value in resource.items():
        try:
            model.model_validate({key: value})
        except (AttributeError, TypeError):
            return key
        except ValidationError:
            continue
    return None


def _fhirpath(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():  # skip pydantic's validator names, e.g. "function-after[...]"
            out += f".{part}" if out else part
    return out


class _Path:
    """Where `_check` is: the steps below the resource, spelled as FHIRPath only for an issue
    (most resources have none, and a path per element cost more than the checks)."""

    __slots__ = ("prefix", "steps")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.steps: list[str | int] = []

    def text(self, *more: str) -> str:
        parts = (f"[{s}]" if isinstance(s, int) else f".{s}" for s in (*self.steps, *more))
        return self.prefix + "".join(parts)


# Keys some data-type binding applies to: any other key needs no (name, key) lookup.
_BOUND_KEYS = frozenset(key for _, key in DATATYPE_BINDINGS) | {"comparator"}


def _check(node: Any, path: _Path, name: str, issues: list[Issue]) -> None:
    """Values and data-type bindings of every element below `node`, depth first. A leaf
    child that is fine is passed over in place (most leaves are: a call and a path step
    each cost more than the check)."""
    if isinstance(node, dict):
        system, code = node.get("system"), node.get("code")
        if isinstance(system, str) and isinstance(code, str):
            checker = CODE_SYSTEMS.get(system)
            problem = checker(code) if checker is not None else None
            if problem:
                issues.append(Issue(problem, "code-invalid", location=path.text("code")))
        for key, value in node.items():
            if key in _BOUND_KEYS:
                allowed = DATATYPE_BINDINGS.get((name, key))
                if key == "comparator" and "value" in node:
                    allowed = QUANTITY_COMPARATORS
                if allowed is not None and isinstance(value, str) and value not in allowed:
                    issues.append(
                        Issue(
                            f"{value[:64]!r} is not in the required value set of {name}.{key} "
                            f"({', '.join(sorted(allowed))})",
                            "code-invalid",
                            location=path.text(key),
                        )
                    )
                    continue
            kind = type(value)
            if kind is str:
                if value.isprintable():  # no control character at all
                    continue
            elif (
                kind is bool
                or (kind is int and -_INT64 <= value <= _INT64)
                or (kind is float and math.isfinite(value))
            ):
                continue
            path.steps.append(key)
            _check(value, path, key, issues)
            path.steps.pop()
    elif isinstance(node, list):
        for index, item in enumerate(node):
            if type(item) is str and item.isprintable():
                continue
            path.steps.append(index)
            _check(item, path, name, issues)
            path.steps.pop()
    elif isinstance(node, str):
        bad = FORBIDDEN_CONTROL.search(node)
        if bad is not None:
            issues.append(
                Issue(
                    f"holds the control character U+{ord(bad.group()):04X}, which a FHIR "
                    "string may not contain",
                    "value",
                    location=path.text(),
                )
            )
    elif isinstance(node, float):
        if not math.isfinite(node):
            issues.append(Issue(f"{node} is not a finite number", "value", location=path.text()))
    elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > _INT64:
        issues.append(
            Issue(
                f"{str(node)[:24]}... is beyond the 64-bit integers carelog stores",
                "value",
                location=path.text(),
            )
        )


def _walk(node: Any, steps: tuple[str, ...], where: str) -> Iterator[tuple[Any, str]]:
    """(value, FHIRPath) for every value at `steps` below `node`, lists walked with indexes."""
    if not steps:
        yield node, where
        return
    if not isinstance(node, dict) or steps[0] not in node:
        return
    value, where = node[steps[0]], f"{where}.{steps[0]}"
    items = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
    for index, item in items:
        yield from _walk(item, steps[1:], where if index is None else f"{where}[{index}]")


def _binding_issues(resource: dict[str, Any], binding: Binding, prefix: str) -> Iterator[Issue]:
    allowed = ", ".join(sorted(binding.codes))
    for value, where in _walk(resource, binding.steps, prefix):
        if binding.system is None:
            if isinstance(value, str) and value not in binding.codes:
                yield Issue(
                    f"{value[:64]!r} is not in the required value set ({allowed})",
                    code="code-invalid",
                    location=where,
                )
            continue
        codings = value.get("coding") if isinstance(value, dict) else None
        if not isinstance(codings, list):
            codings = []
        matching = [
            (i, c)
            for i, c in enumerate(codings)
            if isinstance(c, dict) and c.get("system") == binding.system
        ]
        if not matching:
            yield Issue(
                f"needs a coding from {binding.system} (required binding)",
                code="code-invalid",
                location=f"{where}.coding",
            )
        for i, coding in matching:
            if coding.get("code") not in binding.codes:
                yield Issue(
                    f"{str(coding.get('code'))[:64]!r} is not in the required value set "
                    f"({allowed})",
                    code="code-invalid",
                    location=f"{where}.coding[{i}].code",
                )
