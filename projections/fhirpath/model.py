"""The R4 type model the compiler navigates by, and what a Reference points at."""

from __future__ import annotations

from typing import Any

from fhirpathpy.models import models

R4: dict[str, Any] = models["r4"]
CHOICES: dict[str, list[str]] = R4["choiceTypePaths"]
_PATH_TYPES: dict[str, str] = R4["path2Type"]
_ELSEWHERE: dict[str, str] = R4["pathsDefinedElsewhere"]
# Backbone elements (Observation.component) have no type of their own: their path is the type.
_BACKBONES: frozenset[str] = frozenset(
    path.rsplit(".", i)[0] for path in (*_PATH_TYPES, *CHOICES) for i in range(1, path.count("."))
)


def cap(type_name: str) -> str:
    return type_name[0].upper() + type_name[1:]


def member(context: str, name: str) -> tuple[str | None, list[str] | None]:
    """The type path reached by `name` on `context`, or the types of a choice (value[x])."""
    full = f"{context}.{name}"
    full = _ELSEWHERE.get(full, full)
    if full in CHOICES:
        return None, CHOICES[full]
    kind = _PATH_TYPES.get(full)
    if kind in ("BackboneElement", "Element") or (kind is None and full in _BACKBONES):
        return full, None
    return kind, None


def reference_key(reference: Any, resource_type: str | None = None) -> str | None:
    """The id a Reference points at ('Patient/1', '.../Patient/1/_history/2'), if of that type.

    One reading for both users: the store's `resolve() is X` and the views'
    getReferenceKey(X). An empty id or version segment is no reference.
    """
    if type(reference) is not dict:
        return None
    ref = reference.get("reference")
    if type(ref) is not str:
        return None
    parts = ref.split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        if not parts[-1]:
            return None
        parts = parts[:-2]
    if len(parts) < 2 or not parts[-1] or not parts[-2]:
        return None
    if resource_type is not None and parts[-2] != resource_type:
        return None
    return parts[-1]
