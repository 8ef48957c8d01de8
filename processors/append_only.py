"""Resource types that are append-only records: created once, never updated or deleted.

An AuditEvent is the record of who accessed what; a trail its subjects could rewrite would
prove nothing. Two stages hold the line, whatever channel a write came by (the gateway, or
an event put straight onto the inbound topic):
- translate: an update (PUT) or delete of one is refused (`check_appendable`);
- version: a recorded one is never replaced or deleted, whatever asked for it
  (processors/version_policy.py, Policy.APPEND_ONLY), e.g. a create that lands on an id
  already recorded with other content.
"""

from __future__ import annotations

from processors.translation import TranslationError
from schemas.outcome import Issue

APPEND_ONLY_TYPES = frozenset({"AuditEvent"})


def check_appendable(method: str, resource_type: str, location: str) -> None:
    """Raises a TranslationError when `method` would update or delete an append-only record."""
    if resource_type in APPEND_ONLY_TYPES and method != "POST":
        raise TranslationError([Issue(
            f"{resource_type} is append-only: a record is created (POST) and never updated or "
            f"deleted, so {method[:16]} is refused",
            code="forbidden", location=location,
        )])  # fmt: skip
