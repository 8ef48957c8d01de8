"""The structure check of a resource without building its fhir.resources model every time.

Building an R4B model costs a Python call per nested element (fhir.resources validates each
complex element with `model_validate` in a wrap validator, plus two model validators), about
0.1 ms per Observation. What the model checks splits in two:

- the *shape*: which elements are present, null or lists of which length, unknown elements,
  cardinality, required elements, choice types (`value[x]` one of many), nulls in lists, the
  `resourceType` of every element that has one. Model validators of fhir.resources (R4B)
  read only this: whether an element is present and not null (`_validate_one_of_many`,
  `_validate_required_primitive_elements`, `reject_null_complex_elements`, and
  FHIRPrimitiveExtension's `validate_extension_or_fhir_comment_required`);
- the *leaves*: every string, number and boolean, each checked by the annotation of the
  element it is the value of (FHIR primitive types: regexes, dates, decimals, lengths), one
  at a time and without looking at its siblings.

So a resource with the shape of one the model accepted is valid exactly when each of its
leaves passes the annotation the model gave that leaf: `known_valid` answers True then, with
one pydantic call on a tuple of the leaves. The annotations per leaf come from walking the
model's fields along a resource the model accepted (`learn`). Anything the walk does not
follow (a resource nested in a resource, a value not of JSON's types, an element of a type
the annotation does not expect) leaves the shape to the model every time. The answer is only
ever "valid, for sure" or "ask the model": the model alone words what is wrong, so every
issue stays the one fhir.resources reports.

Pydantic checks the resource's own elements in JSON mode (the validator reads JSON text) and
the elements below them in Python mode (fhir.resources validates each nested element with
`model_validate` on its dict), so the leaves are checked the same way: one tuple from JSON
text, one from Python values.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from pydantic import TypeAdapter, ValidationError

# Shapes remembered at most; an ORU^R01, an ADT or a device reading gives a handful each,
# FHIR from clients may give many. The oldest is forgotten first.
MAX_SHAPES = 4096
# Learning a shape builds two pydantic validators (about 5 ms, 14 kB); a shape is learned the
# second time the model accepts it, so input whose shapes never repeat (a list one longer
# each time) costs a walk per resource, not a build.
SIGHTINGS_TO_LEARN = 2

_DICT, _LIST, _END = object(), object(), object()  # shape tokens, never equal to a key
_LEAF_TYPES = (str, int, float, bool)


class _NotFollowed(Exception):
    """The shape holds something the leaf walk does not follow: leave it to the model."""


@dataclass(frozen=True, slots=True)
class _LeafChecks:
    """The annotations of one shape's leaves: the resource's own (checked from JSON text)
    and those below them (checked from Python values), in the order `_shape` lists them."""

    own: TypeAdapter[tuple[Any, ...]] | None
    nested: TypeAdapter[tuple[Any, ...]] | None

    def pass_(self, own: list[Any], nested: list[Any]) -> bool:
        try:
            if self.own is not None:
                checked = self.own.validate_json(orjson.dumps(own))
                if None in checked:  # no leaf is null: one turned null would change the shape
                    return False
            if self.nested is not None and None in self.nested.validate_python(nested):
                return False
        except (ValidationError, TypeError):  # TypeError: orjson refuses a huge integer
            return False
        return True


_NO_CHECKS = object()  # a shape whose leaves the walk does not follow: the model decides
_shapes: dict[tuple[Any, ...], _LeafChecks | object] = {}
_sightings: dict[tuple[Any, ...], int] = {}  # shapes the model accepted, not yet learned


def known_valid(model: type[FHIRAbstractModel], resource: dict[str, Any]) -> bool:
    """True only when `resource` is certainly valid for `model`: its shape is one the model
    accepted and every leaf passes the annotation it has there. False: ask the model."""
    try:
        key, own, nested = _shape(model, resource)
    except _NotFollowed:
        return False
    checks = _shapes.get(key)
    return isinstance(checks, _LeafChecks) and checks.pass_(own, nested)


def learn(model: type[FHIRAbstractModel], resource: dict[str, Any]) -> None:
    """Count a sighting of the shape of `resource`, which `model` has just accepted; at
    SIGHTINGS_TO_LEARN, remember the shape with the annotation of each of its leaves."""
    try:
        key, own, nested = _shape(model, resource)
    except _NotFollowed:
        return
    if key in _shapes:
        return
    sightings = _sightings.pop(key, 0) + 1
    if sightings < SIGHTINGS_TO_LEARN:
        _remember(_sightings, key, sightings)
        return
    checks: _LeafChecks | object = _NO_CHECKS
    try:
        own_types: list[Any] = []
        nested_types: list[Any] = []
        _leaf_types(model, resource, own_types, nested_types)
        learned = _LeafChecks(_tuple_adapter(own_types), _tuple_adapter(nested_types))
        # The model accepted these very leaves: the checks must too, or they are not its own.
        if learned.pass_(own, nested):
            checks = learned
    except _NotFollowed:
        pass
    _remember(_shapes, key, checks)


def _remember(table: dict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> None:
    if len(table) >= MAX_SHAPES:
        del table[next(iter(table))]
    table[key] = value


def forget_shapes() -> None:
    _shapes.clear()
    _sightings.clear()


def _shape(
    model: type[FHIRAbstractModel], resource: dict[str, Any]
) -> tuple[tuple[Any, ...], list[Any], list[Any]]:
    """The shape of `resource` as a hashable key, its own leaves and the leaves below."""
    tokens: list[Any] = [model]
    own: list[Any] = []
    nested: list[Any] = []
    for key, value in resource.items():
        tokens.append(key)
        if key == "resourceType" and type(value) is str:
            tokens.append(("resourceType", value))
        else:
            _walk(value, tokens, own, nested)
    return tuple(tokens), own, nested


def _walk(node: Any, tokens: list[Any], leaves: list[Any], nested: list[Any]) -> None:
    kind = type(node)
    if kind is dict:
        tokens.append(_DICT)
        for key, value in node.items():
            tokens.append(key)
            kind = type(value)
            if kind is str and key == "resourceType":
                tokens.append(("resourceType", value))  # it chooses and checks the model
            elif kind in _LEAF_TYPES:  # most children are leaves: no call for them
                tokens.append(kind)
                nested.append(value)
            else:
                _walk(value, tokens, nested, nested)
        tokens.append(_END)
    elif kind is list:
        tokens.append(_LIST)
        for item in node:
            _walk(item, tokens, leaves, nested)
        tokens.append(_END)
    elif node is None:
        tokens.append(None)
    elif kind in _LEAF_TYPES:
        tokens.append(kind)
        leaves.append(node)
    else:
        raise _NotFollowed(kind.__name__)


def _leaf_types(
    model: type[FHIRAbstractModel],
    node: dict[str, Any],
    leaves: list[Any],
    nested: list[Any],
) -> None:
    """The annotation of every leaf of `node` (an element of type `model`), in `_walk`'s
    order: leaves of `node`'s own elements into `leaves`, those further down into `nested`."""
    fields = _fields_by_key(model)
    for key, value in node.items():
        if key == "resourceType" and type(value) is str:
            continue
        annotation = fields.get(key)
        if annotation is None:
            raise _NotFollowed(key)
        item = _list_item(annotation)
        element = _element_model(item if item is not None else annotation)
        if value is None:
            continue
        if element is not None:
            for child in _items(value, item):
                if child is not None:
                    if type(child) is not dict:
                        raise _NotFollowed(key)
                    _leaf_types(element, child, nested, nested)
        else:
            for child in _items(value, item):
                if child is not None:
                    if type(child) not in _LEAF_TYPES:
                        raise _NotFollowed(key)
                    leaves.append(item if item is not None else annotation)


def _items(value: Any, item: Any) -> list[Any]:
    """The values of an element: a list's items when the element repeats, else itself."""
    if (item is not None) != (type(value) is list):
        raise _NotFollowed("a list where one value is expected, or the other way round")
    return value if item is not None else [value]


@cache
def _fields_by_key(model: type[FHIRAbstractModel]) -> dict[str, Any]:
    """Each field's annotation (with its constraints) under its JSON name and its own name,
    both of which the models accept (populate_by_name)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation: Any = info.annotation
        if info.metadata:
            annotation = typing.Annotated[(annotation, *info.metadata)]
        fields[name] = annotation
        if info.alias:
            fields[info.alias] = annotation
    return fields


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _list_item(annotation: Any) -> Any:
    """The item annotation of a repeating element; None when it does not repeat."""
    bare = _without_none(annotation)
    if typing.get_origin(bare) is list:
        return typing.get_args(bare)[0]
    if _mentions_list(bare):  # e.g. Union[str, List[str]]: neither one nor the other
        raise _NotFollowed(str(annotation))
    return None


def _mentions_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) is list:
        return True
    return any(_mentions_list(a) for a in typing.get_args(annotation))


def _element_model(annotation: Any) -> type[FHIRAbstractModel] | None:
    """The model of a complex element's type; None for a primitive one."""
    found = _fhir_types(annotation)
    if not found:
        return None
    if len(found) > 1 or issubclass(found[0], FhirElementOrResourceBase):
        raise _NotFollowed(str(annotation))  # a resource inside, chosen by its resourceType
    model: type[FHIRAbstractModel] = found[0].get_model_klass()
    return model


def _fhir_types(annotation: Any) -> list[type[FhirBase]]:
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        return [annotation]
    return [t for a in typing.get_args(annotation) for t in _fhir_types(a)]


def _tuple_adapter(annotations: list[Any]) -> TypeAdapter[tuple[Any, ...]] | None:
    if not annotations:
        return None
    shape: Any = tuple.__class_getitem__(tuple(annotations))  # tuple[a, b, ...], built
    adapter: TypeAdapter[tuple[Any, ...]] = TypeAdapter(shape)
    return adapter
