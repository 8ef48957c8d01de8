"""Deterministic FHIR ids: the same business identifiers always give the same id.

An id is a UUIDv5 in carelog's own namespace over `ResourceType|part|part...`, so the
same message processed twice yields the same resources with the same ids
(DESIGN.md, "Identity, versions, idempotency").
"""

from __future__ import annotations

import uuid

# Fixed forever: changing it would change every id carelog has ever assigned.
CARELOG_NAMESPACE = uuid.UUID("6f0c2a4e-8d1b-5c3a-9e7f-0a1b2c3d4e5f")


def resource_id(resource_type: str, *parts: str) -> str:
    """The id of the `resource_type` resource identified by `parts` (authority, value, ...)."""
    return str(uuid.uuid5(CARELOG_NAMESPACE, resource_type + "|" + "|".join(parts)))
