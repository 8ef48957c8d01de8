"""HL7 v2.5.1 ADT and ORU^R01 messages for the demo (pure).

Segments are built from {field number: value}, so every value sits at the position the
standard (and processors/hl7v2/mappers) reads it from: PV1-19 visit number, PV1-44/45
admit/discharge, OBR-22 results time, OBR-25 status, OBX-8 flag, OBX-11 status.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from infra.demo.people import FACILITY, Bed, Person, hl7_time

# (LOINC, display, UCUM unit, low, high, decimals) of the results of each panel.
_Result = tuple[str, str, str, float, float, int]
PANELS: dict[str, tuple[str, list[_Result]]] = {
    "58410-2": (
        "CBC panel - Blood by Automated count",
        [
            (
                "6690-2",
                "Leukocytes [#/volume] in Blood by Automated count",
                "10*3/uL",
                3.4,
                10.8,
                1,
            ),
            ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 12.0, 17.5, 1),
            (
                "4544-3",
                "Hematocrit [Volume Fraction] of Blood by Automated count",
                "%",
                36.0,
                50.0,
                1,
            ),
            ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 450, 0),
        ],
    ),
    "24323-8": (
        "Comprehensive metabolic 2000 panel - Serum or Plasma",
        [
            ("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 99, 0),
            ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 136, 145, 0),
            ("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
            ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 2),
            ("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20, 0),
        ],
    ),
    "24331-1": (
        "Lipid 1996 panel - Serum or Plasma",
        [
            ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 125, 200, 0),
            ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 40, 150, 0),
            ("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, 80, 0),
        ],
    ),
}
# AL1-3 (RxNorm) and DG1-3 (ICD-10-CM) of the A08 updates.
ALLERGIES = (("70618", "Penicillin"), ("2670", "Codeine"), ("1191", "Aspirin"))
DIAGNOSES = (
    ("J18.9", "Pneumonia, unspecified organism"),
    ("I50.9", "Heart failure, unspecified"),
    ("N39.0", "Urinary tract infection, site not specified"),
    ("E11.9", "Type 2 diabetes mellitus without complications"),
    ("K35.80", "Unspecified acute appendicitis"),
)


def segment(name: str, fields: dict[int, str]) -> str:
    """NAME|f1|f2|... with each value at its field number (missing ones empty)."""
    if name == "MSH":  # MSH-1 is the field separator itself; MSH-2 follows it directly
        return "MSH|" + "|".join(fields.get(i, "") for i in range(2, max(fields) + 1))
    return name + "|" + "|".join(fields.get(i, "") for i in range(1, max(fields) + 1))


def message(*segments: str) -> bytes:
    return ("\r".join(segments) + "\r").encode("ascii")


def msh(app: str, facility: str, when: datetime, kind: str, control_id: str) -> str:
    return segment(
        "MSH",
        {
            2: "^~\\&",
            3: app,
            4: facility,
            5: "CARELOG",
            6: "CARELOG",
            7: hl7_time(when),
            9: kind,
            10: control_id,
            11: "P",
            12: "2.5.1",
        },
    )


def pid(p: Person) -> str:
    return segment(
        "PID",
        {
            1: "1",
            3: f"{p.mrn}^^^{FACILITY}^MR",
            5: f"{p.family}^{p.given}^{p.middle}^^^^L",
            7: p.birth.strftime("%Y%m%d"),
            8: p.sex,
            11: f"{p.street}^^{p.city}^{p.state}^{p.postcode}^USA^H",
            13: "^PRN^PH^^1^{}^{}".format(*p.phone.split()),
        },
    )


def pv1(
    p: Person, bed: Bed, *, prior: Bed | None = None, discharged: datetime | None = None
) -> str:
    doctor = "{}^{}^{}^^^Dr.^MD^^NPI".format(*p.doctor)
    fields = {
        1: "1",
        2: "I",
        3: bed.hl7(),
        7: doctor,
        10: "MED",
        14: "7",
        19: f"{p.visit}^^^{FACILITY}^VN",
        44: hl7_time(p.admitted),
    }
    if prior is not None:
        fields[6] = prior.hl7()
    if discharged is not None:
        fields[36] = "01"  # discharged to home
        fields[45] = hl7_time(discharged)
    return segment("PV1", fields)


def adt(
    p: Person,
    trigger: str,
    when: datetime,
    control_id: str,
    *extra: str,
    bed: Bed | None = None,
    prior: Bed | None = None,
    discharged: datetime | None = None,
) -> bytes:
    structure = "ADT_A01" if trigger in ("A01", "A08") else f"ADT_{trigger}"
    return message(
        msh("DEMO_ADT", FACILITY, when, f"ADT^{trigger}^{structure}", control_id),
        segment("EVN", {1: trigger, 2: hl7_time(when)}),
        pid(p),
        pv1(p, bed or p.bed, prior=prior, discharged=discharged),
        *extra,
    )


def admit(p: Person) -> bytes:
    return adt(p, "A01", p.admitted, f"{p.mrn}-A01")


def update(p: Person) -> bytes:
    """A08 with the new address, next of kin, an allergy and the working diagnosis."""
    moved = p.moved()
    code, name = ALLERGIES[p.index % len(ALLERGIES)]
    icd, diagnosis = DIAGNOSES[p.index % len(DIAGNOSES)]
    nk1 = segment("NK1", {1: "1", 2: f"{p.family}^Sam", 3: "SPO^Spouse^HL70063"})
    al1 = segment("AL1", {1: "1", 2: "DA", 3: f"{code}^{name}^RXNORM", 4: "MO"})
    dg1 = segment("DG1", {1: "1", 3: f"{icd}^{diagnosis}^I10", 6: "W"})
    when = p.admitted + timedelta(hours=6)
    return adt(moved, "A08", when, f"{p.mrn}-A08", nk1, al1, dg1)


def transfer(p: Person) -> bytes:
    assert p.transfer_to is not None
    when = p.admitted + timedelta(hours=30)
    return adt(p, "A02", when, f"{p.mrn}-A02", bed=p.transfer_to, prior=p.bed)


def discharge(p: Person) -> bytes:
    assert p.discharged is not None
    bed = p.transfer_to or p.bed
    return adt(p, "A03", p.discharged, f"{p.mrn}-A03", bed=bed, discharged=p.discharged)


def lab_result(p: Person, number: int, rng: random.Random, *, sent_by: str = "DEMO_LIS") -> bytes:
    """ORU^R01: one panel of `p`'s stay, resulted a few hours after collection."""
    panel = list(PANELS)[(p.index + number) % len(PANELS)]
    title, results = PANELS[panel]
    collected = p.admitted + timedelta(hours=2 + 12 * number)
    resulted = collected + timedelta(minutes=rng.choice((45, 70, 95)))
    order = f"{p.mrn}-{number}"
    obr = segment(
        "OBR",
        {
            1: "1",
            2: f"ORD-{order}^DEMO_CPOE",
            3: f"LAB-{order}^DEMO_LAB",
            4: f"{panel}^{title}^LN",
            7: hl7_time(collected),
            22: hl7_time(resulted),
            25: "F",
        },
    )
    obx = [_obx(i, result, rng) for i, result in enumerate(results, start=1)]
    return message(
        msh(sent_by, "DEMO_LAB", resulted, "ORU^R01^ORU_R01", f"{order}-ORU"),
        pid(p),  # as admitted: the A08 comes later in the demo
        pv1(p, p.bed),
        obr,
        *obx,
    )


def _obx(set_id: int, result: _Result, rng: random.Random) -> str:
    code, display, unit, low, high, decimals = result
    span = high - low
    value = round(rng.uniform(low - span * 0.25, high + span * 0.25), decimals)
    flag = "H" if value > high else "L" if value < low else "N"
    shown = f"{value:.{decimals}f}"
    limits = f"{low:g}-{high:g}"
    return segment(
        "OBX",
        {
            1: str(set_id),
            2: "NM",
            3: f"{code}^{display}^LN",
            5: shown,
            6: f"{unit}^{unit}^UCUM",
            7: limits,
            8: flag,
            11: "F",
        },
    )
