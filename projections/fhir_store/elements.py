"""_elements and _summary=data: a resource's JSON cut down, marked SUBSETTED."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson

from projections.fhirpath import CHOICES

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
_ALWAYS = ("resourceType", "id", "meta")


def _mark(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag") or [] if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    resource["meta"] = meta
    return resource


def only_elements(json_text: str, elements: Collection[str]) -> str:
    """Keep the top-level elements named (plus resourceType, id, meta)."""
    resource = orjson.loads(json_text)
    rtype = resource.get("resourceType", "")
    wanted = set(elements)
    for name in elements:  # value -> valueQuantity, valueString... for choice elements
        for choice in CHOICES.get(f"{rtype}.{name}", ()):
            wanted.add(name + choice[0].upper() + choice[1:])
    kept = {k: v for k, v in resource.items() if k in _ALWAYS or k in wanted}
    return orjson.dumps(_mark(kept)).decode()


def without_text(json_text: str) -> str:
    """_summary=data: everything but the narrative."""
    resource = orjson.loads(json_text)
    resource.pop("text", None)
    return orjson.dumps(_mark(resource)).decode()
