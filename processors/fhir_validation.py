"""Validate one FHIR resource: the fhir.resources R4B model plus carelog's required bindings.

carelog speaks R4 (4.0.1); fhir.resources 8.x ships R4B, whose models match R4 for the
resources carelog produces (DESIGN.md, "Processors"). Issues are located by FHIRPath,
e.g. "Observation.status" or "Bundle.entry[1].resource.valueQuantity.value".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from processors.fhir_bindings import REQUIRED_BINDINGS, Binding
from schemas.outcome import Issue


def validate_resource(resource: dict[str, Any], where: str | None = None) -> list[Issue]:
    """Every problem found in `resource`, located under `where` (default: its resourceType)."""
    resource_type = resource.get("resourceType")
    prefix = where or str(resource_type)
    model = resource_model(str(resource_type))
    if model is None:
        return [
            Issue(
                f"unknown resource type {str(resource_type)[:64]!r}",
                code="not-supported",
                location=f"{prefix}.resourceType",
            )
        ]
    issues: list[Issue] = []
    try:
        model.model_validate(resource)
    except ValidationError as exc:
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
    for binding in REQUIRED_BINDINGS.get(str(resource_type), []):
        issues.extend(_check_binding(resource, binding, prefix))
    return issues


def resource_model(resource_type: str) -> type[Resource] | None:
    """The R4B model of a concrete resource type; None for data types and abstract types."""
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return None
    if issubclass(model, Resource) and model not in (Resource, DomainResource):
        return model
    return None


def _fhirpath(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():  # skip pydantic's validator names, e.g. "function-after[...]"
            out += f".{part}" if out else part
    return out


def _walk(node: Any, steps: list[str], where: str) -> Iterator[tuple[Any, str]]:
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


def _check_binding(resource: dict[str, Any], binding: Binding, prefix: str) -> Iterator[Issue]:
    allowed = ", ".join(sorted(binding.codes))
    for value, where in _walk(resource, binding.path.split("."), prefix):
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
