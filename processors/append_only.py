"""Resource types that are append-only records: created once, never updated or deleted.

An AuditEvent is the record of who accessed what; a trail its subjects could rewrite would
prove nothing. Two stages hold the line, whatever channel a write came by (the gateway, or
an event put straight onto the inbound topic):
- translate: an update (PUT) or delete of one, and any Bundle entry writing one, is refused
  (`check_appendable`);
- version: a recorded one is never replaced or deleted, whatever asked for it
  (processors/version_policy.py, Policy.APPEND_ONLY), e.g. a create that lands on an id
  already recorded with other content.
"""

from __future__ import annotations

from processors.translation import TranslationError
from schemas.outcome import Issue

APPEND_ONLY_TYPES = frozenset({"AuditEvent"})


def check_appendable(
    method: str, resource_type: str, location: str, in_bundle: bool = False
) -> None:
    """Raises a TranslationError when `method` would update or delete an append-only record,
    or (`in_bundle`) write one from a Bundle entry: an audit source creates its records with
    single POSTs, as the gateway requires (api/fhir/write_requests.py answers such entries 405)."""
    if resource_type in APPEND_ONLY_TYPES and in_bundle:
        raise TranslationError([Issue(
            f"{resource_type} is append-only: a record is created with a single POST, never "
            f"written from a Bundle entry ({method[:16]})",
            code="forbidden", location=location,
        )])  # fmt: skip
    if resource_type in APPEND_ONLY_TYPES and method != "POST":
        raise TranslationError([Issue(
            f"{resource_type} is append-only: a record is created (POST) and never updated or "
            f"deleted, so {method[:16]} is refused",
            code="forbidden", location=location,
        )])  # fmt: skip
