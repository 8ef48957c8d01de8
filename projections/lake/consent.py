"""Consent honoured by the de-identified lake export: patients kept out of `deidentified/`.

The export is secondary use (research) by the lake itself. A Consent denies it when
schemas/consent.py says it denies the asker LAKE_ACTOR for one of RESEARCH_PURPOSES: an
active deny with no actor or an actor naming `carelog-lake` (`Device/carelog-lake`, or an
identifier value `carelog-lake`), and no purpose or a research purpose. A deny for another
actor (an app reading the FHIR API) or another purpose (e.g. TREAT) leaves the lake alone.

The sink folds Consent changes from carelog.fhir.changes into `Denials` (Consent id -> the
patient it denies) and keeps them in the table CONSENT_TABLE, which records its log
positions like every other table: a restart reloads them and reads on from there, a lake
rebuilt from the log derives them again. A resource belongs to the patients `patients_in`
finds (the Patient itself; any resource referring to Patient/x), the same scan that picks
the key sealing it.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

from projections.lake.changes import Change, latest_per_resource
from projections.lake.offsets import Positions
from projections.lake.silver import Flattened
from projections.lake.views import SYSTEM_FIELDS
from schemas.consent import Asker, consent_patient, denies
from streams.privacy.envelope import patients_in

LAKE_ACTOR = "carelog-lake"
# v3 PurposeOfUse codes of research, the secondary use the de-identified tables serve.
RESEARCH_PURPOSES = ("HRESCH", "CLINTRCH", "CLINTRCHNPC", "CLINTRCHPC")
CONSENT_TABLE = "state/consent_denials"
SCHEMA = pa.schema([pa.field("patient", pa.string()), *SYSTEM_FIELDS])  # null in merge markers
_ASKERS = tuple(Asker(LAKE_ACTOR, p) for p in RESEARCH_PURPOSES)


def denied_by(change: Change) -> str | None:
    """The patient a Consent change keeps out of the lake's export now; None: nobody (a
    permit, another actor or purpose, inactive, deleted)."""
    consent = change.resource()
    if change.resource_type != "Consent" or change.is_delete or consent is None:
        return None
    if not any(denies(consent, asker) for asker in _ASKERS):
        return None
    return consent_patient(consent)


def belongs_to_any(change: Change, patients: set[str]) -> bool:
    """Whether the changed resource belongs to one of `patients` (a delete: to nobody)."""
    text = change.record["resource"]
    return text is not None and bool(
        patients & patients_in(change.resource_type, change.resource_id, text)
    )


class Denials:
    """The Consents that deny the lake now (Consent id -> patient), as of `positions`."""

    def __init__(self, by_consent: dict[str, str], positions: Positions) -> None:
        self.by_consent = by_consent
        self.positions = positions
        self.patients = set(by_consent.values())

    @classmethod
    def load(cls, table: DeltaTable, positions: Positions) -> Denials:
        rows = table.to_pyarrow_table(columns=["_resource_id", "patient"]).to_pylist()
        return cls({r["_resource_id"]: r["patient"] for r in rows}, dict(positions))

    def apply(self, changes: list[Change], read_up_to: Positions) -> set[str]:
        """Fold the Consent changes it has not seen; the patients denied now and not before."""
        before = set(self.patients)
        for change in changes:
            if change.resource_type != "Consent" or change.offset <= self.positions.get(
                change.position, -1
            ):
                continue
            patient = denied_by(change)
            if patient is None:
                self.by_consent.pop(change.resource_id, None)
            else:
                self.by_consent[change.resource_id] = patient
        for tp, off in read_up_to.items():
            self.positions[tp] = max(off, self.positions.get(tp, -1))
        self.patients = set(self.by_consent.values())
        return self.patients - before


def flatten(changes: list[Change]) -> Flattened:
    """The CONSENT_TABLE rows of a batch's Consent changes (silver.write applies them): a row
    per Consent that denies the lake, every other Consent's row removed."""
    rows: dict[str, list[object]] = {f.name: [] for f in SCHEMA}
    ids, replaced, versions = [], [], []
    for change in latest_per_resource([c for c in changes if c.resource_type == "Consent"]):
        ids.append(change.resource_id)
        if change.version != 1 or change.is_delete:
            replaced.append(change.resource_id)
            versions.append(change.version)
        patient = denied_by(change)
        if patient is not None:
            for name, value in (("patient", patient), ("_resource_id", change.resource_id),
                                ("_version", change.version), ("_last_updated", None)):  # fmt: skip
                rows[name].append(value)
    return Flattened(pa.table(rows, schema=SCHEMA), ids, replaced, versions, 0)


def resources_of(
    bronze: DeltaTable, patients: set[str], types: Iterable[str]
) -> set[tuple[str, str]]:
    """The resources of `types` any version of which in bronze belongs to one of `patients`:
    a scan of bronze's `resource` text (pruned to those types' folders), then the same test
    as for new changes."""
    wanted = sorted(set(types))
    if not patients or not wanted:
        return set()
    mentions = None
    for patient in sorted(patients):
        test = pc.match_substring(pc.field("resource"), f"Patient/{patient}")
        mentions = test if mentions is None else mentions | test
    is_patient = (pc.field("resource_type") == "Patient") & pc.field("resource_id").isin(
        sorted(patients)
    )
    found = bronze.to_pyarrow_dataset().to_table(
        columns=["resource_type", "resource_id", "resource"],
        filter=pc.field("resource_type").isin(wanted) & (mentions | is_patient),
    )
    out: set[tuple[str, str]] = set()
    for row in found.to_pylist():
        text = row["resource"]
        if text is not None and patients & patients_in(
            row["resource_type"], row["resource_id"], text
        ):
            out.add((row["resource_type"], row["resource_id"]))
    return out
