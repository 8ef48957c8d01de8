"""How a translated resource meets the current version of its key, by where it came from.

Most sources describe the whole resource, and their translation replaces the current one.
Some outputs are partial views and would destroy data if they replaced it:
- an ImagingStudy translated from one DICOM SOP instance lists that instance only: it is
  merged into the current study (series and instances unioned by UID);
- a Patient from an image header carries an identifier, a name, a birth date and a sex:
  it creates the patient when none exists and never overwrites one (the ADT feed or a FHIR
  write is the authority on demographics);
- a Patient or an Encounter from an HL7 v2 message other than ADT (ORU, ORM, OML, VXU, SIU,
  MDM, ...) is likewise create-only. The ADT feed is the source of truth for demographics
  and visits; a result's PID is the lab's copy (often just name and MRN) and its PV1 a thin
  pointer to the visit. The HL7 translator names the message map in the mapping version
  (hl7v2-fhir/1.0.0/ORU_R01), which is how this tells ADT from the rest. Create-only rather
  than a merge (fields it carries filling absent ones): an absent field is not always an
  unknown one, and when an A08 removes a phone number or an address a merge would bring the
  lab's stale copy back; a merge would also have to keep every Patient's body in the
  versioning table. Either way, unlike a replace, a result for a patient merged away by A40
  does not make the inactive record active again. The message itself stays on the log, and
  a result that arrives before any ADT still creates the patient, which the next ADT
  message then replaces.
- likewise the order feed owns its orders: a ServiceRequest from a result or document (ORU,
  OUL, MDM, DFT: the filler's echo of ORC/OBR, written so that DiagnosticReport.basedOn
  resolves) and a MedicationRequest from a dispense or administration (RDS, RAS) only
  create; ORM/OML/OMG (and REF for referrals) and RDE/OMP/ORM replace.
Append-only records (AuditEvent, processors/append_only.py) are never replaced or deleted
once recorded, whatever the source: such a change is refused (a Rejected event).
A conditional create (If-None-Exist) is create-only too, whatever its source: when its
target exists, FHIR leaves it as it is.
"""

from __future__ import annotations

from enum import Enum

from processors.append_only import APPEND_ONLY_TYPES
from processors.dicom_header import MAPPING_VERSION as DICOM_MAPPING
from processors.hl7v2.context import message_code_of
from schemas.events import ResourceTranslated

_DICOM = DICOM_MAPPING.split("/")[0]
# resource type -> the HL7 v2 message codes whose translation replaces it; the others only create
_HL7V2_OWNERS: dict[str, frozenset[str]] = {
    "Patient": frozenset({"ADT"}),
    "Encounter": frozenset({"ADT"}),
    "ServiceRequest": frozenset({"ORM", "OML", "OMG", "REF"}),
    "MedicationRequest": frozenset({"ORM", "OMP", "RDE"}),
}


class Policy(Enum):
    REPLACE = "replace"
    MERGE = "merge"  # fold into the current resource (which the versioning state then keeps)
    CREATE_ONLY = "create-only"  # only when there is no current resource
    APPEND_ONLY = "append-only"  # created once; replacing or deleting it is refused


def policy_for(translated: ResourceTranslated) -> Policy:
    if translated.resource_type in APPEND_ONLY_TYPES:
        return Policy.APPEND_ONLY
    if translated.if_none_exist:
        return Policy.CREATE_ONLY
    if merges(translated.resource_type, translated.mapping_version):
        return Policy.MERGE
    if translated.mapping_version.split("/")[0] == _DICOM and translated.resource_type == "Patient":
        return Policy.CREATE_ONLY
    owners = _HL7V2_OWNERS.get(translated.resource_type)
    if owners is not None:
        message_code = message_code_of(translated.mapping_version)
        if message_code is not None and message_code not in owners:
            return Policy.CREATE_ONLY
    return Policy.REPLACE


def merges(resource_type: str, mapping_version: str) -> bool:
    """Whether changes of this source fold into the current resource (Policy.MERGE): the
    versioning state keeps the current body of such keys (processors/version_store.py)."""
    return resource_type == "ImagingStudy" and mapping_version.split("/")[0] == _DICOM
