"""compile_path: one FHIRPath expression, compiled when it can be, fhirpathpy otherwise."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode

from projections.fhirpath.compiler import (
    NO_ENV,
    Collection,
    Compiler,
    Defer,
    Env,
    Fn,
)
from projections.fhirpath.model import R4, reference_key
from projections.fhirpath.parser import FHIRPathSyntaxError, Unsupported, parse


class FHIRPathEvaluationError(ValueError):
    """fhirpathpy could not evaluate an expression on a node (a singleton on many items...)."""


_RESOLVE_IS = re.compile(r"resolve\(\) is ([A-Za-z_][A-Za-z0-9_]*)")


def reference_type_pattern(resource_type: str) -> str:
    """The regex reference_key(ref, resource_type) accepts, for fhirpathpy's matches()."""
    return r"^(.*/)?" + resource_type + r"/[^/]+(/_history/[^/]+)?$"


def _user_functions() -> dict[str, Any]:
    def resource_key(coll: Collection) -> Collection:
        return [d["id"] for d in coll if isinstance(d, dict) and "id" in d]

    def ref_key(coll: Collection, type_info: Any = None) -> Collection:
        name = getattr(type_info, "name", None)
        keys = (reference_key(d, name) for d in coll)
        return [k for k in keys if k is not None]

    return {
        "getResourceKey": {"fn": resource_key, "arity": {0: []}},
        "getReferenceKey": {"fn": ref_key, "arity": {0: [], 1: ["TypeSpecifier"]}},
    }


_OPTIONS = {"userInvocationTable": _user_functions()}


def _plain(value: Any) -> Any:
    """fhirpathpy's values as JSON has them (its decimals are Decimal, elements nodes)."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, ResourceNode):
        return _plain(value.data)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _fhirpathpy(
    expression: str, context: str | None, constants: Mapping[str, Any]
) -> Callable[[Any, Env], Collection]:
    # `resolve() is X` cannot be resolved on a lone resource: read as "points at an X".
    text = _RESOLVE_IS.sub(
        lambda m: f"reference.matches('{reference_type_pattern(m.group(1))}')", expression
    )
    try:
        fn = fhirpathpy.compile(text, R4, _OPTIONS)
    except Exception as exc:
        raise FHIRPathSyntaxError(f"FHIRPath {expression!r} does not parse: {exc}") from exc
    fixed = dict(constants)

    def evaluate(node: Any, env: Env = NO_ENV) -> Collection:
        # An element below the resource keeps its type path, so choice types still resolve.
        plain = context is None or not isinstance(node, dict) or "resourceType" in node
        root = node if plain else ResourceNode.create_node(node, context)  # type: ignore[no-untyped-call]
        variables = {**fixed, **env} if env else fixed
        try:
            return [_plain(v) for v in fn(root, variables)]
        except Exception as exc:
            raise FHIRPathEvaluationError(f"FHIRPath {expression!r}: {exc}") from exc

    return evaluate


@dataclass(frozen=True)
class CompiledPath:
    """One FHIRPath expression, ready to evaluate on a resource or an element of one."""

    expression: str
    context: str | None  # type path of the node it runs on: "Observation", "Observation.component"
    compiled: bool  # True: closures over the JSON; False: fhirpathpy
    result_context: str | None  # type path of what it yields, when known
    evaluate: Callable[[Any, Env], Collection] = field(repr=False)

    def __call__(self, node: Any, env: Env = NO_ENV) -> Collection:
        return self.evaluate(node, env)


def fhirpathpy_path(
    expression: str, context: str | None, constants: Mapping[str, Any] | None = None
) -> CompiledPath:
    """The expression evaluated by fhirpathpy alone (the oracle the compiled paths match)."""
    return CompiledPath(
        expression, context, False, None, _fhirpathpy(expression, context, constants or {})
    )


def compile_path(
    expression: str, context: str | None, constants: Mapping[str, Any] | None = None
) -> CompiledPath:
    """Compile `expression` to run on nodes of type `context` (a resource type or element path).

    Raises FHIRPathSyntaxError when neither the compiler nor fhirpathpy can read it, and
    UndefinedVariable for a %name that is not in `constants` nor provided by the engine.
    """
    constants = constants or {}
    try:
        compiled = Compiler(constants).node(parse(expression), context)
    except Unsupported:
        return fhirpathpy_path(expression, context, constants)
    except FHIRPathSyntaxError as exc:
        if type(exc) is not FHIRPathSyntaxError:
            raise  # an undefined variable: the message says which
        raise FHIRPathSyntaxError(f"FHIRPath {expression!r} does not parse: {exc}") from exc
    fn = compiled.fn
    if not compiled.may_defer:

        def direct(node: Any, env: Env = NO_ENV) -> Collection:
            return fn([node], env)

        return CompiledPath(expression, context, True, compiled.context, direct)
    slow: list[Callable[[Any, Env], Collection]] = []

    def guarded(node: Any, env: Env = NO_ENV) -> Collection:
        try:
            return fn([node], env)
        except Defer:
            if not slow:
                slow.append(_fhirpathpy(expression, context, constants))
            return slow[0](node, env)

    return CompiledPath(expression, context, True, compiled.context, guarded)


__all__ = ["CompiledPath", "Fn", "compile_path", "fhirpathpy_path"]
