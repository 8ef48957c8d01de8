"""What the FHIR store's search-parameter extraction needs beyond compile_path.

A type's parameters are unions of paths (`Observation.code | Observation.component.code`);
the store walks each distinct path prefix once per resource, so it asks for the steps of a
branch, each with a key naming what it does (equal keys, equal steps), and for the top-level
keys a branch reads (a resource with none of them yields nothing).
"""

from __future__ import annotations

from projections.fhirpath.compiler import Compiler, Fn
from projections.fhirpath.model import CHOICES, cap
from projections.fhirpath.parser import (
    FHIRPathSyntaxError,
    Node,
    Unsupported,
    as_path,
    parse,
    union_branches,
)


def _branches(expression: str) -> list[Node] | None:
    try:
        return [as_path(b) for b in union_branches(parse(expression))]
    except (FHIRPathSyntaxError, Unsupported):
        return None


def branch_steps(branch: str, resource_type: str) -> list[tuple[str, Fn]] | None:
    """The steps of one union branch rooted at the type, or None when not a plain path."""
    trees = _branches(branch)
    if trees is None or len(trees) != 1:
        return None
    tree = trees[0]
    steps: tuple[Node, ...] = tree[2] if tree[0] == "path" and tree[1] is None else ()
    if not steps or steps[0] != ("member", resource_type):
        return None
    try:
        keyed = Compiler().steps(None, steps, resource_type)
    except (Unsupported, FHIRPathSyntaxError):
        return None
    if any(c.may_defer for _, c in keyed):
        return None
    return [(key, c.fn) for key, c in keyed]


def root_keys(expression: str, resource_type: str) -> frozenset[str] | None:
    """Top-level JSON keys the expression can read; None when that is not plain."""
    trees = _branches(expression)
    if trees is None:
        return None
    keys: set[str] = set()
    for tree in trees:
        steps: tuple[Node, ...] = tree[2] if tree[0] == "path" and tree[1] is None else ()
        if len(steps) < 2 or steps[0] != ("member", resource_type) or steps[1][0] != "member":
            return None
        name = steps[1][1]
        choice = CHOICES.get(f"{resource_type}.{name}")
        if not choice:
            keys.add(name)
            continue
        following = steps[2] if len(steps) > 2 else None
        if following and following[0] == "call" and following[1] in ("ofType", "as"):
            arg = following[2][0] if len(following[2]) == 1 else None
            if arg and arg[0] == "path" and arg[1] is None and arg[2][0][0] == "member":
                wanted = str(arg[2][0][1]).lower()
                choice = [t for t in choice if t.lower() == wanted]
        keys.update(name + cap(t) for t in choice)
    return frozenset(keys)
