"""FHIRPath for ViewDefinitions: simple paths compiled to dict access, fhirpathpy for the rest.

fhirpathpy costs ~250 µs per evaluation, far too slow for 20,000 resources a second times a
dozen columns. The paths views use are nearly all member chains with first(), where(x = 'y'),
ofType(T), exists(), join() and the SQL-on-FHIR key functions; those compile here into
closures over plain dicts (about 1 µs). Anything else is evaluated by fhirpathpy with the R4
model, and tests/projections/test_fhirpath.py proves both give the same answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fhirpathpy
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from projections.lake.errors import ViewDefinitionError

Collection = list[Any]
Step = Callable[[Collection], Collection]

_MODEL: dict[str, Any] = models["r4"]
_PATH_TYPES: dict[str, str] = _MODEL["path2Type"]
_CHOICES: dict[str, list[str]] = _MODEL["choiceTypePaths"]
_ELSEWHERE: dict[str, str] = _MODEL["pathsDefinedElsewhere"]
# Backbone elements (Observation.component) have no type of their own: their path is the type.
_BACKBONES: frozenset[str] = frozenset(
    path.rsplit(".", i)[0] for path in (*_PATH_TYPES, *_CHOICES) for i in range(1, path.count("."))
)
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>\d+)|(?P<id>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<var>%[A-Za-z_][A-Za-z0-9_]*)|(?P<op>!=|[.()\[\]=,]))"
)


class Unsupported(Exception):
    """The expression is outside the compiled subset: fhirpathpy evaluates it."""


def reference_key(reference: Any, resource_type: str | None = None) -> str | None:
    """The id a Reference points at ('Patient/1', '.../Patient/1/_history/2'), if of that type."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or not ref:
        return None
    parts = ref.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2:
        return None
    if resource_type is not None and parts[-2] != resource_type:
        return None
    return parts[-1]


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


def _tokens(expression: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = expression.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise Unsupported(text[pos:])
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _member_type(context: str | None, name: str) -> tuple[str | None, list[str] | None]:
    """Type path after navigating to `name`, and the choice types when it is value[x]."""
    if context is None:
        return None, None
    full = f"{context}.{name}"
    full = _ELSEWHERE.get(full, full)
    if full in _CHOICES:
        return None, _CHOICES[full]
    kind = _PATH_TYPES.get(full)
    if kind in ("BackboneElement", "Element") or (kind is None and full in _BACKBONES):
        return full, None
    return kind, None


def _navigate(keys: tuple[str, ...]) -> Step:
    def step(coll: Collection) -> Collection:
        out: Collection = []
        for item in coll:
            if type(item) is not dict:
                continue
            for key in keys:
                value = item.get(key)
                if value is None:
                    continue
                if type(value) is list:
                    out.extend(v for v in value if v is not None)
                else:
                    out.append(value)
        return out

    return step


def _index(i: int) -> Step:
    def step(coll: Collection) -> Collection:
        return coll[i : i + 1]

    return step


def _cap(type_name: str) -> str:
    return type_name[0].upper() + type_name[1:]


class _Parser:
    """Turns one expression of the supported subset into steps over collections."""

    def __init__(self, expression: str, context: str | None, constants: Mapping[str, Any]) -> None:
        self.tokens = _tokens(expression)
        self.pos = 0
        self.context = context
        self.constants = constants

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self, kind: str | None = None, text: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind) or (text and tok[1] != text):
            raise Unsupported(f"expected {kind or text}")
        self.pos += 1
        return tok[1]

    def chain(self, stop: set[str]) -> tuple[list[Step], str | None]:
        """Steps up to a token in `stop` (or the end); returns them and the type reached."""
        steps: list[Step] = []
        context = self.context
        first = True
        while True:
            tok = self.peek()
            if tok is None or (tok[0] == "op" and tok[1] in stop):
                return steps, context
            if not first:
                self.take("op", ".")
            name = self.take("id")
            nxt = self.peek()
            if nxt == ("op", "("):
                self.pos += 1
                steps.append(self.function(name, context))
                self.take("op", ")")
                context = context if name in ("first", "last", "where") else None
            elif first and context is not None and name == context and name[0].isupper():
                pass  # `Patient.name` on a Patient: the type name selects the root
            else:
                context, choices = _member_type(context, name)
                if choices is None:
                    steps.append(_navigate((name,)))
                elif self.peek() == ("op", ".") and self.peek(1) == ("id", "ofType"):
                    self.pos += 2
                    self.take("op", "(")
                    wanted = self.take("id")
                    self.take("op", ")")
                    steps.append(_navigate((name + _cap(wanted),)))
                    context = _cap(wanted) if wanted[0].isupper() else None
                else:
                    steps.append(_navigate(tuple(name + _cap(t) for t in choices)))
            if self.peek() == ("op", "["):
                self.pos += 1
                index = int(self.take("num"))
                self.take("op", "]")
                steps.append(_index(index))
            first = False

    def literal(self) -> Any:
        kind, text = self.peek() or ("", "")
        self.pos += 1
        if kind == "str":
            return re.sub(r"\\(.)", r"\1", text[1:-1])
        if kind == "var" and text[1:] in self.constants:
            return self.constants[text[1:]]
        if kind == "id" and text in ("true", "false"):
            return text == "true"
        if kind == "num":
            return int(text)
        raise Unsupported(f"literal {text}")

    def function(self, name: str, context: str | None) -> Step:
        if name in ("first", "last", "exists", "empty", "count", "getResourceKey"):
            simple: dict[str, Step] = {
                "first": lambda c: c[:1],
                "last": lambda c: c[-1:],
                "exists": lambda c: [bool(c)],
                "empty": lambda c: [not c],
                "count": lambda c: [len(c)],
                "getResourceKey": lambda c: [d["id"] for d in c if type(d) is dict and "id" in d],
            }
            return simple[name]
        if name == "join":
            sep = self.literal() if self.peek() != ("op", ")") else ""
            if not isinstance(sep, str):
                raise Unsupported("join separator")
            return lambda c: [sep.join(str(v) for v in c)] if c else []
        if name == "getReferenceKey":
            wanted = self.take("id") if self.peek() != ("op", ")") else None
            return lambda c: [k for k in (reference_key(d, wanted) for d in c) if k is not None]
        if name == "where":
            saved = self.context
            self.context = context
            try:
                test, _ = self.chain({"=", "!="})
            finally:
                self.context = saved
            negate = self.take("op") == "!="
            expected = self.literal()
            if isinstance(expected, (float, Decimal)):
                raise Unsupported("decimal comparison")

            def where(coll: Collection) -> Collection:
                out = []
                for item in coll:
                    got = _run(test, [item])
                    if not got:
                        continue  # empty = x is empty: not true
                    same = _same(got[0], expected) if len(got) == 1 else False
                    if bool(same) != negate:
                        out.append(item)
                return out

            return where
        raise Unsupported(f"function {name}()")


def _same(got: Any, expected: Any) -> bool | None:
    """FHIRPath `=` on two single items: None when the types cannot be compared."""
    if isinstance(expected, bool) or isinstance(got, bool):
        return got == expected if type(got) is type(expected) else None
    if isinstance(expected, int):
        return got == expected if isinstance(got, (int, float)) else None
    return got == expected if type(got) is type(expected) else None


def _equality(test: list[Step], negate: bool, expected: Any) -> Step:
    """`path = literal` at the top of an expression (view `where` clauses)."""

    def equal(coll: Collection) -> Collection:
        got = _run(test, coll)
        if not got:
            return []
        same = _same(got[0], expected) if len(got) == 1 else False
        return [bool(same) != negate]

    return equal


def _run(steps: list[Step], coll: Collection) -> Collection:
    for step in steps:
        coll = step(coll)  # no early exit on empty: count(), exists() and empty() answer it
    return coll


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, ResourceNode):
        return _plain(value.data)
    return value


@dataclass(frozen=True)
class CompiledPath:
    """One FHIRPath expression, ready to evaluate on a resource or an element of one."""

    expression: str
    context: str | None  # type path of the node it runs on: "Observation", "Observation.component"
    compiled: bool  # True: direct dict access; False: fhirpathpy
    _evaluate: Callable[[Any], Collection]

    def __call__(self, node: Any) -> Collection:
        return self._evaluate(node)

    @property
    def result_context(self) -> str | None:
        """Type path of what the expression yields, for expressions nested under forEach."""
        try:
            parser = _Parser(self.expression, self.context, {})
            return parser.chain(set())[1]
        except (Unsupported, ValueError, KeyError):
            return None


def fhirpathpy_path(
    expression: str, context: str | None, constants: Mapping[str, Any] | None = None
) -> CompiledPath:
    """The expression evaluated by fhirpathpy alone (the reference the compiled paths match)."""
    try:
        fn = fhirpathpy.compile(expression, _MODEL, _OPTIONS)
    except Exception as exc:
        raise ViewDefinitionError(f"FHIRPath {expression!r} does not parse: {exc}") from exc
    variables = dict(constants or {})

    def evaluate(node: Any) -> Collection:
        # An element below the resource keeps its type path, so choice types still resolve.
        plain = context is None or not isinstance(node, dict) or "resourceType" in node
        root = node if plain else ResourceNode.create_node(node, context)  # type: ignore[no-untyped-call]
        return [_plain(v) for v in fn(root, variables)]

    return CompiledPath(expression, context, False, evaluate)


def compile_path(
    expression: str, context: str | None, constants: Mapping[str, Any] | None = None
) -> CompiledPath:
    """Compile `expression` to run on nodes of type `context` (a resource type or element path)."""
    constants = constants or {}
    try:
        parser = _Parser(expression, context, constants)
        steps, _ = parser.chain({"=", "!="})
        if parser.peek() is not None:
            steps = [_equality(steps, parser.take("op") == "!=", parser.literal())]
        if parser.peek() is not None:
            raise Unsupported("trailing tokens")
    except (Unsupported, ValueError):
        return fhirpathpy_path(expression, context, constants)

    if len(steps) == 1:
        only = steps[0]

        def evaluate(node: Any) -> Collection:
            return only([node])
    else:

        def evaluate(node: Any) -> Collection:
            coll = [node]
            for step in steps:
                coll = step(coll)
            return coll

    return CompiledPath(expression, context, True, evaluate)
