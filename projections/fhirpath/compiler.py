"""Syntax trees to closures over plain JSON (dicts, lists, str, int, float, bool).

Each compiled node is `fn(collection, env) -> collection`; `env` holds the variables known only
when rows are made (%rowIndex, %resource). A case the closures cannot decide with certainty
(dates of different precision compared, a singleton operator on several items) raises Defer:
CompiledPath then asks fhirpathpy for that one node. A construct the compiler does not know
raises Unsupported when compiling, and the whole expression goes to fhirpathpy.

Elements that are null or {} are absent, as FHIR JSON has no empty elements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from projections.fhirpath.boundaries import DATE_KINDS, NUMBER_KINDS, boundary
from projections.fhirpath.model import cap, member, reference_key
from projections.fhirpath.parser import FHIRPathSyntaxError, Node, Unsupported, as_path

Collection = list[Any]
Env = Mapping[str, Any]
NO_ENV: Env = {}


class Fn(Protocol):
    """A compiled node: the input collection (and variables) to the output collection."""

    def __call__(self, coll: Collection, env: Env = ..., /) -> Collection: ...


class Defer(Exception):
    """This node needs fhirpathpy's answer (raised while evaluating)."""


class UndefinedVariable(FHIRPathSyntaxError):
    """%name is neither a constant of the view nor a variable the engine provides."""


# Variables fhirpathpy knows by itself (FHIRPath and FHIR specifications).
_STANDARD_VARIABLES = frozenset({"ucum", "sct", "loinc", "context"})
ENV_VARIABLES = frozenset({"rowIndex", "resource", "rootResource"})
_DATELIKE = re.compile(r"^\d{4}(-|$)|^\d{2}:\d{2}")
_ZONE = re.compile(r"(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class Compiled:
    fn: Fn
    context: str | None  # the FHIR type (path) of what it yields, when known
    may_defer: bool = False


def _navigate(keys: tuple[str, ...]) -> Fn:
    """Members `keys` of each node (value[x]: each of its type's keys), lists flattened."""
    members = {key: _member(key) for key in keys}
    if len(members) == 1:
        return members[keys[0]]

    def choice(coll: Collection, env: Env = NO_ENV) -> Collection:
        out: Collection = []
        for node in coll:  # node by node: the order of the input is kept
            if type(node) is dict:
                for key in keys:
                    if key in node:  # one of the keys at most, in valid FHIR
                        out += members[key]([node])
        return out

    return choice


def _member(key: str) -> Fn:
    def member_of(coll: Collection, env: Env = NO_ENV) -> Collection:
        out: Collection = []
        for node in coll:
            value = node.get(key) if type(node) is dict else None
            if value is None or value == {}:
                continue
            if type(value) is list:
                out.extend([v for v in value if v is not None and v != {}])
            else:
                out.append(value)
        return out

    return member_of


def _single(coll: Collection) -> Any:
    if len(coll) != 1:
        raise Defer  # several items where one is expected: FHIRPath's error, fhirpathpy's words
    return coll[0]


def _truth(coll: Collection) -> bool | None:
    """Singleton evaluation of a collection as a Boolean (None: empty)."""
    if not coll:
        return None
    value = _single(coll)
    return value if type(value) is bool else True


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _same_shape(a: str, b: str) -> bool:
    """Two date/time strings of one precision and zone compare as text."""
    if re.sub(r"\d", "0", a) != re.sub(r"\d", "0", b):
        return False
    za, zb = _ZONE.search(a), _ZONE.search(b)
    return (za.group(0) if za else None) == (zb.group(0) if zb else None) or "T" not in a


def _equal(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if ta is str and tb is str:
        if a == b:
            return True
        if _DATELIKE.match(a) and _DATELIKE.match(b) and not _same_shape(a, b):
            raise Defer
        return False
    if ta is dict and tb is dict:
        return bool(a == b)
    raise Defer


def _order(a: Any, b: Any) -> tuple[Any, Any]:
    if _is_number(a) and _is_number(b):
        return a, b
    if type(a) is str and type(b) is str:
        if (_DATELIKE.match(a) or _DATELIKE.match(b)) and not _same_shape(a, b):
            raise Defer
        return a, b
    raise Defer


def _dec(value: Any) -> Decimal:
    return Decimal(repr(value)) if type(value) is float else Decimal(value)


def _arithmetic(op: str, a: Any, b: Any) -> Collection:
    if op == "&":
        return [(a if type(a) is str else "") + (b if type(b) is str else "")]
    if a is None or b is None:
        return []
    if op == "+" and type(a) is str and type(b) is str:
        return [a + b]
    if not (_is_number(a) and _is_number(b)):
        raise Defer
    both_int = type(a) is int and type(b) is int
    if both_int and op in ("+", "-", "*"):
        return [a + b if op == "+" else a - b if op == "-" else a * b]
    x, y = _dec(a), _dec(b)
    try:
        if op == "+":
            result = x + y
        elif op == "-":
            result = x - y
        elif op == "*":
            result = x * y
        elif op == "/":
            return [] if y == 0 else [float(x / y)]
        elif op == "div":
            return [] if y == 0 else [int(x // y)]
        else:  # mod
            return [] if y == 0 else [int(x % y) if both_int else float(x % y)]
    except InvalidOperation as exc:
        raise Defer from exc
    return [float(result)]


def _dedupe(items: Collection) -> Collection:
    out: Collection = []
    for item in items:
        if not any(type(item) is type(o) and item == o for o in out):
            out.append(item)
    return out


def _type_argument(node: Node) -> str | None:
    """`Patient` in getReferenceKey(Patient) or ofType(FHIR.Quantity)."""
    if node[0] == "path" and node[1] is None and len(node[2]) == 1 and node[2][0][0] == "member":
        return str(node[2][0][1])
    return None


_RESOLVE = ("path", None, (("call", "resolve", ()),))


class Compiler:
    """Compiles the trees of one view or one search parameter; constants are bound here."""

    def __init__(self, constants: Mapping[str, Any] | None = None) -> None:
        self.constants = dict(constants or {})

    # -- paths: the steps, each with a key naming what it does (for shared prefixes) --------

    def steps(
        self, head: Node | None, steps: tuple[Node, ...], context: str | None
    ) -> list[tuple[str, Compiled]]:
        out: list[tuple[str, Compiled]] = []
        if head is not None:
            first = self.node(head, context)
            out.append((f"head {head!r}", first))
            context = first.context
        elif (
            steps
            and steps[0][0] == "member"
            and steps[0][1][:1].isupper()
            and context is not None
            and "." not in context
            and steps[0][1] in (context, "Resource", "DomainResource")
        ):
            steps = steps[1:]  # `Patient.name` on a Patient: the type name selects the root
        i = 0
        while i < len(steps):
            step = steps[i]
            if step[0] == "member":
                if context is None:
                    raise Unsupported(f"{step[1]} on an element of unknown type")
                kind, choices = member(context, step[1])
                if choices is None:
                    out.append((f"child {step[1]}", Compiled(_navigate((step[1],)), kind)))
                    context = kind
                    i += 1
                    continue
                following = steps[i + 1] if i + 1 < len(steps) else None
                wanted = None
                if (
                    following is not None
                    and following[0] == "call"
                    and following[1] in ("ofType", "as")
                    and len(following[2]) == 1
                ):
                    wanted = _type_argument(following[2][0])
                if wanted is not None:
                    matching = [t for t in choices if t.lower() == wanted.lower()]
                    if not matching:
                        raise Unsupported(f"{step[1]} has no type {wanted}")
                    choices, context = matching, _type_name(matching[0])
                    i += 2
                else:
                    context = None
                    i += 1
                keys = tuple(step[1] + cap(t) for t in choices)
                out.append((f"choice {' '.join(keys)}", Compiled(_navigate(keys), context)))
                continue
            if step[0] == "index":
                index = self.constant_int(step[1])
                out.append((f"index {index}", Compiled(_index(index), context)))
            else:
                compiled = self.call(step[1], step[2], context)
                out.append((f"call {step!r}", compiled))
            context = out[-1][1].context
            i += 1
        return out

    def constant_int(self, node: Node) -> int:
        value = self.node(node, None).fn([], NO_ENV) if node[0] in ("lit", "var") else None
        if not value or type(value[0]) is not int or value[0] < 0:
            raise Unsupported("an index that is not a constant whole number")
        return int(value[0])

    # -- nodes ------------------------------------------------------------------------------

    def node(self, tree: Node, context: str | None) -> Compiled:
        tree = as_path(tree)
        kind = tree[0]
        if kind == "path":
            parts = [c for _, c in self.steps(tree[1], tree[2], context)]
            return _chain(parts, context)
        if kind == "lit":
            value = float(tree[1]) if isinstance(tree[1], Decimal) else tree[1]
            return Compiled(lambda coll, env=NO_ENV: [value], None)
        if kind == "empty":
            return Compiled(lambda coll, env=NO_ENV: [], None)
        if kind == "this":
            return Compiled(lambda coll, env=NO_ENV: coll, context)
        if kind == "var":
            return self.variable(tree[1])
        if kind == "neg":
            inner = self.node(tree[1], context)

            def negate(coll: Collection, env: Env = NO_ENV) -> Collection:
                values = inner.fn(coll, env)
                if not values:
                    return []
                value = _single(values)
                if not _is_number(value):
                    raise Defer
                return [-value]

            return Compiled(negate, inner.context, inner.may_defer)
        if kind == "type":
            return self.type_operator(tree[1], tree[2], tree[3], context)
        if kind == "op":
            return self.operator(tree[1], tree[2], tree[3], context)
        raise Unsupported(kind)

    def variable(self, name: str) -> Compiled:
        if name in self.constants:
            value = self.constants[name]
            values = value if isinstance(value, list) else [value]
            return Compiled(lambda coll, env=NO_ENV: list(values), None)
        if name in ENV_VARIABLES:
            key = "resource" if name == "rootResource" else name

            def from_env(coll: Collection, env: Env = NO_ENV) -> Collection:
                if key not in env:
                    raise Defer
                return [env[key]]

            return Compiled(from_env, None, True)
        if name in _STANDARD_VARIABLES or name.startswith(("vs-", "ext-")):
            raise Unsupported(f"%{name}")
        raise UndefinedVariable(f"%{name} is not defined (no constant of that name)")

    def type_operator(
        self, op: str, operand: Node, type_name: str, context: str | None
    ) -> Compiled:
        if op == "is" and operand == _RESOLVE:
            # `resolve() is X` on a lone resource: does the reference point at an X?
            def points_at(coll: Collection, env: Env = NO_ENV) -> Collection:
                if not coll:
                    return []
                return [reference_key(_single(coll), type_name) is not None]

            return Compiled(points_at, "boolean")
        if op == "as" and operand[0] == "path" and operand[2] and operand[2][-1][0] == "member":
            as_call = ("call", "ofType", (("path", None, (("member", type_name),)),))
            return self.node(("path", operand[1], (*operand[2], as_call)), context)
        raise Unsupported(f"{op} {type_name}")

    def operator(self, op: str, left_tree: Node, right_tree: Node, context: str | None) -> Compiled:
        left, right = self.node(left_tree, context), self.node(right_tree, context)
        lf, rf = left.fn, right.fn
        defer = left.may_defer or right.may_defer
        if op == "|":
            return Compiled(lambda c, env=NO_ENV: _dedupe(lf(c, env) + rf(c, env)), None, defer)
        if op in ("and", "or", "xor", "implies"):
            return Compiled(_logic(op, lf, rf), "boolean", defer)
        if op in ("=", "!="):
            negate = op == "!="
            plain = _plain_literal(left_tree) or _plain_literal(right_tree)

            def equality(coll: Collection, env: Env = NO_ENV) -> Collection:
                a, b = lf(coll, env), rf(coll, env)
                if not a or not b:
                    return []
                same = len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
                return [same != negate]

            return Compiled(equality, "boolean", defer or not plain)
        if op in ("<", ">", "<=", ">="):

            def compare(coll: Collection, env: Env = NO_ENV) -> Collection:
                a, b = lf(coll, env), rf(coll, env)
                if not a or not b:
                    return []
                x, y = _order(_single(a), _single(b))
                if op == "<":
                    return [x < y]
                if op == ">":
                    return [x > y]
                return [x <= y] if op == "<=" else [x >= y]

            return Compiled(compare, "boolean", True)
        if op in ("+", "-", "*", "/", "div", "mod", "&"):

            def arithmetic(coll: Collection, env: Env = NO_ENV) -> Collection:
                a, b = lf(coll, env), rf(coll, env)
                if op != "&" and (not a or not b):
                    return []
                return _arithmetic(op, a and _single(a), b and _single(b))

            return Compiled(arithmetic, None, True)
        raise Unsupported(f"operator {op}")

    def where_shortcut(self, test: Node, context: str | None) -> Fn | None:
        """where(resolve() is X) and where(field = 'text'): the store's hot filters, inline."""
        if test[0] == "type" and test[1] == "is" and test[2] == _RESOLVE:
            wanted = test[3]
            return lambda c, env=NO_ENV: [n for n in c if reference_key(n, wanted) is not None]
        if not (test[0] == "op" and test[1] == "=" and _plain_literal(test[3])):
            return None
        left = test[2]
        if not (left[0] == "path" and left[1] is None and len(left[2]) == 1):
            return None
        step = left[2][0]
        if step[0] != "member" or context is None or member(context, step[1])[1] is not None:
            return None
        general = _where(self.node(test, context).fn, False)
        key, literal = step[1], test[3][1]
        kind = type(literal)

        def where_equal(coll: Collection, env: Env = NO_ENV) -> Collection:
            out = []
            for node in coll:
                if type(node) is dict:
                    value = node.get(key)
                    if type(value) is kind and value == literal:
                        out.append(node)
                    elif type(value) is list:
                        out += general([node], env)  # a repeating field: = on collections
            return out

        return where_equal

    # -- functions ----------------------------------------------------------------------------

    def call(self, name: str, args: tuple[Node, ...], context: str | None) -> Compiled:
        simple = _SIMPLE.get(name)
        if simple is not None and not args:
            fn, keeps_type = simple
            return Compiled(fn, context if keeps_type else None)
        if name == "where" and len(args) == 1:
            fast = self.where_shortcut(args[0], context)
            if fast is not None:
                return Compiled(fast, context)
        if name in ("where", "exists") and len(args) == 1:
            test = self.node(args[0], context)
            return Compiled(_where(test.fn, name == "exists"), context, test.may_defer)
        if name == "not" and not args:
            return Compiled(_not, "boolean", True)
        if name == "join" and len(args) <= 1:
            sep = self.node(args[0], None).fn([], NO_ENV) if args else [""]
            if (
                (args and args[0][0] not in ("lit", "var"))
                or len(sep) != 1
                or type(sep[0]) is not str
            ):
                raise Unsupported("join separator")
            separator = sep[0]
            return Compiled(lambda c, env=NO_ENV: [separator.join(str(v) for v in c)], "string")
        if name == "getReferenceKey" and len(args) <= 1:
            wanted = _type_argument(args[0]) if args else None
            if args and wanted is None:
                raise Unsupported("getReferenceKey argument")

            def ref_keys(coll: Collection, env: Env = NO_ENV) -> Collection:
                keys = [reference_key(d, wanted) for d in coll]
                return [k for k in keys if k is not None]

            return Compiled(ref_keys, "string")
        if name == "extension" and len(args) == 1 and args[0][0] == "lit":
            url = args[0][1]

            def extension(coll: Collection, env: Env = NO_ENV) -> Collection:
                found = _navigate(("extension",))(coll)
                return [e for e in found if type(e) is dict and e.get("url") == url]

            return Compiled(extension, "Extension")
        if name in ("lowBoundary", "highBoundary") and not args:
            if context not in DATE_KINDS and context not in NUMBER_KINDS:
                raise Unsupported(f"{name}() of {context}")
            kind, high = context, name == "highBoundary"

            def bound(coll: Collection, env: Env = NO_ENV) -> Collection:
                if not coll:
                    return []
                value = boundary(_single(coll), kind, high)
                return [] if value is None else [value]

            return Compiled(bound, context, True)
        if name in ("ofType", "as") and len(args) == 1:
            wanted = _type_argument(args[0])
            if wanted is not None and context is not None and context.lower() == wanted.lower():
                return Compiled(lambda c, env=NO_ENV: c, context)
        raise Unsupported(f"function {name}()")


def _type_name(choice: str) -> str:
    """A choice's type as the model names it elsewhere ('DateTime' in a few R4 choices)."""
    lower = choice[0].lower() + choice[1:]
    return lower if lower in DATE_KINDS or lower in NUMBER_KINDS else choice


def _plain_literal(tree: Node) -> bool:
    """A literal whose comparison never needs fhirpathpy (not a date, not a number)."""
    if tree[0] != "lit":
        return False
    value = tree[1]
    return type(value) is bool or (type(value) is str and not _DATELIKE.match(value))


def _index(i: int) -> Fn:
    return lambda coll, env=NO_ENV: coll[i : i + 1]


def _not(coll: Collection, env: Env = NO_ENV) -> Collection:
    if not coll:
        return []
    value = _single(coll)
    if type(value) is not bool:
        raise Defer
    return [not value]


def _where(test: Fn, exists: bool) -> Fn:
    def where(coll: Collection, env: Env = NO_ENV) -> Collection:
        out = []
        for item in coll:
            got = test([item], env)
            if not got:
                continue
            if len(got) != 1 or type(got[0]) is not bool:
                raise Defer  # a criterion that is not a Boolean
            if got[0]:
                if exists:
                    return [True]
                out.append(item)
        return [False] if exists else out

    return where


def _logic(op: str, lf: Fn, rf: Fn) -> Fn:
    def logic(coll: Collection, env: Env = NO_ENV) -> Collection:
        a = _truth(lf(coll, env))
        if op == "and" and a is False:
            return [False]
        if op == "or" and a is True:
            return [True]
        if op == "implies" and a is False:
            return [True]
        b = _truth(rf(coll, env))
        if op == "and":  # a is True or None: false wins over empty
            return [False] if b is False else [] if a is None or b is None else [True]
        if op == "or":
            return [True] if b is True else [] if a is None or b is None else [False]
        if op == "xor":
            return [] if a is None or b is None else [a != b]
        # implies, a is True or None
        if a is True:
            return [] if b is None else [b]
        return [True] if b is True else []

    return logic


def _chain(parts: list[Compiled], context: str | None) -> Compiled:
    fns = [p.fn for p in parts]
    defer = any(p.may_defer for p in parts)
    result = parts[-1].context if parts else context
    if len(fns) == 1:
        return Compiled(fns[0], result, defer)

    def chain(coll: Collection, env: Env = NO_ENV) -> Collection:
        for fn in fns:
            coll = fn(coll, env)  # no early exit on empty: count(), exists() answer it
        return coll

    return Compiled(chain, result, defer)


_SIMPLE: dict[str, tuple[Fn, bool]] = {
    "first": (lambda c, env=NO_ENV: c[:1], True),
    "last": (lambda c, env=NO_ENV: c[-1:], True),
    "tail": (lambda c, env=NO_ENV: c[1:], True),
    "exists": (lambda c, env=NO_ENV: [bool(c)], False),
    "empty": (lambda c, env=NO_ENV: [not c], False),
    "count": (lambda c, env=NO_ENV: [len(c)], False),
    "getResourceKey": (
        lambda c, env=NO_ENV: [d["id"] for d in c if type(d) is dict and "id" in d],
        False,
    ),
}
