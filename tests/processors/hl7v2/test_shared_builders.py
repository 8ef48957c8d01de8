"""One Coverage builder, one Account builder and one visit mapping for every message family
(issue 13, parts A and B merged): the same IN1 / account number gives the same resource in an
ADT, a BAR/DFT and a REF, and what visit_resources emits is what the message refers to."""

from __future__ import annotations

from typing import Any

import pytest

from .builders import mapped, seg


def only(resources: list[dict[str, Any]], rtype: str) -> dict[str, Any]:
    (found,) = [r for r in resources if r["resourceType"] == rtype]
    return found


PID = seg("PID", {1: "1", 3: "P1^^^FAC^MR", 5: "Doe^Jane", 7: "19800101", 8: "F",
                  18: "ACC1^^^FAC^AN"})  # fmt: skip
PV1 = seg("PV1", {1: "1", 2: "I", 19: "V1^^^FAC^VN"})
IN1 = seg("IN1", {1: "1", 2: "GOLD^Gold PPO", 3: "PAYER1^^^FAC", 4: "Acme Health", 8: "G7",
                  17: "SPO", 36: "POL1"})  # fmt: skip
IN2 = seg("IN2", {1: "", 61: "MB55^^^FAC"})
GT1 = seg("GT1", {1: "1", 3: "Doe^John", 11: "SPO^Spouse^HL70063"})
RF1 = seg("RF1", {1: "A", 2: "R", 6: "REF1^FAC", 7: "20260101"})
FT1 = seg("FT1", {1: "1", 2: "T1", 4: "20260101", 6: "CG", 7: "80053^CMP^C4"})
DG1 = seg("DG1", {1: "1", 3: "I49.9^Arrhythmia^I10", 6: "W"})
PR1 = seg("PR1", {1: "1", 3: "0JH60DZ^Pacemaker^ICD10PCS", 5: "20251201"})

CARRIERS = {
    "ADT^A04": (PID, PV1, GT1, IN1, IN2),
    "BAR^P01": (PID, PV1, GT1, IN1, IN2),
    "DFT^P03": (PID, PV1, GT1, FT1, IN1, IN2),
    "REF^I12": (RF1, PID, PV1, IN1, IN2),
}


@pytest.mark.parametrize("mtype", sorted(CARRIERS))
def test_one_in1_is_one_coverage_whichever_message_carries_it(mtype: str) -> None:
    from_adt = only(mapped("ADT^A04", *CARRIERS["ADT^A04"]), "Coverage")
    coverage = only(mapped(mtype, *CARRIERS[mtype]), "Coverage")
    assert coverage == from_adt
    assert [i["value"] for i in coverage["identifier"]] == ["POL1", "MB55"]  # IN1-36, IN2-61
    assert coverage["relationship"]["coding"][0]["code"] == "spouse"


@pytest.mark.parametrize("mtype", ["BAR^P01", "DFT^P03"])
def test_one_account_number_is_one_account_with_its_guarantors(mtype: str) -> None:
    from_adt = only(mapped("ADT^A04", *CARRIERS["ADT^A04"]), "Account")
    resources = mapped(mtype, *CARRIERS[mtype])
    account = only(resources, "Account")
    assert account == from_adt  # GT1 guarantors and IN1 coverage, in BAR/DFT as in ADT
    assert account["coverage"] == [
        {"coverage": {"reference": f"Coverage/{only(resources, 'Coverage')['id']}"}, "priority": 1}
    ]


@pytest.mark.parametrize("mtype", ["BAR^P01", "REF^I12"])
def test_an_in1_naming_no_payor_is_left_out_not_refused(mtype: str) -> None:
    segments = [s for s in CARRIERS[mtype] if not s.startswith(("IN1", "IN2"))]
    resources = mapped(mtype, *segments, seg("IN1", {1: "1", 2: "GOLD"}))
    assert [r for r in resources if r["resourceType"] == "Coverage"] == []


def test_referral_gives_the_visit_diagnoses_as_its_reasons() -> None:
    resources = mapped("REF^I12", RF1, PID, PV1, DG1)
    request = only(resources, "ServiceRequest")
    condition = only(resources, "Condition")
    assert request["reasonReference"] == [{"reference": f"Condition/{condition['id']}"}]
    assert request["encounter"] == {"reference": f"Encounter/{only(resources, 'Encounter')['id']}"}


@pytest.mark.parametrize("mtype", ["BAR^P12", "DFT^P03", "REF^I12"])
def test_dg1_and_pr1_land_on_the_visit_in_every_family(mtype: str) -> None:
    extra = {"REF^I12": [RF1], "DFT^P03": [FT1]}.get(mtype, [])
    resources = mapped(mtype, *extra, PID, PV1, DG1, PR1)
    encounter = {"reference": f"Encounter/{only(resources, 'Encounter')['id']}"}
    assert only(resources, "Condition")["encounter"] == encounter
    assert only(resources, "Procedure")["encounter"] == encounter
