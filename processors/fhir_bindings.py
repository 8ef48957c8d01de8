"""Required value-set bindings (FHIR R4 4.0.1) that the fhir.resources models do not check.

fhir.resources types a `code` element as a string matching the code pattern and nothing more,
so Observation.status "finished" passes its model. This table lists the required bindings of
the resource types carelog produces, by element path; `fhir_validation` applies it.

Checked against R4 4.0.1 and the fhir.resources R4B models: for these elements the R4 and
R4B value sets are the same (no difference met).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Binding:
    """`path` (dotted, lists walked) must hold a code from `codes`.

    With `system` set the element is a CodeableConcept: one of its codings must come from
    `system` with a code from `codes` (a required binding allows no text-only concept).
    """

    path: str
    codes: frozenset[str]
    system: str | None = None


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


def _person(prefix: str = "") -> list[Binding]:
    """Bindings of the data types a person-like resource carries."""
    return [
        Binding(f"{prefix}gender", _GENDER),
        Binding(f"{prefix}name.use", _NAME_USE),
        Binding(f"{prefix}telecom.system", _TELECOM_SYSTEM),
        Binding(f"{prefix}telecom.use", _TELECOM_USE),
        Binding(f"{prefix}address.use", _ADDRESS_USE),
        Binding(f"{prefix}address.type", _ADDRESS_TYPE),
    ]


REQUIRED_BINDINGS: dict[str, list[Binding]] = {
    "Patient": [
        *_person(),
        *_person("contact."),
        Binding("identifier.use", _IDENTIFIER_USE),
        Binding("link.type", _codes("replaced-by replaces refer seealso")),
    ],
    "RelatedPerson": [*_person(), Binding("identifier.use", _IDENTIFIER_USE)],
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
        Binding("valueQuantity.comparator", _codes("< <= >= >")),
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
