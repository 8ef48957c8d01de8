"""Mapping rules of the ADT / SIU / MDM families and of the visit segments every message carries
(PV1, DG1, PR1, OBX in ADT, IN1/IN2, GT1, PID-18), one rule per test, on inline messages."""

from __future__ import annotations

from typing import Any

import pytest

from processors.hl7v2.adapter import translate_hl7v2
from processors.hl7v2.errors import UnsupportedMessageType
from processors.hl7v2.mapping import MAPPERS, map_hl7v2
from processors.translation import TranslationError
from processors.validation import resource_issues
from tests.processors.hl7v2.test_mapping_rules import seg

MSH = "MSH|^~\\&|EPICADT|NWH|CARELOG|CARELOG|{time}||{type}|{control}|P|2.7"
PID = seg("PID", {1: "1", 3: "MRN1^^^NWH^MR", 5: "Doe^Jane", 7: "19800101", 8: "F"})
VISIT = "V100^^^NWH^VN"


def pv1(**fields: str) -> str:
    named = {"klass": 2, "here": 3, "prior": 6, "visit": 19, "admit": 44, "discharge": 45}
    values = {1: "1", 2: "I", 3: "3E^301^A^NWH"}
    values.update({named[k]: v for k, v in fields.items()})
    return seg("PV1", values)


def translated(mtype: str, *segments: str, time: str = "20261201080000-0500") -> list[Any]:
    trigger = mtype.split("^")[1]
    evn = f"EVN|{trigger}|{time}"
    header = MSH.format(time=time, type=mtype, control=f"C-{trigger}-{time}")
    resources = map_hl7v2("\r".join([header, evn, *segments]).encode()).resources
    assert [i for r in resources for i in resource_issues(r)] == []
    return resources


def of_type(resources: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == rtype]


def only(resources: list[dict[str, Any]], rtype: str) -> dict[str, Any]:
    found = of_type(resources, rtype)
    assert len(found) == 1, [r["resourceType"] for r in resources]
    return found[0]


# --- message types ------------------------------------------------------------------------

NEW_TYPES = [
    *(("ADT", f"A{n:02d}") for n in (9, 10, 12, 14, 15, 16, 17, 21, 22, 23, 24, 25, 26, 27)),
    *(("ADT", f"A{n:02d}") for n in (29, 32, 33, 34, 35, 36, 37, 38, 39, 41, 44, 45, 47)),
    *(("ADT", f"A{n:02d}") for n in (50, 51, 52, 53, 54, 55, 60, 61, 62)),
    ("SIU", "S16"),
    ("SIU", "S17"),
    ("SIU", "S26"),
    *(("MDM", f"T{n:02d}") for n in (1, 3, 4, 5, 6, 7, 8, 9, 10, 11)),
]


@pytest.mark.parametrize(("code", "trigger"), NEW_TYPES, ids=lambda v: str(v))
def test_new_message_types_are_registered(code: str, trigger: str) -> None:
    assert (code, trigger) in MAPPERS


@pytest.mark.parametrize("mtype", ["ADT^A18", "ADT^A99", "MDM^T12", "SIU^S18"])
def test_a_type_still_not_translated_is_refused_as_not_supported(mtype: str) -> None:
    payload = "\r".join([MSH.format(time="20261201", type=mtype, control="X"), PID]).encode()
    with pytest.raises(UnsupportedMessageType):
        map_hl7v2(payload)
    with pytest.raises(TranslationError) as info:
        translate_hl7v2(payload, "event-1")
    assert info.value.issues[0].code == "not-supported"
    assert info.value.issues[0].location == "MSH-9"


# --- Encounter.status per trigger (the IG's table 0003 map, else the event's meaning) -------


@pytest.mark.parametrize(
    ("trigger", "status"),
    [
        ("A04", "planned"),  # the IG: register -> planned
        ("A08", "unknown"),  # the IG: an update does not convey the status
        ("A14", "planned"),
        ("A15", "in-progress"),
        ("A16", "in-progress"),
        ("A21", "onleave"),
        ("A22", "in-progress"),
        ("A23", "entered-in-error"),
        ("A25", "in-progress"),
        ("A26", "in-progress"),
        ("A27", "cancelled"),
        ("A38", "cancelled"),
        ("A54", "unknown"),
    ],
)
def test_encounter_status_by_trigger(trigger: str, status: str) -> None:
    resources = translated(f"ADT^{trigger}", PID, pv1(visit=VISIT, admit="20261201070000-0500"))
    assert only(resources, "Encounter")["status"] == status


def test_a08_with_a_discharge_time_is_finished() -> None:
    resources = translated("ADT^A08", PID, pv1(visit=VISIT, discharge="20261203100000-0500"))
    assert only(resources, "Encounter")["status"] == "finished"


def test_a09_departing_leaves_the_prior_location() -> None:
    resources = translated(
        "ADT^A09", PID, pv1(visit=VISIT, here="XRAY^^^NWH", prior="3E^301^A^NWH")
    )
    locations = only(resources, "Encounter")["location"]
    assert [loc["status"] for loc in locations] == ["active", "completed"]


# --- Encounter id without a visit number --------------------------------------------------


def test_a08_without_visit_number_updates_the_a01_encounter_by_admit_time() -> None:
    admitted = "20261201073000-0500"
    a01 = translated("ADT^A01", PID, pv1(admit=admitted), time="20261201080000-0500")
    a08 = translated("ADT^A08", PID, pv1(admit=admitted), time="20261202090000-0500")
    assert only(a08, "Encounter")["id"] == only(a01, "Encounter")["id"]


def test_a08_without_visit_number_or_admit_time_makes_no_second_encounter() -> None:
    a08 = translated("ADT^A08", PID, pv1(), time="20261202090000-0500")
    assert of_type(a08, "Encounter") == []
    assert len(of_type(a08, "Patient")) == 1


def test_an_admission_without_visit_number_or_admit_time_keys_on_its_event_time() -> None:
    a01 = translated("ADT^A01", PID, pv1(), time="20261201080000-0500")
    resend = translated("ADT^A01", PID, pv1(), time="20261201080000-0500")
    assert only(a01, "Encounter")["id"] == only(resend, "Encounter")["id"]


# --- Patient identifiers and names ----------------------------------------------------------


def test_pid_2_4_20_identifiers_beside_pid_3_and_19() -> None:
    pid = seg(
        "PID",
        {
            1: "1",
            2: "EXT9^^^HIE^PI",
            3: "MRN1^^^NWH^MR",
            4: "ALT7^^^WEST^PI",
            5: "Doe^Jane",
            19: "123-45-6789",
            20: "D555^WI^20300101",
        },
    )
    patient = only(translated("ADT^A31", pid), "Patient")
    values = [i["value"] for i in patient["identifier"]]
    assert values == ["MRN1", "EXT9", "ALT7", "123-45-6789", "D555"]
    license_ = patient["identifier"][-1]
    assert license_["type"]["coding"][0]["code"] == "DL"
    assert license_["assigner"] == {"display": "WI"}
    assert license_["period"] == {"end": "2030-01-01"}
    # PID-3 still decides the id: the same patient as without the other identifiers.
    assert patient["id"] == only(translated("ADT^A31", PID), "Patient")["id"]


def test_xpn15_called_by_is_a_nickname_of_its_own() -> None:
    pid = seg("PID", {1: "1", 3: "MRN1^^^NWH^MR", 5: "Doe^Katherine^^^^^L" + "^" * 8 + "Kate"})
    names = only(translated("ADT^A31", pid), "Patient")["name"]
    assert names == [
        {"use": "official", "family": "Doe", "given": ["Katherine"]},
        {"use": "nickname", "given": ["Kate"]},
    ]


# --- visit segments in every message --------------------------------------------------------

ORU_OBR = seg("OBR", {1: "1", 3: "F1^LAB", 4: "2157-6^CK^LN", 25: "F"})
ORU_OBX = seg("OBX", {1: "1", 2: "NM", 3: "2157-6^CK^LN", 5: "412", 6: "U/L", 11: "F"})
DG1 = seg("DG1", {1: "1", 3: "I21.4^NSTEMI^I10", 6: "W"})
PR1 = seg("PR1", {1: "1", 3: "0270346^PTCA^ICD10PCS", 5: "20261201113000-0500"})


@pytest.mark.parametrize(
    ("mtype", "body"),
    [
        ("ORU^R01^ORU_R01", [ORU_OBR, ORU_OBX]),
        ("ORM^O01", [seg("ORC", {1: "NW", 2: "P1^CPOE"}), seg("OBR", {1: "1", 2: "P1^CPOE", 4: "X^x^L"})]),
        ("VXU^V04", [seg("RXA", {1: "0", 2: "1", 3: "20261201", 5: "08^HepB^CVX", 6: "0.5", 7: "mL^^UCUM"})]),
        ("MDM^T02", [seg("TXA", {1: "1", 2: "DS", 3: "TX", 12: "D1^NWH"}), seg("OBX", {1: "1", 2: "TX", 3: "X^x^L", 5: "text", 11: "F"})]),
    ],
)  # fmt: skip
def test_every_message_with_a_visit_emits_its_encounter_condition_and_procedure(
    mtype: str, body: list[str]
) -> None:
    resources = translated(mtype, PID, pv1(visit=VISIT), DG1, PR1, *body)
    encounter = only(resources, "Encounter")
    assert encounter["status"] == "unknown"  # such a message does not convey it
    reference = {"reference": f"Encounter/{encounter['id']}"}
    assert only(resources, "Condition")["encounter"] == reference
    procedure = only(resources, "Procedure")
    assert procedure["encounter"] == reference
    assert procedure["status"] == "completed"
    assert procedure["performedDateTime"] == "2026-12-01T11:30:00-05:00"


def test_the_encounter_of_a_result_is_the_adt_feeds_encounter() -> None:
    adt = translated("ADT^A01", PID, pv1(visit=VISIT))
    oru = translated("ORU^R01^ORU_R01", PID, pv1(visit=VISIT), ORU_OBR, ORU_OBX)
    assert only(oru, "Encounter")["id"] == only(adt, "Encounter")["id"]
    assert only(oru, "Observation")["encounter"] == {
        "reference": f"Encounter/{only(adt, 'Encounter')['id']}"
    }


def test_adt_obx_becomes_an_observation_of_the_visit_with_its_note() -> None:
    obx = seg(
        "OBX",
        {1: "1", 2: "NM", 3: "29463-7^Body weight^LN", 5: "72.5", 6: "kg^^UCUM", 11: "F"},
    )
    resources = translated("ADT^A01", PID, pv1(visit=VISIT), obx, "NTE|1||on admission")
    observation = only(resources, "Observation")
    assert observation["valueQuantity"]["value"] == 72.5
    assert observation["encounter"] == {
        "reference": f"Encounter/{only(resources, 'Encounter')['id']}"
    }
    assert observation["note"] == [{"text": "on admission"}]


def test_in1_in2_become_a_coverage_paid_by_the_insurance_company() -> None:
    in1 = seg(
        "IN1",
        {
            1: "1",
            2: "PPO1^Gold PPO",
            3: "ACME^^^NWH",
            4: "Acme Health",
            8: "G77",
            12: "20260101",
            13: "20261231",
            17: "SEL",
            36: "POL9",
        },
    )
    in2 = seg("IN2", {61: "MB55^^^ACME"})
    resources = translated("ADT^A04", PID, pv1(visit=VISIT), in1, in2)
    coverage = only(resources, "Coverage")
    payor = only(resources, "Organization")
    assert coverage["payor"] == [
        {"reference": f"Organization/{payor['id']}", "display": "Acme Health"}
    ]
    assert coverage["relationship"]["coding"][0]["code"] == "self"
    assert coverage["period"] == {"start": "2026-01-01", "end": "2026-12-31"}
    assert [c["value"] for c in coverage["class"]] == ["PPO1", "G77"]
    assert [i["value"] for i in coverage["identifier"]] == ["POL9", "MB55"]
    assert coverage["subscriberId"] == "POL9"


def test_in1_without_a_payor_is_left_out() -> None:
    resources = translated("ADT^A04", PID, pv1(visit=VISIT), seg("IN1", {1: "1", 2: "PPO1"}))
    assert of_type(resources, "Coverage") == []


def test_pid18_and_gt1_become_an_account_with_its_guarantors() -> None:
    pid = seg("PID", {1: "1", 3: "MRN1^^^NWH^MR", 5: "Doe^Jane", 18: "AC1^^^NWH^AN"})
    self_pay = seg("GT1", {1: "1", 3: "Doe^Jane", 11: "SEL"})
    parent = seg("GT1", {1: "2", 3: "Doe^John", 11: "FTH^Father^HL70063"})
    resources = translated("ADT^A01", pid, pv1(visit=VISIT), self_pay, parent)
    account = only(resources, "Account")
    patient = only(resources, "Patient")
    guarantor = only(resources, "RelatedPerson")
    assert account["identifier"][0]["value"] == "AC1"
    assert account["subject"] == [{"reference": f"Patient/{patient['id']}"}]
    assert account["guarantor"] == [
        {"party": {"reference": f"Patient/{patient['id']}"}},
        {"party": {"reference": f"RelatedPerson/{guarantor['id']}"}},
    ]


# --- merges, links, swaps, allergies ------------------------------------------------------


@pytest.mark.parametrize(("trigger", "mrg"), [("A34", {1: "OLD1^^^NWH^MR"}), ("A47", {1: "OLD1^^^NWH^MR"}), ("A39", {4: "OLD1^^^NWH^MR"})])  # fmt: skip
def test_identifier_merges_link_the_old_record_to_the_survivor(
    trigger: str, mrg: dict[int, str]
) -> None:
    survivor, old = of_type(translated(f"ADT^{trigger}", PID, seg("MRG", mrg)), "Patient")
    assert survivor["link"] == [
        {"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"}
    ]
    assert old["active"] is False and old["link"][0]["type"] == "replaced-by"


def test_a41_account_merge_keeps_the_survivor_active_and_the_old_inactive() -> None:
    pid = seg("PID", {1: "1", 3: "MRN1^^^NWH^MR", 18: "AC1^^^NWH^AN"})
    accounts = of_type(translated("ADT^A41", pid, seg("MRG", {3: "AC0^^^NWH^AN"})), "Account")
    assert [(a["identifier"][0]["value"], a["status"]) for a in accounts] == [
        ("AC1", "active"),
        ("AC0", "inactive"),
    ]


def test_a24_links_and_a37_unlinks_two_patients() -> None:
    other = seg("PID", {1: "2", 3: "MRN2^^^WEST^MR"})
    first, second = of_type(translated("ADT^A24", PID, other), "Patient")
    assert first["link"] == [{"other": {"reference": f"Patient/{second['id']}"}, "type": "seealso"}]
    assert second["link"] == [{"other": {"reference": f"Patient/{first['id']}"}, "type": "seealso"}]
    assert all("link" not in p for p in of_type(translated("ADT^A37", PID, other), "Patient"))


def test_a17_swaps_two_patients_beds() -> None:
    other = seg("PID", {1: "2", 3: "MRN2^^^NWH^MR"})
    resources = translated(
        "ADT^A17", PID, pv1(visit=VISIT, here="3E^302^B^NWH"), other, pv1(visit="V200^^^NWH^VN")
    )
    patients, encounters = of_type(resources, "Patient"), of_type(resources, "Encounter")
    assert [e["subject"]["reference"] for e in encounters] == [
        f"Patient/{p['id']}" for p in patients
    ]
    assert {e["status"] for e in encounters} == {"in-progress"}


def test_a29_delete_person_keeps_the_record_inactive() -> None:
    assert only(translated("ADT^A29", PID), "Patient")["active"] is False


def test_a60_iam_allergies_with_onset_and_delete() -> None:
    added = seg(
        "IAM", {1: "1", 2: "DA", 3: "70618^Penicillin^RXNORM", 4: "SV", 6: "A", 11: "20150301"}
    )
    deleted = seg("IAM", {1: "2", 2: "FA", 3: "256349002^Peanut^SCT", 6: "D"})
    allergies = of_type(translated("ADT^A60", PID, added, deleted), "AllergyIntolerance")
    assert [a["clinicalStatus"]["coding"][0]["code"] for a in allergies] == ["active", "inactive"]
    assert allergies[0]["onsetDateTime"] == "2015-03-01"
    assert allergies[0]["criticality"] == "high"


# --- SIU and MDM ---------------------------------------------------------------------------

SCH = {1: "APT1^SCHED", 11: "^^^20261210090000-0500^20261210093000-0500"}


@pytest.mark.parametrize(
    ("trigger", "status"), [("S16", "cancelled"), ("S17", "entered-in-error"), ("S26", "noshow")]
)
def test_siu_trigger_status(trigger: str, status: str) -> None:
    resources = translated(f"SIU^{trigger}^SIU_S12", seg("SCH", {**SCH, 25: "BOOKED"}), PID)
    assert only(resources, "Appointment")["status"] == status


TXA = {1: "1", 2: "DS", 3: "TX", 12: "D2^NWH", 13: "D1^NWH", 17: "AU"}
TEXT = seg("OBX", {1: "1", 2: "TX", 3: "X^x^L", 5: "addendum text", 11: "F"})


@pytest.mark.parametrize(
    ("trigger", "relation"),
    [("T05", "appends"), ("T06", "appends"), ("T07", "replaces"), ("T08", "replaces"), ("T09", "replaces"), ("T10", "replaces")],
)  # fmt: skip
def test_mdm_addenda_edits_replacements_relate_to_the_parent(trigger: str, relation: str) -> None:
    body = [TEXT] if int(trigger[1:]) % 2 == 0 else []
    parent = only(
        translated("MDM^T02", PID, seg("TXA", {**TXA, 12: "D1^NWH"}), TEXT), "DocumentReference"
    )
    document = only(translated(f"MDM^{trigger}", PID, seg("TXA", TXA), *body), "DocumentReference")
    assert document["relatesTo"] == [
        {"code": relation, "target": {"reference": f"DocumentReference/{parent['id']}"}}
    ]
    assert ("data" in document["content"][0]["attachment"]) == bool(body)


def test_mdm_notification_without_content_and_cancel() -> None:
    notified = only(translated("MDM^T01", PID, seg("TXA", TXA)), "DocumentReference")
    assert notified["status"] == "current"
    assert "data" not in notified["content"][0]["attachment"]
    cancelled = only(translated("MDM^T11", PID, seg("TXA", TXA)), "DocumentReference")
    assert cancelled["status"] == "entered-in-error"
    assert cancelled["id"] == notified["id"]


def test_mdm_notification_attachment_says_what_it_can_without_the_text() -> None:
    plain = only(translated("MDM^T03", PID, seg("TXA", TXA)), "DocumentReference")
    assert plain["content"][0]["attachment"] == {"contentType": "text/plain"}
    bare = only(translated("MDM^T03", PID, seg("TXA", {**TXA, 3: ""})), "DocumentReference")
    assert bare["content"][0]["attachment"] == {"title": "D2"}


def test_a50_keeps_the_prior_visit_number_as_an_old_identifier() -> None:
    resources = translated("ADT^A50", PID, seg("MRG", {5: "V099^^^NWH^VN"}), pv1(visit=VISIT))
    identifiers = only(resources, "Encounter")["identifier"]
    assert [(i["value"], i.get("use")) for i in identifiers] == [("V100", None), ("V099", "old")]
