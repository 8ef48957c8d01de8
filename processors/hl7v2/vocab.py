"""HL7 v2 vocabulary -> FHIR vocabulary, after the ConceptMaps of the HL7 v2-to-FHIR IG.

Each table maps a v2 code to a FHIR code (or to a system/code pair where the target is a
code system). A code a table does not know is never guessed: callers keep it as a coding in
the v2 table's own system (http://terminology.hl7.org/CodeSystem/v2-XXXX).
"""

from __future__ import annotations

from typing import Final

V2 = "http://terminology.hl7.org/CodeSystem/v2-"
V3_ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_MARITAL: Final = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
V3_NULL: Final = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
V3_ROLE: Final = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
V3_INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DISCHARGE_DISPOSITION: Final = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
CDC_RACE: Final = "urn:oid:2.16.840.1.113883.6.238"
US_CORE_RACE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"

# v2 coding system names (HL7 table 0396) -> FHIR code system URIs.
CODING_SYSTEMS: Final[dict[str, str]] = {
    "LN": "http://loinc.org",
    "LOINC": "http://loinc.org",
    "SCT": "http://snomed.info/sct",
    "SNM": "http://snomed.info/sct",
    "SNM3": "http://snomed.info/sct",
    "SNOMED": "http://snomed.info/sct",
    "I10": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10C": "http://hl7.org/fhir/sid/icd-10-cm",
    "ICD10CM": "http://hl7.org/fhir/sid/icd-10-cm",
    "I10P": "http://www.cms.gov/Medicare/Coding/ICD10",
    "I9C": "http://hl7.org/fhir/sid/icd-9-cm",
    "I9CDX": "http://hl7.org/fhir/sid/icd-9-cm",
    "UCUM": "http://unitsofmeasure.org",
    "CVX": "http://hl7.org/fhir/sid/cvx",
    "MVX": "http://terminology.hl7.org/CodeSystem/MVX",
    "NCIT": "http://ncit.nci.nih.gov",
    "RXNORM": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "RXN": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "NDC": "http://hl7.org/fhir/sid/ndc",
    "C4": "http://www.ama-assn.org/go/cpt",
    "CPT": "http://www.ama-assn.org/go/cpt",
    "CDCREC": CDC_RACE,
    "NUCC": "http://nucc.org/provider-taxonomy",
    "HL70005": CDC_RACE,  # the codes of table 0005 are the CDC race and ethnicity codes
}

# HL7 table 0001 administrative sex -> administrative-gender.
SEX: Final = {"F": "female", "M": "male", "O": "other", "U": "unknown", "A": "other", "N": "other"}

# HL7 table 0002 marital status -> v3 MaritalStatus (or NullFlavor).
MARITAL: Final[dict[str, tuple[str, str, str]]] = {
    "A": (V3_MARITAL, "L", "Legally Separated"),
    "E": (V3_MARITAL, "L", "Legally Separated"),
    "D": (V3_MARITAL, "D", "Divorced"),
    "M": (V3_MARITAL, "M", "Married"),
    "S": (V3_MARITAL, "S", "Never Married"),
    "W": (V3_MARITAL, "W", "Widowed"),
    "C": (V3_MARITAL, "C", "Common Law"),
    "P": (V3_MARITAL, "T", "Domestic partner"),
    "R": (V3_MARITAL, "T", "Domestic partner"),
    "G": (V3_MARITAL, "T", "Domestic partner"),
    "N": (V3_MARITAL, "A", "Annulled"),
    "I": (V3_MARITAL, "I", "Interlocutory"),
    "B": (V3_MARITAL, "U", "unmarried"),
    "U": (V3_NULL, "UNK", "unknown"),
    "T": (V3_NULL, "UNK", "unknown"),
    "O": (V3_NULL, "OTH", "other"),
}

# HL7 table 0004 patient class -> Encounter.class (v3 ActCode).
PATIENT_CLASS: Final[dict[str, tuple[str, str]]] = {
    "E": ("EMER", "emergency"),
    "I": ("IMP", "inpatient encounter"),
    "O": ("AMB", "ambulatory"),
    "P": ("PRENC", "pre-admission"),
    "R": ("AMB", "ambulatory"),
    "B": ("IMP", "inpatient encounter"),
}

# HL7 table 0005 race: the OMB minimum categories (others are "detailed").
OMB_RACE: Final = {
    "1002-5": "American Indian or Alaska Native",
    "2028-9": "Asian",
    "2054-5": "Black or African American",
    "2076-8": "Native Hawaiian or Other Pacific Islander",
    "2106-3": "White",
}

# HL7 table 0078 abnormal flags: codes that are also v3 ObservationInterpretation codes.
INTERPRETATION: Final = frozenset(
    [
        "<",
        ">",
        "A",
        "AA",
        "AC",
        "B",
        "CAR",
        "D",
        "DET",
        "E",
        "EX",
        "EXP",
        "H",
        "HH",
        "HU",
        "HX",
        "I",
        "IE",
        "IND",
        "L",
        "LL",
        "LU",
        "LX",
        "MS",
        "N",
        "NCL",
        "ND",
        "NEG",
        "NR",
        "NS",
        "POS",
        "QCF",
        "R",
        "RR",
        "S",
        "SDD",
        "SYN-R",
        "SYN-S",
        "TOX",
        "U",
        "UNE",
        "VS",
        "W",
        "WR",
    ]
)

# HL7 table 0085 observation result status (OBX-11) -> Observation.status.
OBSERVATION_STATUS: Final = {
    "C": "corrected",
    "D": "entered-in-error",
    "F": "final",
    "I": "registered",
    "N": "cancelled",
    "O": "registered",
    "P": "preliminary",
    "R": "preliminary",
    "S": "preliminary",
    "U": "final",
    "W": "entered-in-error",
    "X": "cancelled",
    "A": "amended",
}

# HL7 table 0123 result status (OBR-25) -> DiagnosticReport.status.
REPORT_STATUS: Final = {
    "O": "registered",
    "I": "registered",
    "S": "registered",
    "A": "partial",
    "R": "partial",
    "P": "preliminary",
    "C": "corrected",
    "F": "final",
    "X": "cancelled",
    "Y": "unknown",
    "Z": "unknown",
}

# HL7 table 0112 discharge disposition -> discharge-disposition (the v2 code is kept too).
DISCHARGE: Final[dict[str, tuple[str, str]]] = {
    "01": ("home", "Home"),
    "02": ("hosp", "Hospital"),
    "03": ("snf", "Skilled nursing facility"),
    "04": ("other-hcf", "Other healthcare facility"),
    "05": ("other-hcf", "Other healthcare facility"),
    "06": ("home", "Home"),
    "07": ("aadvice", "Left against advice"),
    "20": ("exp", "Expired"),
    "51": ("oth", "Other"),
    "62": ("rehab", "Rehabilitation"),
    "63": ("long", "Long-term care"),
    "65": ("psy", "Psychiatric hospital"),
}
DISCHARGE_V2_DISPLAY: Final = {
    "01": "Discharged to home or self care (routine discharge)",
    "02": "Discharged/transferred to another short-term general hospital for inpatient care",
    "03": "Discharged/transferred to skilled nursing facility (SNF)",
    "07": "Left against medical advice or discontinued care",
    "20": "Expired",
}

# HL7 table 0063 relationship -> v3 RoleCode (the v2 code is kept too).
RELATIONSHIP: Final[dict[str, tuple[str, str]]] = {
    "SPO": ("SPS", "spouse"),
    "WIF": ("WIFE", "wife"),
    "HUS": ("HUSB", "husband"),
    "CHD": ("CHILD", "child"),
    "SON": ("SONC", "son"),
    "DAU": ("DAUC", "daughter"),
    "FTH": ("FTH", "father"),
    "MTH": ("MTH", "mother"),
    "PAR": ("PRN", "parent"),
    "SIB": ("SIB", "sibling"),
    "BRO": ("BRO", "brother"),
    "SIS": ("SIS", "sister"),
    "GRP": ("GRPRN", "grandparent"),
    "GRD": ("GUARD", "guardian"),
    "FND": ("FRND", "unrelated friend"),
    "FRN": ("FRND", "unrelated friend"),
    "DOM": ("DOMPART", "domestic partner"),
    "EXF": ("FAMMEMB", "family member"),
}

# HL7 table 0119 order control (ORC-1) -> ServiceRequest.status; intent is "order".
ORDER_CONTROL_STATUS: Final = {
    "NW": "active",
    "OK": "active",
    "RE": "active",
    "XO": "active",
    "XX": "active",
    "RL": "active",
    "NA": "active",
    "SN": "draft",
    "CA": "revoked",
    "OC": "revoked",
    "CR": "revoked",
    "DC": "revoked",
    "OD": "revoked",
    "DR": "revoked",
    "HD": "on-hold",
    "OH": "on-hold",
    "HR": "on-hold",
    "RP": "revoked",
    "RF": "active",  # refill order request (RDE^O25)
    "OP": "active",  # notification of order for outside dispense
}
# HL7 table 0038 order status (ORC-5) -> ServiceRequest.status, preferred when sent.
ORDER_STATUS: Final = {
    "A": "active",
    "CA": "revoked",
    "CM": "completed",
    "DC": "revoked",
    "ER": "entered-in-error",
    "HD": "on-hold",
    "IP": "active",
    "RP": "revoked",
    "SC": "active",
}

# HL7 table 0200 name type -> HumanName.use.
NAME_USE: Final = {
    "L": "official",
    "R": "official",
    "D": "usual",
    "A": "usual",
    "M": "maiden",
    "N": "nickname",
    "S": "anonymous",
    "T": "usual",
}
# HL7 table 0190 address type -> Address.use / Address.type.
ADDRESS_USE: Final = {"H": "home", "P": "home", "B": "work", "O": "work", "C": "temp", "BA": "old"}
ADDRESS_TYPE: Final = {"M": "postal", "SH": "postal"}
# HL7 table 0201 telecommunication use -> ContactPoint.use; 0202 equipment -> system.
TELECOM_USE: Final = {"PRN": "home", "ORN": "home", "VHN": "home", "WPN": "work", "PRS": "mobile"}
TELECOM_SYSTEM: Final = {
    "PH": "phone",
    "CP": "phone",
    "FX": "fax",
    "BP": "pager",
    "Internet": "email",
    "X.400": "email",
    "MD": "other",
    "TDD": "other",
    "TTY": "other",
}
