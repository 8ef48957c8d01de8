"""What a FHIR write does, parsed once from its method and URL (api/fhir/write_requests.py): the
scope it needs and the resource the gateway waits on come from that one parse (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import BadRequest, MethodNotAllowed
from api.fhir.write_requests import Write, bundle_writes, check_resources, need_of, single_write
from api.fhir.write_targets import Target, resource_id, target_of
from api.security.scopes import Need, missing

EVENT = "9a8b7c6d-0000-4000-8000-000000000001"
OBSERVATION = {"resourceType": "Observation", "status": "final", "code": {"text": "pulse"}}
PATIENT = {"resourceType": "Patient", "name": [{"family": "Okafor"}]}


def entry(method: str, url: str, resource: dict[str, Any] | None = None,
          **request: str) -> dict[str, Any]:  # fmt: skip
    out: dict[str, Any] = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        out["resource"] = resource
    return out


def bundle(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def needs(*entries: dict[str, Any]) -> list[Need]:
    return [need_of(w) for w in bundle_writes(bundle(*entries))]


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_the_need_comes_from_the_url_not_from_a_decoy_resource(kind: str) -> None:
    decoy = entry("DELETE", "Patient/x", {"resourceType": "Observation"})
    writes = bundle_writes(bundle(decoy, kind=kind))
    assert [need_of(w) for w in writes] == [Need("Patient", "d")]
    with pytest.raises(BadRequest) as refused:
        check_resources(writes)
    [issue] = refused.value.issues
    assert issue.location == "Bundle.entry[0].resource.resourceType"
    assert "Bundle.entry[0]" in issue.diagnostics
    assert "'Observation'" in issue.diagnostics and "'Patient'" in issue.diagnostics


@pytest.mark.parametrize(
    ("entry_", "need"),
    [
        (entry("POST", "Patient", PATIENT), Need("Patient", "c")),
        (entry("POST", "/Patient", PATIENT, ifNoneExist="identifier=a|1"), Need("Patient", "c")),
        (entry("PUT", "Patient/p-1", PATIENT), Need("Patient", "u")),
        (entry("PUT", "Patient?identifier=a|1", PATIENT), Need("Patient", "u")),
        (entry("PATCH", "Patient/p-1"), Need("Patient", "u")),
        (entry("DELETE", "Patient/p-1"), Need("Patient", "d")),
        (entry("DELETE", "Patient?identifier=a|1"), Need("Patient", "d")),
        (entry("DELETE", "Patient/p-1", {**PATIENT, "id": "p-1"}), Need("Patient", "d")),
        (entry("DELETE", "Patient/p-1", {"resourceType": "Observation"}), Need("Patient", "d")),
        (entry("PATCH", "Patient/p-1", {"resourceType": "Parameters"}), Need("Patient", "u")),
        (entry("GET", "Patient/p-1/_history/2"), Need("Patient", "r")),
        (entry("GET", "AuditEvent?date=gt2026"), Need("AuditEvent", "r")),
    ],
)
def test_each_entry_needs_its_method_on_its_url_type(entry_: dict[str, Any], need: Need) -> None:
    assert needs(entry_) == [need]


@pytest.mark.parametrize(
    ("entry_", "location"),
    [
        (entry("POST", "Patient/p-1", PATIENT), "Bundle.entry[0].request.url"),
        (entry("PUT", "Patient", PATIENT), "Bundle.entry[0].request.url"),
        (entry("DELETE", "Patient/p-1/_history/2"), "Bundle.entry[0].request.url"),
        (entry("DELETE", "Patient/bad id!"), "Bundle.entry[0].request.url"),
        (entry("DELETE", "http://elsewhere/fhir/Patient/p-1"), "Bundle.entry[0].request.url"),
        (entry("PUT", "Observation/o-1", PATIENT), "Bundle.entry[0].resource.resourceType"),
        (entry("POST", "Observation", PATIENT), "Bundle.entry[0].resource.resourceType"),
        (entry("POST", "Observation"), "Bundle.entry[0].resource"),
    ],
)
def test_entries_whose_url_does_not_say_what_they_do_are_refused(
    entry_: dict[str, Any], location: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        check_resources(bundle_writes(bundle(entry("GET", "Patient"), entry_)))
    assert refused.value.issues[0].location == location.replace("entry[0]", "entry[1]")


def test_resources_of_the_url_type_and_patches_pass() -> None:
    check_resources(bundle_writes(bundle(
        entry("POST", "Patient", PATIENT),
        entry("DELETE", "Patient/p-1", {**PATIENT, "id": "p-1"}),
        entry("PATCH", "Patient/p-2", {"resourceType": "Parameters"}),
        entry("PATCH", "Patient/p-3", {"resourceType": "Binary"}),
        entry("DELETE", "Patient/p-4"),
    )))  # fmt: skip


def test_an_observation_write_scope_never_covers_a_patient_entry() -> None:
    lacking = missing(["system/Observation.write"], needs(entry("DELETE", "Patient/x")))
    assert lacking == [Need("Patient", "d")]


def test_targets_and_needs_come_from_the_same_parse() -> None:
    writes = bundle_writes(bundle(
        entry("POST", "Patient", PATIENT, ifNoneExist="identifier=a|1"),
        entry("POST", "Observation", OBSERVATION),
        entry("PUT", "Observation/o-1", {**OBSERVATION, "id": "o-1"}),
        entry("DELETE", "Patient/x"),
        entry("DELETE", "Patient?identifier=a|2"),
        entry("GET", "Patient/x"),
    ))  # fmt: skip
    targets = [target_of(w, EVENT) for w in writes]
    assert targets == [
        Target("Patient", resource_id("Patient", "a", "1"), "POST", PATIENT, if_none_exist=True),
        Target("Observation", resource_id("Observation", EVENT, "1"), "POST", OBSERVATION),
        Target("Observation", "o-1", "PUT", {**OBSERVATION, "id": "o-1"}),
        Target("Patient", "x", "DELETE", None),
        None,  # a conditional delete names no resource before the search
        None,  # a read writes nothing
    ]
    for write, target in zip(writes, targets, strict=True):
        if target is not None:
            assert need_of(write).resource == target.resource_type


def test_a_single_request_shares_the_parse() -> None:
    create = single_write("POST", "Patient", None, "identifier=a|1")
    assert need_of(create) == Need("Patient", "c")
    assert target_of(create, EVENT) == Target("Patient", resource_id("Patient", "a", "1"),
                                              "POST", None, if_none_exist=True)  # fmt: skip
    assert need_of(single_write("DELETE", "Patient", "p-1", None)) == Need("Patient", "d")
    assert target_of(single_write("POST", "Patient", None, None), EVENT) == Target(
        "Patient", resource_id("Patient", EVENT), "POST", None
    )


# --- AuditEvent: append-only ------------------------------------------------------------


def test_creating_an_audit_event_needs_the_audit_scope() -> None:
    assert need_of(single_write("POST", "AuditEvent", None, None)) == Need("audit", "c")


@pytest.mark.parametrize(
    "write",
    [
        single_write("PUT", "AuditEvent", "a-1", None),
        single_write("DELETE", "AuditEvent", "a-1", None),
        *bundle_writes(bundle(
            entry("POST", "AuditEvent", {"resourceType": "AuditEvent"}),
            entry("PUT", "AuditEvent/a-1", {"resourceType": "AuditEvent"}),
            entry("PATCH", "AuditEvent/a-1"),
            entry("DELETE", "AuditEvent/a-1"),
            entry("DELETE", "AuditEvent?date=lt2026"),
        )),
    ],
)  # fmt: skip
def test_any_other_write_to_an_audit_event_is_405(write: Write) -> None:
    with pytest.raises(MethodNotAllowed) as refused:
        need_of(write)
    [issue] = refused.value.issues
    assert "append-only" in issue.diagnostics
    if write.entry is not None:
        assert issue.location == f"Bundle.entry[{write.entry}].request.method"
    else:
        assert refused.value.headers["Allow"] == "GET, HEAD"
