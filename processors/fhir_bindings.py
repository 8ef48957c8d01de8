"""Required value-set bindings (FHIR R4 4.0.1) that the fhir.resources models do not check.

fhir.resources types a `code` element as a string matching the code pattern and nothing more,
so Observation.status "finished" passes its model. These are carelog's one set of binding
tables, applied by `processors.validation` to every resource every translator produces:

- REQUIRED_BINDINGS: per resource type, by element path (dotted, lists walked);
- DATATYPE_BINDINGS: the bindings of data types (ContactPoint, HumanName, Address,
  Identifier, Quantity), applied wherever the element appears, in any resource;
- CODE_SYSTEMS: the code systems whose codes are checked offline (`terminology/`).

Checked against R4 4.0.1 and the fhir.resources R4B models: for these elements the R4 and
R4B value sets are the same (no difference met).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from schemas.terminology import icd10, loinc, snomed, ucum


@dataclass(frozen=True, slots=True)
class Binding:
    """`path` (dotted, lists walked) must hold a code from `codes`.

    With `system` set the element is a CodeableConcept: one of its codings must come from
    `system` with a code from `codes` (a required binding allows no text-only concept).
    """

    path: str
    codes: frozenset[str]
    system: str | None = None
    steps: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", tuple(self.path.split(".")))


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


_GENDER = _codes("male female other unknown")
_NAME_USE = _codes("usual official temp nickname anonymous old maiden")
_IDENTIFIER_USE = _codes("usual official temp secondary old")
_TELECOM_SYSTEM = _codes("phone fax email pager url sms other")
_TELECOM_USE = _codes("home work temp old mobile")
_ADDRESS_USE = _codes("home work temp old billing")
_ADDRESS_TYPE = _codes("postal physical both")
_ENCOUNTER_STATUS = _codes(
    "planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown"
)
_TERMINOLOGY = "http://terminology.hl7.org/CodeSystem/"


# (element name, key) -> codes: a data type's required bindings, wherever the element is.
DATATYPE_BINDINGS: dict[tuple[str, str], frozenset[str]] = {
    ("telecom", "system"): _TELECOM_SYSTEM,
    ("telecom", "use"): _TELECOM_USE,
    ("name", "use"): _NAME_USE,
    ("address", "use"): _ADDRESS_USE,
    ("address", "type"): _ADDRESS_TYPE,
    ("identifier", "use"): _IDENTIFIER_USE,
}
# Quantity.comparator, on any element holding a Quantity.
QUANTITY_COMPARATORS = _codes("< <= >= >")

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = ("http://hl7.org/fhir/sid/icd-10-cm", "http://hl7.org/fhir/sid/icd-10")
UCUM = "http://unitsofmeasure.org"
# Code system -> checker (`problem(code)`: why the code is not one of that system, or None).
# The answers are remembered (a bounded LRU): the same few codes and units come again and
# again (an ORU^R01 with 10 OBX checks some 30 UCUM units), and parsing one costs more than
# the rest of its element's checks.
CODE_SYSTEMS: dict[str, Callable[[str], str | None]] = {
    LOINC: lru_cache(maxsize=4096)(loinc.problem),
    SNOMED: lru_cache(maxsize=4096)(snomed.problem),
    **dict.fromkeys(ICD10, lru_cache(maxsize=4096)(icd10.problem)),
    UCUM: lru_cache(maxsize=4096)(ucum.problem),
}

REQUIRED_BINDINGS: dict[str, list[Binding]] = {
    "Patient": [
        Binding("gender", _GENDER),
        Binding("contact.gender", _GENDER),
        Binding("link.type", _codes("replaced-by replaces refer seealso")),
    ],
    "RelatedPerson": [Binding("gender", _GENDER)],
    "Practitioner": [Binding("gender", _GENDER)],
    "Location": [
        Binding("status", _codes("active suspended inactive")),
        Binding("mode", _codes("instance kind")),
    ],
    "Specimen": [
        Binding("status", _codes("available unavailable unsatisfactory entered-in-error"))
    ],
    "Encounter": [
        Binding("status", _ENCOUNTER_STATUS),
        Binding("statusHistory.status", _ENCOUNTER_STATUS),
        Binding("location.status", _codes("planned active reserved completed")),
    ],
    "Observation": [
        Binding(
            "status",
            _codes(
                "registered preliminary final amended corrected cancelled entered-in-error unknown"
            ),
        ),
    ],
    "DiagnosticReport": [
        Binding(
            "status",
            _codes(
                "registered partial preliminary final amended corrected appended cancelled "
                "entered-in-error unknown"
            ),
        ),
    ],
    "Condition": [
        Binding(
            "clinicalStatus",
            _codes("active recurrence relapse inactive remission resolved"),
            _TERMINOLOGY + "condition-clinical",
        ),
        Binding(
            "verificationStatus",
            _codes("unconfirmed provisional differential confirmed refuted entered-in-error"),
            _TERMINOLOGY + "condition-ver-status",
        ),
    ],
    "AllergyIntolerance": [
        Binding(
            "clinicalStatus",
            _codes("active inactive resolved"),
            _TERMINOLOGY + "allergyintolerance-clinical",
        ),
        Binding(
            "verificationStatus",
            _codes("unconfirmed confirmed refuted entered-in-error"),
            _TERMINOLOGY + "allergyintolerance-verification",
        ),
        Binding("type", _codes("allergy intolerance")),
        Binding("category", _codes("food medication environment biologic")),
        Binding("criticality", _codes("low high unable-to-assess")),
        Binding("reaction.severity", _codes("mild moderate severe")),
    ],
    "ServiceRequest": [
        Binding(
            "status", _codes("draft active on-hold revoked completed entered-in-error unknown")
        ),
        Binding(
            "intent",
            _codes(
                "proposal plan directive order original-order reflex-order filler-order "
                "instance-order option"
            ),
        ),
        Binding("priority", _codes("routine urgent asap stat")),
    ],
    "Immunization": [Binding("status", _codes("completed entered-in-error not-done"))],
    "Appointment": [
        Binding(
            "status",
            _codes(
                "proposed pending booked arrived fulfilled cancelled noshow entered-in-error "
                "checked-in waitlist"
            ),
        ),
        Binding("participant.required", _codes("required optional information-only")),
        Binding("participant.status", _codes("accepted declined tentative needs-action")),
    ],
    "DocumentReference": [
        Binding("status", _codes("current superseded entered-in-error")),
        Binding("docStatus", _codes("preliminary final amended entered-in-error")),
        Binding("relatesTo.code", _codes("replaces transforms signs appends")),
    ],
    "ImagingStudy": [
        Binding("status", _codes("registered available cancelled entered-in-error unknown")),
    ],
    "Device": [
        Binding("status", _codes("active inactive entered-in-error unknown")),
        Binding(
            "deviceName.type",
            _codes(
                "udi-label-name user-friendly-name patient-reported-name manufacturer-name "
                "model-name other"
            ),
        ),
    ],
}
