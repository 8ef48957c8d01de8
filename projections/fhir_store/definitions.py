"""The official FHIR R4 SearchParameter and patient CompartmentDefinition, loaded once.

The vendored files (see PROVENANCE.md) hold SearchParameter resources whose expression may
cover many resource types at once (`AllergyIntolerance.patient | CarePlan.subject...`);
`load_registry` splits each into one `SearchParam` per base type, keeping only the union
branches rooted at that type. Nothing here is written by hand per resource.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
SEARCH_PARAMETERS_FILE = HERE / "search-parameters.r4.json"
PATIENT_COMPARTMENT_FILE = HERE / "compartmentdefinition-patient.r4.json"

# The resource types carelog's translators produce (processors/: hl7v2/mappers, fhir_input,
# device_readings, dicom_header) and the gateway's AuditEvents; the store serves these.
RESOURCE_TYPES: tuple[str, ...] = (
    "AllergyIntolerance", "Appointment", "AuditEvent", "Condition", "Consent", "Device",
    "DiagnosticReport", "DocumentReference", "Encounter", "ImagingStudy", "Immunization",
    "Location", "Observation", "Organization", "Patient", "Practitioner", "RelatedPerson",
    "ServiceRequest", "Specimen",
)  # fmt: skip

# Index kinds the store keeps; composite and special parameters are not served.
INDEXED_KINDS = frozenset({"string", "token", "date", "reference", "quantity", "number", "uri"})
# Resource-level parameters answered from the resources table itself, not from an index.
BUILTIN = {
    "_id": ("token", "Logical id of this artifact"),
    "_lastUpdated": ("date", "When the resource version last changed"),
}
# Resource-level parameters with no index here (answered with a SearchError).
UNSUPPORTED_RESOURCE_PARAMS = frozenset({"_text", "_content", "_query", "_list", "_has", "_type"})


@dataclass(frozen=True, slots=True)
class SearchParam:
    """One search parameter of one resource type."""

    pid: int  # a stable small integer, the key of the parameter in the index tables
    base: str
    name: str
    kind: str  # string, token, date, reference, quantity, number, uri
    expression: str  # FHIRPath, only the branches rooted at `base`
    targets: tuple[str, ...]
    description: str
    url: str


def split_top_level(expression: str, separator: str) -> list[str]:
    """Split a FHIRPath expression on `separator` outside brackets and quotes."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for ch in expression:
        if ch == "'":
            quoted = not quoted
        elif not quoted:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch == separator and depth == 0:
                parts.append("".join(current).strip())
                current = []
                continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression on its top-level `|`."""
    return [p for p in split_top_level(expression, "|") if p]


def branches_for(expression: str, base: str) -> str:
    """The union branches of `expression` that navigate from `base` (or from Resource)."""
    root = re.compile(r"^\(?\s*(" + re.escape(base) + r"|Resource|DomainResource)\b")
    kept = []
    for part in split_union(expression):
        match = root.match(part)
        if match:
            if match.group(1) != base:  # Resource.meta.tag -> Patient.meta.tag
                part = part[: match.start(1)] + base + part[match.end(1) :]
            kept.append(part)
    return " | ".join(kept)


@dataclass(frozen=True)
class Registry:
    """Every indexed search parameter, by resource type and name."""

    by_type: dict[str, dict[str, SearchParam]]
    by_pid: dict[int, SearchParam]
    compartment: dict[str, tuple[str, ...]]  # resource type -> params linking to the patient
    digest: str  # changes when the definitions change: the store must then be rebuilt

    def params(self, resource_type: str) -> dict[str, SearchParam]:
        return self.by_type.get(resource_type, {})


def _load_json(path: Path) -> dict:  # type: ignore[type-arg]
    return orjson.loads(path.read_bytes())  # type: ignore[no-any-return]


@cache
def load_registry() -> Registry:
    """Parse the vendored definitions (once per process)."""
    raw = SEARCH_PARAMETERS_FILE.read_bytes()
    bundle = orjson.loads(raw)
    found: list[tuple[str, str, str, str, tuple[str, ...], str, str]] = []
    for entry in bundle["entry"]:
        sp = entry["resource"]
        kind = sp["type"]
        if kind not in INDEXED_KINDS or not sp.get("expression"):
            continue
        bases = sp["base"]
        if "Resource" in bases or "DomainResource" in bases:
            bases = list(RESOURCE_TYPES)
        for base in bases:
            if base not in RESOURCE_TYPES or sp["code"] in BUILTIN:
                continue
            expression = branches_for(sp["expression"], base)
            if not expression:
                continue
            found.append(
                (base, sp["code"], kind, expression, tuple(sp.get("target", ())),
                 sp.get("description", ""), sp["url"])
            )  # fmt: skip
    found.sort()
    by_type: dict[str, dict[str, SearchParam]] = {t: {} for t in RESOURCE_TYPES}
    by_pid: dict[int, SearchParam] = {}
    for pid, (base, name, kind, expression, targets, description, url) in enumerate(found, 1):
        param = SearchParam(pid, base, name, kind, expression, targets, description, url)
        by_type[base][name] = param
        by_pid[pid] = param
    compartment_def = _load_json(PATIENT_COMPARTMENT_FILE)
    compartment = {
        r["code"]: tuple(r.get("param", ()))
        for r in compartment_def["resource"]
        if r["code"] in RESOURCE_TYPES and r.get("param")
    }
    digest = hashlib.sha256(
        orjson.dumps([list(f) for f in found]) + orjson.dumps(compartment)
    ).hexdigest()[:16]
    return Registry(by_type, by_pid, compartment, digest)
