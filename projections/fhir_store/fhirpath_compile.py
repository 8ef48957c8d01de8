"""FHIRPath search expressions compiled to plain Python extractors, fhirpathpy otherwise.

Nearly every R4 search expression is a path (`Patient.name.family`), a choice type picked
with `as` (`(Observation.value as Quantity)`, `Condition.onset.as(Age)`), a reference filter
(`.where(resolve() is Patient)`), a `.where(system='email')`, or a union of those. Those
compile to closures over dicts and lists, about fifty times faster than interpreting them.
Anything else (`Patient.deceased.exists() and Patient.deceased != false`) is evaluated by
fhirpathpy with the R4 model. Tests prove both give the same values.

`resolve() is X` cannot be evaluated on a lone resource; both paths read it as "the
reference points at a resource of type X" (relative or absolute URL, optional _history).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fhirpathpy import compile as fp_compile
from fhirpathpy.models import models

from projections.fhir_store.definitions import split_top_level, split_union

Extractor = Callable[[dict[str, Any]], list[Any]]

R4 = models["r4"]
CHOICES: dict[str, list[str]] = R4["choiceTypePaths"]

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_AS_WRAPPED = re.compile(r"^\((.+?) as (" + _IDENT + r")\)(.*)$")
_AS_SUFFIX = re.compile(r"^(.+?) as (" + _IDENT + r")$")
_STEP_AS = re.compile(r"^as\((" + _IDENT + r")\)$")
_STEP_RESOLVE = re.compile(r"^where\(resolve\(\) is (" + _IDENT + r")\)$")
_STEP_SYSTEM = re.compile(r"^where\(system\s*=\s*'([^']*)'\)$")
_EXISTS_NOT_FALSE = re.compile(r"^(\S+)\.exists\(\) and \1 != false$")
_RESOLVE_IN_EXPR = re.compile(r"resolve\(\) is (" + _IDENT + r")")


def reference_type_pattern(resource_type: str) -> str:
    """The regex `resolve() is <type>` stands for, on Reference.reference."""
    return r"^(.*/)?" + resource_type + r"/[^/]+(/_history/[^/]+)?$"


def fhirpathpy_expression(expression: str) -> str:
    """The expression with `resolve() is X` rewritten so fhirpathpy can evaluate it."""
    return _RESOLVE_IN_EXPR.sub(
        lambda m: f"reference.matches('{reference_type_pattern(m.group(1))}')", expression
    )


def _plain(value: Any) -> Any:
    """fhirpathpy's values as JSON would have them (its decimals are Decimal)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def fhirpathpy_extractor(expression: str) -> Extractor:
    """Evaluate with fhirpathpy (R4 model); values converted back to JSON-like Python."""
    compiled = fp_compile(fhirpathpy_expression(expression), R4)

    def extract(resource: dict[str, Any]) -> list[Any]:
        return [_plain(v) for v in compiled(resource)]  # type: ignore[call-arg]

    return extract


def _split_steps(path: str) -> list[str]:
    """Split a path on the dots that are outside brackets and quotes."""
    return split_top_level(path, ".")


Step = Callable[[list[Any]], list[Any]]


def _child(name: str) -> Step:
    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if type(node) is dict:
                value = node.get(name)
                if value is None or value == {}:
                    continue
                if type(value) is list:
                    out.extend([v for v in value if v is not None and v != {}])
                else:
                    out.append(value)
        return out

    return step


def _choice(name: str, types: list[str]) -> Step:
    keys = [name + t[0].upper() + t[1:] for t in types]

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if type(node) is dict:
                for key in keys:
                    value = node.get(key)
                    if value is not None and value != {}:
                        if type(value) is list:
                            out.extend([v for v in value if v is not None and v != {}])
                        else:
                            out.append(value)
        return out

    return step


def _where_reference_to(resource_type: str) -> Step:
    pattern = re.compile(reference_type_pattern(resource_type))

    def step(nodes: list[Any]) -> list[Any]:
        return [
            n for n in nodes
            if type(n) is dict and type(n.get("reference")) is str and pattern.match(n["reference"])
        ]  # fmt: skip

    return step


def _where_system(system: str) -> Step:
    def step(nodes: list[Any]) -> list[Any]:
        return [n for n in nodes if type(n) is dict and n.get("system") == system]

    return step


def branch_steps(branch: str, resource_type: str) -> list[tuple[str, Step]] | None:
    """The steps of one union branch, each with a key naming what it does (equal keys, equal
    steps), or None when the branch is not of the simple forms."""
    text = branch.strip()
    wrapped = _AS_WRAPPED.match(text)
    if wrapped:  # (A.b as T).rest  ->  A.b.as(T).rest
        inner, as_type, rest = wrapped.groups()
        text = f"{inner}.as({as_type}){rest}"
    else:
        suffix = _AS_SUFFIX.match(text)
        if suffix:
            text = f"{suffix.group(1)}.as({suffix.group(2)})"
    raw_steps = _split_steps(text)
    if raw_steps[0] != resource_type:
        return None
    path = resource_type
    steps: list[tuple[str, Step]] = []
    index = 1
    while index < len(raw_steps):
        raw = raw_steps[index]
        if re.fullmatch(_IDENT, raw):
            path = f"{path}.{raw}"
            choice = CHOICES.get(path)
            if choice is not None:
                following = raw_steps[index + 1] if index + 1 < len(raw_steps) else ""
                picked = _STEP_AS.match(following)
                if picked:
                    wanted = picked.group(1)
                    matching = [t for t in choice if t.lower() == wanted.lower()]
                    if not matching:
                        return None
                    steps.append((f"choice {raw} {' '.join(matching)}", _choice(raw, matching)))
                    path = f"{path}[{wanted}]"
                    index += 2
                    continue
                steps.append((f"choice {raw} {' '.join(choice)}", _choice(raw, choice)))
                path = f"{path}[x]"
            else:
                steps.append((f"child {raw}", _child(raw)))
            index += 1
            continue
        resolved = _STEP_RESOLVE.match(raw)
        if resolved:
            steps.append((f"resolve {resolved.group(1)}", _where_reference_to(resolved.group(1))))
            index += 1
            continue
        system = _STEP_SYSTEM.match(raw)
        if system:
            steps.append((f"system {system.group(1)}", _where_system(system.group(1))))
            index += 1
            continue
        return None  # as() off a choice, functions, operators: leave to fhirpathpy
    if any(p.endswith("[x]") for p in path.split(".")[:-1]):
        return None  # navigating into an un-typed choice: fhirpathpy knows the model
    return steps


def _compile_branch(branch: str, resource_type: str) -> Extractor | None:
    """A closure for one union branch, or None when it is not of the simple forms."""
    keyed = branch_steps(branch, resource_type)
    if keyed is None:
        return None
    steps = [step for _, step in keyed]

    def extract(resource: dict[str, Any]) -> list[Any]:
        nodes: list[Any] = [resource]
        for step in steps:
            nodes = step(nodes)
            if not nodes:
                return nodes
        return nodes

    return extract


def root_keys(expression: str, resource_type: str) -> frozenset[str] | None:
    """Top-level JSON keys the expression can read from; None when that is not plain.

    A resource with none of them yields nothing, so the extractor need not run.
    """
    keys: set[str] = set()
    for branch in split_union(expression):
        match = re.match(r"^\(?\s*" + resource_type + r"\.(" + _IDENT + r")", branch)
        if match is None:
            return None
        name = match.group(1)
        choice = CHOICES.get(f"{resource_type}.{name}")
        if choice:
            narrowed = _narrowed_to(branch, resource_type, name)
            if narrowed is not None:  # (A.value as Quantity): only valueQuantity is read
                choice = [t for t in choice if t.lower() == narrowed.lower()]
            keys.update(name + t[0].upper() + t[1:] for t in choice)
        else:
            keys.add(name)
    return frozenset(keys)


def _narrowed_to(branch: str, resource_type: str, name: str) -> str | None:
    """The type `T` of a branch starting `(Type.name as T)` or `Type.name.as(T)`, else None."""
    text = branch.strip()
    for pattern in (
        r"^\(\s*" + resource_type + r"\." + name + r" as (" + _IDENT + r")\)",
        r"^" + resource_type + r"\." + name + r" as (" + _IDENT + r")$",
        r"^" + resource_type + r"\." + name + r"\.as\((" + _IDENT + r")\)",
    ):
        match = re.match(pattern, text)
        if match:
            return match.group(1)
    return None


def compile_expression(expression: str, resource_type: str) -> tuple[Extractor, bool]:
    """An extractor for `expression` on resources of `resource_type`, and whether compiled.

    Returns the values the expression selects (with repeats: callers de-duplicate).
    """
    flag = _EXISTS_NOT_FALSE.match(expression.strip())
    if flag:  # Patient.deceased.exists() and Patient.deceased != false
        path = _compile_branch(flag.group(1), resource_type)
        if path is not None:
            inner = path

            def exists_not_false(resource: dict[str, Any]) -> list[Any]:
                values = inner(resource)
                return [bool(values) and values != [False]]

            return exists_not_false, True
    branches = [_compile_branch(b, resource_type) for b in split_union(expression)]
    if not branches or any(b is None for b in branches):
        return fhirpathpy_extractor(expression), False
    compiled = [b for b in branches if b is not None]
    if len(compiled) == 1:
        return compiled[0], True

    def union(resource: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for branch in compiled:
            out.extend(branch(resource))
        return out

    return union, True
