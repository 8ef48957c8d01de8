"""Mapping rules of orders, results, pharmacy, problems, financial and referral messages
(issue 13 part B), one rule per test, on inline messages."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from processors.hl7v2.errors import MappingError
from processors.hl7v2.mapping import map_hl7v2

from .builders import MSH, PID, mapped, seg

PDF = b"%PDF-1.4\n%%EOF\n"


def of_type(resources: list[dict[str, Any]], rtype: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["resourceType"] == rtype]


ORC_RE = seg("ORC", {1: "RE", 2: "PL1^CPOE", 3: "F1^LAB", 5: "CM"})
OBR = seg(
    "OBR", {1: "1", 2: "PL1^CPOE", 3: "F1^LAB", 4: "2345-7^Glucose^LN", 7: "20260101", 25: "F"}
)
OBX_NM = seg("OBX", {1: "1", 2: "NM", 3: "2345-7^Glucose^LN", 5: "95", 6: "mg/dL", 11: "F"})


# --- results ------------------------------------------------------------------------------


def test_oru_writes_the_service_request_its_report_is_based_on() -> None:
    resources = mapped("ORU^R01", PID, ORC_RE, OBR, OBX_NM)
    (request,) = of_type(resources, "ServiceRequest")
    (report,) = of_type(resources, "DiagnosticReport")
    assert report["basedOn"] == [{"reference": f"ServiceRequest/{request['id']}"}]
    assert request["status"] == "completed"  # ORC-5 CM
    assert request["code"]["coding"][0]["code"] == "2345-7"


def test_oru_with_only_a_filler_number_is_based_on_a_request_too() -> None:
    obr = seg("OBR", {1: "1", 3: "F1^LAB", 4: "2345-7^Glucose^LN", 25: "F"})
    resources = mapped("ORU^R01", PID, obr, OBX_NM)
    (request,) = of_type(resources, "ServiceRequest")
    assert request["status"] == "unknown"
    assert of_type(resources, "DiagnosticReport")[0]["basedOn"][0]["reference"].endswith(
        request["id"]
    )


def test_oru_notes_after_the_obr_land_on_the_service_request() -> None:
    resources = mapped("ORU^R01", PID, OBR, "NTE|1||Fasting sample", OBX_NM)
    assert of_type(resources, "ServiceRequest")[0]["note"] == [{"text": "Fasting sample"}]


def test_obr15_specimen_source_becomes_a_specimen() -> None:
    obr = seg(
        "OBR",
        {1: "1", 3: "F1^LAB", 4: "X^x^L", 7: "20260101080000", 15: "UR&Urine&HL70070", 25: "F"},
    )
    resources = mapped("ORU^R01", PID, obr)
    (specimen,) = of_type(resources, "Specimen")
    assert specimen["type"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0070",
        "code": "UR",
        "display": "Urine",
    }
    assert specimen["collection"]["collectedDateTime"].startswith("2026-01-01T08:00:00")
    report = of_type(resources, "DiagnosticReport")[0]
    assert report["specimen"] == [{"reference": f"Specimen/{specimen['id']}"}]


def test_spm_wins_over_obr15() -> None:
    obr = seg("OBR", {1: "1", 3: "F1^LAB", 4: "X^x^L", 15: "UR&Urine&HL70070", 25: "F"})
    spm = seg("SPM", {1: "1", 2: "S1", 4: "BLD^Blood^HL70487"})
    resources = mapped("ORU^R01", PID, obr, spm)
    assert [s["type"]["coding"][0]["code"] for s in of_type(resources, "Specimen")] == ["BLD"]


def test_encapsulated_pdf_becomes_a_document_reference_attachment() -> None:
    data = base64.b64encode(PDF).decode()
    obx = seg("OBX", {1: "1", 2: "ED", 3: "11526-1^Pathology study^LN",
                      5: f"LAB^AP^PDF^Base64^{data}", 11: "F"})  # fmt: skip
    resources = mapped("ORU^R01", PID, OBR, obx)
    (document,) = of_type(resources, "DocumentReference")
    attachment = document["content"][0]["attachment"]
    assert attachment["contentType"] == "application/pdf"
    assert base64.b64decode(attachment["data"]) == PDF
    assert of_type(resources, "Observation") == []  # a document, not an Observation value
    related = {r["reference"].split("/")[0] for r in document["context"]["related"]}
    assert related == {"ServiceRequest", "DiagnosticReport"}


def test_encapsulated_hex_and_mime_subtype() -> None:
    obx = seg("OBX", {1: "1", 2: "ED", 3: "X^x^L", 5: f"LAB^IM^image/png^Hex^{b'PNG'.hex()}",
                      11: "F"})  # fmt: skip
    attachment = of_type(mapped("ORU^R01", PID, OBR, obx), "DocumentReference")[0]["content"][0][
        "attachment"
    ]
    assert attachment["contentType"] == "image/png"
    assert base64.b64decode(attachment["data"]) == b"PNG"


def test_reference_pointer_becomes_an_attachment_url() -> None:
    obx = seg("OBX", {1: "1", 2: "RP", 3: "X^x^L", 5: "https://docs.example.org/1^LAB^AP^PDF",
                      11: "F"})  # fmt: skip
    attachment = of_type(mapped("ORU^R01", PID, OBR, obx), "DocumentReference")[0]["content"][0][
        "attachment"
    ]
    assert attachment == {"contentType": "application/pdf", "url": "https://docs.example.org/1"}


def test_encapsulated_data_that_does_not_decode_names_obx5() -> None:
    obx = seg("OBX", {1: "1", 2: "ED", 3: "X^x^L", 5: "LAB^AP^PDF^Base64^not base64!", 11: "F"})
    with pytest.raises(MappingError) as info:
        map_hl7v2("\r".join([MSH.format(type="ORU^R01"), PID, OBR, obx]).encode())
    assert info.value.location == "OBX-5"


def test_mdm_with_an_encapsulated_pdf() -> None:
    data = base64.b64encode(PDF).decode()
    txa = seg("TXA", {1: "1", 2: "PN^Pathology note", 12: "DOC1^FAC", 17: "AU"})
    obx = seg("OBX", {1: "1", 2: "ED", 3: "11526-1^Pathology^LN", 5: f"^AP^PDF^Base64^{data}",
                      11: "F"})  # fmt: skip
    resources = mapped("MDM^T02", PID, ORC_RE, OBR, txa, obx)
    (document,) = of_type(resources, "DocumentReference")
    assert [c["attachment"]["contentType"] for c in document["content"]] == ["application/pdf"]
    (request,) = of_type(resources, "ServiceRequest")
    assert document["context"]["related"] == [{"reference": f"ServiceRequest/{request['id']}"}]


def test_oul_r22_specimen_group_is_shared_by_its_orders_and_keeps_its_own_obx() -> None:
    spm = seg("SPM", {1: "1", 2: "S1", 4: "BLD^Blood^HL70487"})
    volume = seg("OBX", {1: "1", 2: "NM", 3: "19151-0^Specimen volume^LN", 5: "3", 6: "mL",
                         11: "F"})  # fmt: skip
    obr2 = OBR.replace("PL1", "PL2").replace("F1", "F2")
    resources = mapped("OUL^R22", PID, spm, volume, OBR, ORC_RE, OBX_NM, obr2, OBX_NM)
    (specimen,) = of_type(resources, "Specimen")
    reports = of_type(resources, "DiagnosticReport")
    assert len(reports) == 2
    assert all(r["specimen"] == [{"reference": f"Specimen/{specimen['id']}"}] for r in reports)
    assert len(of_type(resources, "Observation")) == 3
    # the ORC after its OBR (OUL) is that order's: its status CM made the request completed
    assert [r["status"] for r in of_type(resources, "ServiceRequest")] == ["completed", "unknown"]


# --- orders -------------------------------------------------------------------------------


def test_orm_with_rxo_is_a_medication_request_not_a_code_less_service_request() -> None:
    orc = seg("ORC", {1: "NW", 2: "RX1^CPOE", 12: "111^Reyes^Marco"})
    rxo = seg("RXO", {1: "308182^Amoxicillin 250 MG Oral Capsule^RXNORM", 2: "250",
                      4: "mg^mg^UCUM", 11: "21", 12: "{capsule}^capsule^UCUM", 13: "0"})  # fmt: skip
    resources = mapped("ORM^O01", PID, orc, rxo, "RXR|PO^Oral^HL70162")
    assert of_type(resources, "ServiceRequest") == []
    (request,) = of_type(resources, "MedicationRequest")
    assert request["medicationCodeableConcept"]["coding"][0]["code"] == "308182"
    assert request["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 250
    assert request["dosageInstruction"][0]["route"]["coding"][0]["code"] == "PO"
    assert request["dispenseRequest"]["quantity"]["value"] == 21


def test_orm_obx_becomes_an_observation_the_request_carries() -> None:
    orc = seg("ORC", {1: "NW", 2: "PL1^CPOE"})
    obr = seg("OBR", {1: "1", 2: "PL1^CPOE", 4: "X^x^L"})
    obx = seg("OBX", {1: "1", 2: "NM", 3: "29463-7^Body weight^LN", 5: "82", 6: "kg", 11: "F"})
    resources = mapped("ORM^O01", PID, orc, obr, obx, "NTE|1||weighed today")
    (observation,) = of_type(resources, "Observation")
    assert observation["note"] == [{"text": "weighed today"}]
    (request,) = of_type(resources, "ServiceRequest")
    assert request["supportingInfo"] == [{"reference": f"Observation/{observation['id']}"}]


def test_oml_o33_specimen_is_shared_by_the_orders_after_it() -> None:
    spm = seg("SPM", {1: "1", 2: "S1", 4: "BLD^Blood^HL70487"})
    orders = [
        seg("ORC", {1: "NW", 2: "PL1^CPOE"}), seg("OBR", {1: "1", 2: "PL1^CPOE", 4: "A^a^L"}),
        seg("ORC", {1: "NW", 2: "PL2^CPOE"}), seg("OBR", {1: "2", 2: "PL2^CPOE", 4: "B^b^L"}),
    ]  # fmt: skip
    resources = mapped("OML^O33", PID, spm, *orders)
    (specimen,) = of_type(resources, "Specimen")
    requests = of_type(resources, "ServiceRequest")
    assert [r["specimen"] for r in requests] == [[{"reference": f"Specimen/{specimen['id']}"}]] * 2


# --- immunization -------------------------------------------------------------------------


def _vxu_group(cvx: str, site: str) -> list[str]:
    return [
        seg("ORC", {1: "RE", 3: "IMM1^FAC"}),
        seg("RXA", {1: "0", 2: "1", 3: "20260101", 5: f"{cvx}^vaccine^CVX", 22: "20260102"}),
        seg("RXR", {1: "C28161^Intramuscular^NCIT", 2: f"{site}^site^HL70163"}),
        seg(
            "OBX",
            {
                1: "1",
                2: "CE",
                3: "64994-7^Funding eligibility^LN",
                5: "V02^VFC eligible^HL70064",
                11: "F",
            },
        ),
    ]


def test_two_vxu_groups_sharing_a_filler_id_give_two_immunizations() -> None:
    resources = mapped("VXU^V04", PID, *_vxu_group("208", "LD"), *_vxu_group("141", "RD"))
    immunizations = of_type(resources, "Immunization")
    assert [i["vaccineCode"]["coding"][0]["code"] for i in immunizations] == ["208", "141"]
    assert [i["site"]["coding"][0]["code"] for i in immunizations] == ["LD", "RD"]
    assert len({i["id"] for i in immunizations}) == 2
    observations = of_type(resources, "Observation")
    assert [o["partOf"][0]["reference"] for o in observations] == [
        f"Immunization/{i['id']}" for i in immunizations
    ]


def test_the_first_vxu_group_keeps_the_id_it_always_had() -> None:
    alone = of_type(mapped("VXU^V04", PID, *_vxu_group("208", "LD")), "Immunization")
    pair = of_type(
        mapped("VXU^V04", PID, *_vxu_group("208", "LD"), *_vxu_group("141", "RD")),
        "Immunization",
    )
    assert alone[0]["id"] == pair[0]["id"]


def test_immunization_recorded_from_rxa22() -> None:
    (immunization,) = of_type(mapped("VXU^V04", PID, *_vxu_group("208", "LD")), "Immunization")
    assert immunization["recorded"] == "2026-01-02"


# --- pharmacy, problems, financial, referral ---------------------------------------------


def test_rds_dispense_names_the_request_of_its_order() -> None:
    orc = seg("ORC", {1: "RE", 2: "RX1^CPOE"})
    rxd = seg("RXD", {1: "1", 2: "197361^Amlodipine^RXNORM", 3: "20260101", 4: "30",
                      5: "{tablet}^tablet^UCUM", 7: "RXN1"})  # fmt: skip
    resources = mapped("RDS^O13", PID, orc, rxd)
    (dispense,) = of_type(resources, "MedicationDispense")
    order = mapped("RDE^O11", PID, orc, seg("RXE", {2: "197361^Amlodipine^RXNORM"}))
    (request,) = of_type(order, "MedicationRequest")
    assert dispense["authorizingPrescription"] == [
        {"reference": f"MedicationRequest/{request['id']}"}
    ]
    assert dispense["quantity"]["value"] == 30


def test_ras_refused_dose_is_not_done() -> None:
    orc = seg("ORC", {1: "RE", 2: "RX1^CPOE"})
    rxa = seg("RXA", {1: "0", 2: "1", 3: "20260101", 5: "1659149^Cefazolin^RXNORM",
                      18: "PATREF^Patient refused^99R", 20: "RE"})  # fmt: skip
    (administration,) = of_type(mapped("RAS^O17", PID, orc, rxa), "MedicationAdministration")
    assert administration["status"] == "not-done"
    assert administration["statusReason"][0]["coding"][0]["code"] == "PATREF"


def test_ppr_problem_delete_is_entered_in_error_without_clinical_status() -> None:
    prb = seg("PRB", {1: "AD", 3: "I10^Hypertension^I10", 4: "PRB1^EHR", 14: "A^Active"})
    added = of_type(mapped("PPR^PC1", PID, prb), "Condition")[0]
    deleted = of_type(mapped("PPR^PC3", PID, prb), "Condition")[0]
    assert added["id"] == deleted["id"]
    assert added["clinicalStatus"]["coding"][0]["code"] == "active"
    assert "clinicalStatus" not in deleted
    assert deleted["verificationStatus"]["coding"][0]["code"] == "entered-in-error"


def test_dft_charge_items_are_booked_on_the_account_of_pid18() -> None:
    pid = seg("PID", {1: "1", 3: "P1^^^FAC^MR", 5: "Doe^Jane", 18: "ACC1^^^FAC^AN"})
    ft1 = seg("FT1", {1: "1", 2: "T1", 4: "20260101", 6: "CG", 7: "80053^CMP^C4", 10: "2",
                      11: "48.50&USD"})  # fmt: skip
    resources = mapped("DFT^P03", pid, ft1)
    (account,) = of_type(resources, "Account")
    assert account["identifier"][0]["value"] == "ACC1"
    (charge,) = of_type(resources, "ChargeItem")
    assert charge["account"] == [{"reference": f"Account/{account['id']}"}]
    assert charge["priceOverride"] == {"value": 48.5, "currency": "USD"}
    assert charge["quantity"] == {"value": 2}


def test_bar_without_an_account_number_names_pid18() -> None:
    with pytest.raises(MappingError) as info:
        map_hl7v2("\r".join([MSH.format(type="BAR^P01"), PID]).encode())
    assert info.value.location == "PID-18"


def test_in1_becomes_a_coverage_on_the_account() -> None:
    pid = seg("PID", {1: "1", 3: "P1^^^FAC^MR", 5: "Doe^Jane", 18: "ACC1^^^FAC^AN"})
    in1 = seg("IN1", {1: "1", 2: "GOLD^Gold PPO", 3: "PAYER1^^^FAC", 4: "Acme Health",
                      17: "SPO", 36: "POL1"})  # fmt: skip
    resources = mapped("BAR^P01", pid, in1)
    (coverage,) = of_type(resources, "Coverage")
    assert coverage["relationship"]["coding"][0]["code"] == "spouse"
    assert of_type(resources, "Account")[0]["coverage"][0]["coverage"]["reference"] == (
        f"Coverage/{coverage['id']}"
    )


def test_ref_i14_revokes_the_referral_of_i12() -> None:
    rf1 = seg("RF1", {1: "A", 2: "R", 6: "REF1^FAC", 7: "20260101"})
    (i12,) = of_type(mapped("REF^I12", rf1, PID), "ServiceRequest")
    (i14,) = of_type(mapped("REF^I14", rf1, PID), "ServiceRequest")
    assert i12["id"] == i14["id"]
    assert (i12["status"], i14["status"]) == ("active", "revoked")
    assert i12["category"][0]["coding"][0]["code"] == "3457005"


@pytest.mark.parametrize(
    "mtype",
    ["ORU^R30", "OUL^R22", "OUL^R23", "OUL^R24", "OML^O33", "OMG^O19", "RDE^O11", "RDE^O25",
     "RDS^O13", "RAS^O17", "OMP^O09", "PPR^PC1", "PPR^PC2", "PPR^PC3", "BAR^P01", "BAR^P02",
     "BAR^P12", "DFT^P03", "DFT^P11", "REF^I12", "REF^I14"],
)  # fmt: skip
def test_every_part_b_trigger_is_translated(mtype: str) -> None:
    from processors.hl7v2.mapping import MAPPERS

    code, trigger = mtype.split("^")
    assert (code, trigger) in MAPPERS


def test_ppr_without_a_problem_instance_id_is_keyed_by_patient_and_code() -> None:
    prb = seg("PRB", {1: "AD", 3: "596.5^BLADDER DYSFUNCTION^I9", 7: "20040629", 14: "ACTIVE"})
    first = of_type(mapped("PPR^PC1", PID, prb), "Condition")[0]
    again = of_type(mapped("PPR^PC2", PID, prb.replace("ACTIVE", "I")), "Condition")[0]
    assert first["id"] == again["id"] and "identifier" not in first
    assert again["clinicalStatus"]["coding"][0]["code"] == "inactive"


def test_dft_without_an_account_number_still_gives_its_charges() -> None:
    ft1 = seg("FT1", {1: "1", 4: "20260101", 6: "CG", 7: "FAKE"})
    resources = mapped("DFT^P03", PID, ft1)
    assert of_type(resources, "Account") == []
    assert len(of_type(resources, "ChargeItem")) == 1
