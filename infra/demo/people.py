"""Synthetic patients and their hospital stays: pure functions of (seed, count).

Everything is drawn from one `random.Random(seed)`, so a seed always gives the same people,
the same stays and, downstream, the same bytes. Times are fixed to a demo week (not the
clock) for the same reason: sending the same seed twice converges on the same resources.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone

from processors.ids import local_system, patient_id

FACILITY = "DEMO_HOSP"  # the assigning authority of MRNs and visit numbers
PATIENT_SYSTEM = local_system(FACILITY)  # Identifier.system carelog gives it
TZ = timezone(timedelta(hours=-5))
WEEK_START = datetime(2026, 3, 2, 6, 0, tzinfo=TZ)

_FAMILY = (
    "Okafor",
    "Lindqvist",
    "Haddad",
    "Moreau",
    "Tanaka",
    "Novak",
    "Castillo",
    "Brennan",
    "Kowalski",
    "Adeyemi",
    "Fischer",
    "Larsen",
    "Quinn",
    "Rossi",
    "Mbeki",
    "Sato",
    "Dubois",
    "Petrov",
    "Walsh",
    "Ibrahim",
    "Jensen",
    "Nguyen",
    "Alvarez",
    "Hughes",
    "Becker",
    "Costa",
    "Marsh",
    "Yilmaz",
    "Kaur",
    "Ferreira",
)
_GIVEN_F = (
    "Amara",
    "Ingrid",
    "Leila",
    "Chloe",
    "Yuki",
    "Petra",
    "Lucia",
    "Siobhan",
    "Zofia",
    "Ifeoma",
    "Hanna",
    "Freya",
)
_GIVEN_M = (
    "Chidi",
    "Erik",
    "Omar",
    "Julien",
    "Kenji",
    "Tomas",
    "Mateo",
    "Declan",
    "Piotr",
    "Tunde",
    "Lukas",
    "Anders",
)
_STREETS = ("Maple Ave", "Harbor St", "Cedar Ln", "Orchard Rd", "Mill St", "Lakeview Dr")
_CITIES = (("Madison", "WI", "537"), ("Rockford", "IL", "611"), ("Dubuque", "IA", "520"))
# (unit, rooms): where patients lie; a transfer moves them to another unit.
_UNITS = (("3EAST", 300), ("4WEST", 400), ("5NORTH", 500), ("ICU", 100))
_DOCTORS = (
    ("1234567893", "Reyes", "Marco"),
    ("1679576722", "Achterberg", "Ruth"),
    ("1245319599", "Osei", "Kwame"),
    ("1487620118", "Lindgren", "Maja"),
)


@dataclass(frozen=True, slots=True)
class Bed:
    unit: str
    room: str
    bed: str

    def hl7(self) -> str:
        """PL: point of care ^ room ^ bed ^ facility."""
        return f"{self.unit}^{self.room}^{self.bed}^{FACILITY}"


@dataclass(frozen=True, slots=True)
class Person:
    """One synthetic patient, a stay, and what happens to them during the demo."""

    index: int
    mrn: str
    family: str
    given: str
    middle: str
    sex: str  # HL7 / DICOM: M or F
    birth: date
    street: str
    city: str
    state: str
    postcode: str
    phone: str  # area code and number, e.g. 608 5550123
    visit: str  # PV1-19 visit number
    bed: Bed
    doctor: tuple[str, str, str]  # NPI, family, given
    admitted: datetime
    labs: int  # lab panels resulted during the stay
    vitals: int  # bedside monitor batches
    imaging: int  # instances of one imaging study (0: none)
    updated: bool  # an A08 (new address, allergy, diagnosis)
    transfer_to: Bed | None  # an A02 to this bed
    discharged: datetime | None  # an A03 at this time

    @property
    def fhir_id(self) -> str:
        """The Patient id carelog derives from the MRN (processors/ids.py)."""
        return patient_id(PATIENT_SYSTEM, self.mrn)

    def moved(self) -> Person:
        """After the A08: the new address the update carries."""
        return replace(self, street=f"{self.index % 90 + 10} Willow Ct", phone="608 5550142")


def make_people(seed: int, count: int) -> list[Person]:
    """`count` patients; the first one gets every kind of message, to be shown afterwards."""
    rng = random.Random(seed)
    return [_person(rng, seed, i, everything=i == 0) for i in range(count)]


def _person(rng: random.Random, seed: int, index: int, *, everything: bool) -> Person:
    sex = rng.choice("MF")
    city, state, zip3 = rng.choice(_CITIES)
    unit, base = rng.choice(_UNITS)
    bed = Bed(unit, str(base + rng.randint(1, 30)), rng.choice("AB"))
    other_unit, other_base = rng.choice([u for u in _UNITS if u[0] != unit])
    admitted = WEEK_START + timedelta(hours=rng.randint(0, 72), minutes=rng.choice((0, 15, 30)))
    imaging = rng.choice((0, 0, 1, 2, 3))
    transfer = rng.random() < 0.35
    discharged = rng.random() < 0.6
    if everything:
        imaging, transfer, discharged = max(imaging, 2), True, True
    return Person(
        index=index,
        mrn=f"DM{seed % 1000:03d}{index:05d}",
        family=rng.choice(_FAMILY),
        given=rng.choice(_GIVEN_M if sex == "M" else _GIVEN_F),
        middle=rng.choice("ABCDEJKLMRST"),
        sex=sex,
        birth=date(1940, 1, 1) + timedelta(days=rng.randint(0, 365 * 65)),
        street=f"{rng.randint(1, 999)} {rng.choice(_STREETS)}",
        city=city,
        state=state,
        postcode=f"{zip3}{rng.randint(0, 99):02d}",
        phone=f"608 555{rng.randint(0, 9999):04d}",
        visit=f"V{seed % 1000:03d}{index:05d}",
        bed=bed,
        doctor=rng.choice(_DOCTORS),
        admitted=admitted,
        labs=rng.randint(1, 3),
        vitals=rng.randint(2, 4),
        imaging=imaging,
        # Imaging sends a thin Patient (what a DICOM header holds); an A08 afterwards puts
        # the full demographics back as the current version.
        updated=everything or imaging > 0 or rng.random() < 0.6,
        transfer_to=Bed(other_unit, str(other_base + rng.randint(1, 30)), "A")
        if transfer
        else None,
        discharged=admitted + timedelta(days=rng.randint(2, 5), hours=rng.randint(0, 8))
        if discharged
        else None,
    )


def hl7_time(moment: datetime) -> str:
    """DTM with seconds and offset, e.g. 20260302061500-0500."""
    return moment.strftime("%Y%m%d%H%M%S%z")
