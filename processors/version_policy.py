"""How a translated resource meets the current version of its key, by where it came from.

Most sources describe the whole resource, and their translation replaces the current one.
Two DICOM outputs are partial views and would destroy data if they replaced it:
- an ImagingStudy translated from one SOP instance lists that instance only: it is merged
  into the current study (series and instances unioned by UID);
- a Patient from an image header carries an identifier, a name, a birth date and a sex:
  it creates the patient when none exists and never overwrites one (the ADT feed or a FHIR
  write is the authority on demographics).

A conditional create (If-None-Exist) is create-only too, whatever its source: when its
target exists, FHIR leaves it as it is.
"""

from __future__ import annotations

from enum import Enum

from processors.dicom_header import MAPPING_VERSION as DICOM_MAPPING
from schemas.events import ResourceTranslated

_DICOM = DICOM_MAPPING.split("/")[0]


class Policy(Enum):
    REPLACE = "replace"
    MERGE = "merge"  # fold into the current resource (which the versioning state then keeps)
    CREATE_ONLY = "create-only"  # only when there is no current resource


def policy_for(translated: ResourceTranslated) -> Policy:
    if translated.if_none_exist:
        return Policy.CREATE_ONLY
    if translated.mapping_version.split("/")[0] == _DICOM:
        if translated.resource_type == "ImagingStudy":
            return Policy.MERGE
        if translated.resource_type == "Patient":
            return Policy.CREATE_ONLY
    return Policy.REPLACE
