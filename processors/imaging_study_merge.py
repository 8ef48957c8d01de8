"""Fold ImagingStudy resources of one study, one DICOM instance at a time, into one.

`dicom_header.translate_dicom` emits an ImagingStudy holding the single series and
instance of its object. A stage that keeps the current resource per key can merge each new
one into it, so the study grows instead of being replaced by its latest instance.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Hashable
from typing import Any


def merge_imaging_study(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The study holding the series and instances of both, unioned by UID.

    Study, series and instance elements present in `new` win over `previous` (the later
    object describes the study as it is now); elements only in `previous` are kept.
    Identifiers and modalities are unioned. Series and instances come out ordered by
    number, then UID, so the result does not depend on the order the instances arrived
    in; the counts (numberOfSeries, numberOfInstances) are recomputed. Neither argument
    is changed.

    Raises:
        ValueError: the two are not the same ImagingStudy (resourceType and id).
    """
    for resource in (previous, new):
        if resource.get("resourceType") != "ImagingStudy":
            raise ValueError("merge_imaging_study merges ImagingStudy resources")
    if previous.get("id") != new.get("id"):
        raise ValueError(f"different studies: {previous.get('id')} and {new.get('id')}")
    merged = {**copy.deepcopy(previous), **copy.deepcopy(new)}
    for key, identity in (("identifier", _identifier_key), ("modality", _coding_key)):
        items = _union(previous.get(key, []), new.get(key, []), identity)
        if items:
            merged[key] = items
    series = _union(previous.get("series", []), new.get("series", []), _uid, _merge_series)
    series = sorted((_counted(s) for s in series), key=_order)
    merged.pop("series", None)
    if series:  # FHIR JSON has no empty arrays
        merged["series"] = series
    merged["numberOfSeries"] = len(series)
    merged["numberOfInstances"] = sum(s["numberOfInstances"] for s in series)
    return merged


def _merge_series(previous: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    instances = _union(previous.get("instance", []), new.get("instance", []), _uid)
    return {**previous, **new, "instance": instances}


def _counted(series: dict[str, Any]) -> dict[str, Any]:
    instances = sorted(series.get("instance", []), key=_order)
    return {**series, "numberOfInstances": len(instances), "instance": instances}


def _union(
    previous: list[dict[str, Any]],
    new: list[dict[str, Any]],
    key: Callable[[dict[str, Any]], Hashable],
    combine: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """`previous` then the items of `new` it lacks; an item in both is combined (new wins)."""
    out = {key(item): copy.deepcopy(item) for item in previous}
    for item in new:
        k = key(item)
        if k in out and combine is not None:
            out[k] = combine(out[k], copy.deepcopy(item))
        elif k in out:
            out[k] = {**out[k], **copy.deepcopy(item)}
        else:
            out[k] = copy.deepcopy(item)
    return list(out.values())


def _uid(item: dict[str, Any]) -> Hashable:
    return item.get("uid")


def _identifier_key(item: dict[str, Any]) -> Hashable:
    return (item.get("system"), item.get("value"))


def _coding_key(item: dict[str, Any]) -> Hashable:
    return (item.get("system"), item.get("code"))


def _order(item: dict[str, Any]) -> tuple[bool, int, str]:
    number = item.get("number")
    return (number is None, number if isinstance(number, int) else 0, str(item.get("uid")))
