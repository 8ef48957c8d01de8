"""/fhir/metadata claims only what works (api/fhir/capability.py), here for the append-only
AuditEvent: read and search, and create (with system/audit.write), never update or delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.fhir.capability import capability_statement
from projections.fhir_store import FhirStore
from streams.settings import Settings


@pytest.fixture(scope="module")
def resources(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    path: Path = tmp_path_factory.mktemp("capability") / "store.sqlite"
    with FhirStore.open(path) as store:
        statement = capability_statement(store, Settings(), "http://carelog.test/fhir")
    [rest] = statement["rest"]
    yield {r["type"]: r for r in rest["resource"]}


def interactions(resource: dict[str, Any]) -> set[str]:
    return {i["code"] for i in resource["interaction"]}


def test_audit_events_are_listed_as_append_only(resources: dict[str, dict[str, Any]]) -> None:
    audit = resources["AuditEvent"]
    assert interactions(audit) == {
        "read", "vread", "history-instance", "history-type", "search-type", "create",
    }  # fmt: skip
    assert audit["updateCreate"] is False
    assert audit["conditionalDelete"] == "not-supported"
    assert "system/audit.write" in audit["documentation"]


def test_other_types_keep_update_and_delete(resources: dict[str, dict[str, Any]]) -> None:
    assert {"create", "update", "delete"} <= interactions(resources["Patient"])
    assert resources["Patient"]["updateCreate"] is True
