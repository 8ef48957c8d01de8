"""FHIRPath text to a small syntax tree (tuples), by precedence climbing.

Nodes: ("path", head, steps) where head is None (the input) or a term node and steps are
("member", name) | ("call", name, args) | ("index", node); ("lit", value); ("empty",);
("var", name); ("this",); ("op", symbol, left, right); ("type", "is"|"as", node, type);
("neg", node). What the grammar allows and this does not parse (date, time and quantity
literals, $index, $total) raises Unsupported, and the caller hands the expression to
fhirpathpy; what the grammar does not allow raises FHIRPathSyntaxError (fhirpathpy's parser
recovers from some errors silently, so this one decides).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

Node = tuple[Any, ...]


class FHIRPathSyntaxError(ValueError):
    """The expression is not FHIRPath."""


class Unsupported(Exception):
    """Valid FHIRPath outside the compiled subset: fhirpathpy evaluates the expression."""


_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>\d+(?:\.\d+)?)|(?P<date>@[0-9T:.+\-Z]*)"
    r"|(?P<id>[A-Za-z_][A-Za-z0-9_]*|`[^`]*`)|(?P<var>%[A-Za-z_][A-Za-z0-9_]*|%`[^`]*`|%'[^']*')"
    r"|(?P<this>\$this|\$index|\$total)|(?P<op><=|>=|!=|!~|[-+*/&|=~<>.()\[\]{},]))"
)
_CALENDAR_UNITS = frozenset(
    f"{unit}{plural}"
    for unit in ("year", "month", "week", "day", "hour", "minute", "second", "millisecond")
    for plural in ("", "s")
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f"}
# Binary operators by binding strength (FHIRPath spec, "Operator precedence").
_BINARY: dict[str, int] = {
    "implies": 1, "or": 2, "xor": 2, "and": 3, "in": 4, "contains": 4,
    "=": 5, "~": 5, "!=": 5, "!~": 5, "<": 6, ">": 6, "<=": 6, ">=": 6,
    "|": 7, "is": 8, "as": 8, "+": 9, "-": 9, "&": 9, "*": 10, "/": 10, "div": 10, "mod": 10,
}  # fmt: skip


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])


def _tokens(expression: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, text = 0, expression.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FHIRPathSyntaxError(f"unexpected {text[pos : pos + 10]!r} in {expression!r}")
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "id" and value.startswith("`"):
            value = value[1:-1]
        out.append((kind, value))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = _tokens(expression)
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self, text: str | None = None, kind: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (text is not None and tok[1] != text) or (kind and tok[0] != kind):
            raise FHIRPathSyntaxError(f"expected {text or kind} in {self.expression!r}")
        self.pos += 1
        return tok[1]

    def binary_op(self) -> str | None:
        tok = self.peek()
        if tok is None or tok[0] not in ("op", "id") or tok[1] not in _BINARY:
            return None
        return tok[1]

    def expression_(self, min_strength: int = 1) -> Node:
        left = self.unary()
        while True:
            op = self.binary_op()
            if op is None or _BINARY[op] < min_strength:
                return left
            self.pos += 1
            if op in ("is", "as"):
                left = ("type", op, left, self.type_name())
                continue
            right = self.expression_(_BINARY[op] + 1)
            left = ("op", op, left, right)

    def type_name(self) -> str:
        name = self.take(kind="id")
        if self.peek() == ("op", ".") and self.peek(1) is not None and self.peek(1)[0] == "id":  # type: ignore[index]
            self.pos += 1
            name = self.take(kind="id")  # FHIR.Quantity, System.String: the name is what counts
        return name

    def unary(self) -> Node:
        tok = self.peek()
        if tok in (("op", "-"), ("op", "+")):
            self.pos += 1
            inner = self.unary()
            return ("neg", inner) if tok == ("op", "-") else inner
        return self.postfix()

    def postfix(self) -> Node:
        head, steps = self.term()
        while True:
            tok = self.peek()
            if tok == ("op", "."):
                self.pos += 1
                steps.append(self.invocation())
            elif tok == ("op", "["):
                self.pos += 1
                steps.append(("index", self.expression_()))
                self.take("]")
            else:
                break
        if head is not None and not steps:
            return head
        return ("path", head, tuple(steps))

    def term(self) -> tuple[Node | None, list[Node]]:
        tok = self.peek()
        if tok is None:
            raise FHIRPathSyntaxError(f"unexpected end of {self.expression!r}")
        kind, text = tok
        if kind == "str":
            self.pos += 1
            return ("lit", _unescape(text)), []
        if kind == "num":
            self.pos += 1
            unit = self.peek()
            if unit is not None and (unit[0] == "str" or unit[1] in _CALENDAR_UNITS):
                raise Unsupported("quantity literals")
            return ("lit", Decimal(text) if "." in text else int(text)), []
        if kind == "date":
            raise Unsupported("date and time literals")
        if kind == "var":
            self.pos += 1
            name = text[1:].strip("`'")
            return ("var", name), []
        if kind == "this":
            if text != "$this":
                raise Unsupported(text)
            self.pos += 1
            return ("this",), []
        if tok == ("op", "("):
            self.pos += 1
            inner = self.expression_()
            self.take(")")
            return inner, []
        if tok == ("op", "{"):
            self.pos += 1
            self.take("}")
            return ("empty",), []
        if kind == "id" and text in ("true", "false") and self.peek(1) != ("op", "("):
            self.pos += 1
            return ("lit", text == "true"), []
        if kind == "id":
            return None, [self.invocation()]
        raise FHIRPathSyntaxError(f"unexpected {text!r} in {self.expression!r}")

    def invocation(self) -> Node:
        tok = self.peek()
        if tok is not None and tok[0] == "this":
            raise FHIRPathSyntaxError("$this after a dot")
        name = self.take(kind="id")
        if self.peek() != ("op", "("):
            return ("member", name)
        self.pos += 1
        args: list[Node] = []
        while self.peek() != ("op", ")"):
            args.append(self.expression_())
            if self.peek() == ("op", ","):
                self.pos += 1
        self.take(")")
        return ("call", name, tuple(args))


def parse(expression: str) -> Node:
    """The syntax tree of `expression`; FHIRPathSyntaxError when it does not parse here."""
    parser = _Parser(expression)
    tree = parser.expression_()
    if parser.peek() is not None:
        raise FHIRPathSyntaxError(f"unexpected {parser.peek()[1]!r} in {expression!r}")  # type: ignore[index]
    return tree


def union_branches(tree: Node) -> list[Node]:
    """The operands of a top-level `a | b | c`, in order."""
    if tree[0] == "op" and tree[1] == "|":
        return [*union_branches(tree[2]), *union_branches(tree[3])]
    return [tree]


def as_path(tree: Node) -> Node:
    """`(A.value as T)` and `(A.value as T).rest` as the path `A.value.ofType(T).rest`.

    On a single item `as` and ofType() agree; on several `as` is an error, and this reading
    takes them item by item (what the FHIR store's extraction has always done).
    """
    if tree[0] == "type" and tree[1] == "as" and tree[2][0] == "path" and tree[2][1] is None:
        of_type = ("call", "ofType", (("path", None, (("member", tree[3]),)),))
        return ("path", None, (*tree[2][2], of_type))
    if tree[0] == "path" and tree[1] is not None and tree[1][0] == "type":
        head = as_path(tree[1])
        if head[0] == "path":
            return ("path", None, (*head[2], *tree[2]))
    return tree
