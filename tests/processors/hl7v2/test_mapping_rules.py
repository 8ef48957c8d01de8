"""Field-level tests of the mapping rules, one rule per test, on the extra messages and inline ones."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from processors.hl7v2.context import MappingContext
from processors.hl7v2.errors import MappingError, ParseError, UnsupportedMessageType
from processors.hl7v2.mapping import map_hl7v2
from processors.validation import resource_issues

from .builders import MSH, PID, seg
from .builders import message as msg

EXTRA = Path(__file__).resolve().parents[2] / "corpus" / "hl7v2_extra"


def extra(name: str, ctx: MappingContext | None = None) -> list[dict[str, Any]]:
    resources = map_hl7v2((EXTRA / name).read_bytes(), ctx).resources
    assert [i for r in resources for i in resource_issues(r)] == []
    return resources


def one(resources: list[dict[str, Any]], rtype: str) -> dict[str, Any]:
    found = [r for r in resources if r["resourceType"] == rtype]
    assert len(found) == 1, [r["resourceType"] for r in resources]
    return found[0]


OBR = seg("OBR", {1: "1", 3: "F1^LAB", 4: "X^x^L", 25: "F"})


# --- Patient ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "gender"),
    [("F", "female"), ("M", "male"), ("O", "other"), ("U", "unknown"), ("A", "other"), ("X", None)],
)
def test_sex_table_0001(code: str, gender: str | None) -> None:
    pid = f"PID|1||P1^^^FAC^MR||Doe^Jane||19800101|{code}"
    patient = one(map_hl7v2(msg("ADT^A28", pid)).resources, "Patient")
    assert patient.get("gender") == gender


def test_pid_repetitions_identifiers_names_telecom_race() -> None:
    patient = one(extra("adt_a08_update_nk1_al1_dg1_v2.5.1.hl7"), "Patient")
    assert [i["value"] for i in patient["identifier"]] == ["MRN5520", "999-88-7777"]
    assert patient["identifier"][1]["system"] == "http://hl7.org/fhir/sid/us-ssn"  # SSA authority
    assert [n.get("use") for n in patient["name"]] == ["official", "nickname"]
    assert patient["telecom"] == [
        {"system": "phone", "value": "+1 (608) 5550199", "use": "home"},
        {"system": "email", "value": "omar@example.org", "use": "home"},
        {"system": "phone", "value": "+1 (608) 5550100 x12", "use": "work"},
    ]
    assert patient["address"][0]["line"] == ["9 Pine Ct", "Apt 2"]
    assert patient["address"][0]["use"] == "home"
    assert patient["maritalStatus"]["coding"][0]["code"] == "M"
    race = patient["extension"][0]["extension"][0]["valueCoding"]
    assert race == {
        "system": "urn:oid:2.16.840.1.113883.6.238",
        "code": "2106-3",
        "display": "White",
    }


def test_latin1_msh18() -> None:
    data = (EXTRA.parent / "hl7v2" / "adt_a01_latin1_zseg_v2.6.hl7").read_bytes()
    assert "Lefèvre".encode("latin-1") in data  # the file really is ISO-8859-1
    patient = one(map_hl7v2(data).resources, "Patient")
    assert patient["name"][0]["family"] == "Lefèvre"


def test_declared_ascii_with_8bit_bytes_is_rejected_naming_msh18() -> None:
    header = MSH.format(type="ADT^A28") + "|" * 6 + "ASCII"
    payload = (header + "\r" + PID.replace("Doe", "Dö")).encode("latin-1")
    with pytest.raises(ParseError) as info:
        map_hl7v2(payload)
    assert info.value.location == "MSH-18"


def test_z_segment_ignored() -> None:
    with_z = map_hl7v2(msg("ADT^A28", PID, "ZPI|1|VIP")).resources
    without = map_hl7v2(msg("ADT^A28", PID)).resources
    assert with_z == without


def test_missing_optional_fields_are_left_out() -> None:
    patient = one(map_hl7v2(msg("ADT^A28", "PID|1||P1^^^FAC^MR")).resources, "Patient")
    assert set(patient) == {"resourceType", "id", "identifier", "active"}


def test_missing_pid3_names_pid3() -> None:
    with pytest.raises(MappingError) as info:
        map_hl7v2(msg("ADT^A28", "PID|1||||Doe^Jane"))
    assert info.value.location == "PID-3"


def test_unsupported_message_type() -> None:
    with pytest.raises(UnsupportedMessageType) as info:
        map_hl7v2(msg("ADT^A99", PID))
    assert info.value.location == "MSH-9"


def test_escapes_in_names() -> None:
    pid = "PID|1||P1^^^FAC^MR||O\\T\\Brien\\F\\X^Ann\\S\\Marie"
    name = one(map_hl7v2(msg("ADT^A28", pid)).resources, "Patient")["name"][0]
    assert name == {"family": "O&Brien|X", "given": ["Ann^Marie"]}


def test_same_message_twice_same_ids() -> None:
    a = map_hl7v2(msg("ADT^A28", PID)).resources
    b = map_hl7v2(msg("ADT^A28", PID)).resources
    assert a == b


def test_a28_and_a31_update_the_same_patient() -> None:
    a28 = one(extra("adt_a28_add_person_v2.5.1.hl7"), "Patient")
    a31 = one(extra("adt_a31_update_person_v2.5.1.hl7"), "Patient")
    assert a28["id"] == a31["id"]
    assert a31["address"][0]["line"] == ["14 Oak Ave"]
    assert a28["telecom"][0]["use"] == "mobile"  # XTN-3 CP


# --- Encounter ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "klass"),
    [
        ("adt_a02_transfer_v2.5.1.hl7", "in-progress", "IMP"),
        ("adt_a05_preadmit_v2.5.1.hl7", "planned", "PRENC"),
        ("adt_a06_out_to_in_v2.5.1.hl7", "in-progress", "IMP"),
        ("adt_a07_in_to_out_v2.5.1.hl7", "in-progress", "AMB"),
        # A08 does not convey the status: the IG maps it to unknown (PV1-44 alone says nothing).
        ("adt_a08_update_nk1_al1_dg1_v2.5.1.hl7", "unknown", "IMP"),
        ("adt_a11_cancel_admit_v2.5.1.hl7", "cancelled", "IMP"),
        ("adt_a13_cancel_discharge_v2.5.1.hl7", "in-progress", "IMP"),
        ("../hl7v2/adt_a03_discharge_v2.5.1.hl7", "finished", "IMP"),
    ],
)
def test_encounter_status_and_class(name: str, status: str, klass: str) -> None:
    encounter = one(extra(name), "Encounter")
    assert encounter["status"] == status
    assert encounter["class"]["code"] == klass


def test_a13_has_no_end_and_same_encounter_as_a11() -> None:
    a11 = one(extra("adt_a11_cancel_admit_v2.5.1.hl7"), "Encounter")
    a13 = one(extra("adt_a13_cancel_discharge_v2.5.1.hl7"), "Encounter")
    assert a11["id"] == a13["id"]
    assert "end" not in a13["period"]


def test_a02_prior_location_completed() -> None:
    resources = extra("adt_a02_transfer_v2.5.1.hl7")
    encounter = one(resources, "Encounter")
    assert [loc["status"] for loc in encounter["location"]] == ["active", "completed"]
    names = {r["id"]: r["name"] for r in resources if r["resourceType"] == "Location"}
    assert [names[loc["location"]["reference"].split("/")[1]] for loc in encounter["location"]] == [
        "4WEST 410 B",
        "3EAST 305 A",
    ]


def test_a28_a31_have_no_encounter() -> None:
    assert [r["resourceType"] for r in extra("adt_a28_add_person_v2.5.1.hl7")] == ["Patient"]


def test_nk1_al1_dg1() -> None:
    resources = extra("adt_a08_update_nk1_al1_dg1_v2.5.1.hl7")
    person = one(resources, "RelatedPerson")
    codes = [c["code"] for c in person["relationship"][0]["coding"]]
    assert codes == ["SPO", "SPS"]
    allergy = one(resources, "AllergyIntolerance")
    assert allergy["category"] == ["medication"]
    assert allergy["criticality"] == "high"
    assert [r["manifestation"][0]["text"] for r in allergy["reaction"]] == ["Hives", "Wheezing"]
    assert allergy["onsetDateTime"] == "2015-03-10"
    condition = one(resources, "Condition")
    assert condition["code"]["coding"][0] == {
        "system": "http://hl7.org/fhir/sid/icd-10-cm",
        "code": "L03.115",
        "display": "Cellulitis of right lower limb",
    }
    assert condition["verificationStatus"]["coding"][0]["code"] == "confirmed"
    assert condition["encounter"]["reference"] == "Encounter/" + one(resources, "Encounter")["id"]


# --- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hl7", "fhir"),
    [
        ("2026", "2026"),
        ("202611", "2026-11"),
        ("20261106", "2026-11-06"),
        ("2026110607", "2026-11-06T07:00:00+00:00"),
        ("202611060715", "2026-11-06T07:15:00+00:00"),
        ("20261106071530", "2026-11-06T07:15:30+00:00"),
        ("20261106071530.1234", "2026-11-06T07:15:30.1234+00:00"),
        ("20261106071530-0500", "2026-11-06T07:15:30-05:00"),
        ("20261106071530.5+0530", "2026-11-06T07:15:30.5+05:30"),
    ],
)
def test_timestamp_precision_and_offset(hl7: str, fhir: str) -> None:
    obx = seg("OBX", {1: "1", 2: "DTM", 3: "X^x^L", 5: hl7, 11: "F"})
    obs = one(map_hl7v2(msg("ORU^R01", PID, OBR, obx)).resources, "Observation")
    assert obs["valueDateTime"] == fhir


def test_naive_time_takes_the_context_zone_with_dst() -> None:
    ctx = MappingContext(timezone="America/Chicago")
    winter = map_hl7v2(msg("ORM^O01", PID, "ORC|NW|O1^CPOE|||||||202601151000"), ctx).resources
    summer = map_hl7v2(msg("ORM^O01", PID, "ORC|NW|O1^CPOE|||||||202607151000"), ctx).resources
    assert one(winter, "ServiceRequest")["authoredOn"] == "2026-01-15T10:00:00-06:00"
    assert one(summer, "ServiceRequest")["authoredOn"] == "2026-07-15T10:00:00-05:00"


def test_invalid_optional_date_is_dropped_with_a_warning_naming_the_field() -> None:
    result = map_hl7v2(msg("ADT^A28", "PID|1||P1^^^FAC^MR||Doe||20261341"))
    assert "birthDate" not in one(result.resources, "Patient")
    assert [(w.location, w.severity) for w in result.warnings] == [("PID[1]-7", "warning")]


# --- results ------------------------------------------------------------------------------


def test_oru_value_types_statuses_specimen() -> None:
    resources = extra("oru_r01_mixed_types_spm_v2.5.1.hl7")
    obs = [r for r in resources if r["resourceType"] == "Observation"]
    assert obs[0]["valueQuantity"] == {
        "value": 0.5,
        "comparator": "<",
        "unit": "mg/dL",
        "system": "http://unitsofmeasure.org",
        "code": "mg/dL",
    }
    assert obs[0]["status"] == "corrected"
    assert obs[0]["interpretation"][0]["coding"][0]["code"] == "L"
    assert obs[1]["valueString"] == "Yellow"
    assert obs[1]["note"] == [{"text": "Checked twice"}]
    assert obs[2]["valueString"] == "Line one\nLine two & more"
    assert obs[3]["valueDateTime"] == "2026-11-08"
    assert obs[4]["valueRange"]["low"]["value"] == 6 and obs[4]["valueRange"]["high"]["value"] == 7
    report = one(resources, "DiagnosticReport")
    assert report["status"] == "corrected"
    specimen = one(resources, "Specimen")
    assert [i["value"] for i in specimen["identifier"]] == ["SPEC-1", "SPEC-1F"]
    assert specimen["collection"]["collectedDateTime"] == "2026-11-08T09:00:00-05:00"
    assert report["specimen"] == [{"reference": "Specimen/" + specimen["id"]}]


@pytest.mark.parametrize(
    ("flag", "status"),
    [
        ("F", "final"),
        ("P", "preliminary"),
        ("C", "corrected"),
        ("X", "cancelled"),
        ("D", "entered-in-error"),
    ],
)
def test_obx11_table_0085(flag: str, status: str) -> None:
    obx = seg("OBX", {1: "1", 2: "NM", 3: "X^x^L", 5: "1", 11: flag})
    assert (
        one(map_hl7v2(msg("ORU^R01", PID, OBR, obx)).resources, "Observation")["status"] == status
    )


def test_obr25_unknown_status_names_obr25() -> None:
    with pytest.raises(MappingError) as info:
        map_hl7v2(msg("ORU^R01", PID, seg("OBR", {1: "1", 3: "F1^LAB", 4: "X^x^L", 25: "Q"})))
    assert info.value.location == "OBR-25"


# --- orders, immunization, scheduling, documents ------------------------------------------


def test_orm_cancel_revokes_the_same_request() -> None:
    original = one(
        map_hl7v2((EXTRA.parent / "hl7v2" / "orm_o01_order_v2.4.hl7").read_bytes()).resources,
        "ServiceRequest",
    )
    cancel = one(extra("orm_o01_cancel_v2.4.hl7"), "ServiceRequest")
    assert cancel["id"] == original["id"]
    assert cancel["status"] == "revoked"


def test_orm_two_orders_priority_note_encounter() -> None:
    requests = [
        r
        for r in extra("orm_o01_two_orders_stat_v2.4.hl7")
        if r["resourceType"] == "ServiceRequest"
    ]
    assert [r["priority"] for r in requests] == ["stat", "routine"]
    assert requests[0]["note"] == [{"text": "Patient fasting since midnight"}]
    assert requests[0]["encounter"] == requests[1]["encounter"]


def test_oml_o21() -> None:
    request = one(extra("oml_o21_lab_order_v2.5.1.hl7"), "ServiceRequest")
    assert (request["status"], request["intent"], request["priority"]) == (
        "active",
        "order",
        "routine",
    )
    assert request["authoredOn"] == "2026-11-08T07:55:00-05:00"


def test_siu_s13_s14_s15_same_appointment() -> None:
    s13 = extra("siu_s13_reschedule_v2.5.1.hl7")
    s14 = one(extra("siu_s14_modify_v2.5.1.hl7"), "Appointment")
    s15 = one(extra("siu_s15_cancel_v2.5.1.hl7"), "Appointment")
    a13 = one(s13, "Appointment")
    assert a13["id"] == s14["id"] == s15["id"]
    assert a13["start"] == "2026-11-16T14:00:00-05:00"
    assert [p["actor"]["reference"].split("/")[0] for p in a13["participant"]] == [
        "Patient",
        "Practitioner",
        "Location",
    ]
    assert a13["serviceType"][0]["coding"][0]["system"] == "http://www.ama-assn.org/go/cpt"
    assert s14["minutesDuration"] == 45 and s14["comment"] == "Bring glucose log"
    assert s15["status"] == "cancelled"
    assert s15["cancelationReason"]["coding"][0]["code"] == "PATREQ"


def test_mdm_hex_escape_decoded_in_attachment() -> None:
    doc = one(extra("mdm_t02_document_v2.5.1_fixed.hl7"), "DocumentReference")
    text = base64.b64decode(doc["content"][0]["attachment"]["data"]).decode()
    assert text == (
        "Patient admitted with cellulitis\ntreated with IV cefazolin, "
        "discharged on oral cephalexin."
    )
    assert doc["content"][0]["attachment"]["contentType"] == "text/plain"


def test_vxu_not_done() -> None:
    rxa = seg(
        "RXA",
        {
            1: "0",
            2: "1",
            3: "20261020100000-0500",
            5: "208^COVID^CVX",
            6: "999",
            9: "01^Historical^NIP001",
            18: "00^Parental decision^NIP002",
            20: "RE",
        },
    )
    imm = one(map_hl7v2(msg("VXU^V04", PID, rxa)).resources, "Immunization")
    assert imm["status"] == "not-done"
    assert imm["primarySource"] is False
    assert "doseQuantity" not in imm  # 999 = unknown amount
