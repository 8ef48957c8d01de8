"""Hand-written FHIR R4 resources shaped like what carelog's processors emit for the corpus.

Written for these tests from the FHIR R4 specification and the HL7 v2-to-FHIR mappings of
tests/corpus/ (ADT demographics and visit, ORU CBC panel, ORM order, VXU immunization, AL1
allergy, DG1 diagnosis, a DICOM study); names, identifiers and places are invented. Ids are
parameters so that each test uses its own.
"""

from __future__ import annotations

from typing import Any

Resource = dict[str, Any]


def patient(pid: str, family: str = "Everyman", mrn: str = "MRN-1") -> Resource:
    return {
        "resourceType": "Patient",
        "id": pid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "identifier": [
            {
                "type": {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}
                    ]
                },
                "system": "urn:oid:1.2.3.4",
                "value": mrn,
                "assigner": {"display": "GOOD HEALTH"},
            },
            {"type": {"coding": [{"code": "SS"}]}, "value": "123-45-6789"},
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": ["Adam", "A."]}],
        "telecom": [{"system": "phone", "value": "(555)555-2004", "use": "home"}],
        "gender": "male",
        "birthDate": "1980-06-15",
        "deceasedBoolean": False,
        "address": [
            {
                "line": ["2222 Home Street"],
                "city": "Ann Arbor",
                "state": "MI",
                "postalCode": "99999",
                "country": "USA",
            }
        ],
        "maritalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}
            ]
        },
        "extension": [
            {
                "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                "extension": [
                    {
                        "url": "ombCategory",
                        "valueCoding": {
                            "system": "urn:oid:2.16.840.1.113883.6.238",
                            "code": "2106-3",
                        },
                    }
                ],
            }
        ],
    }


def encounter(eid: str, pid: str) -> Resource:
    return {
        "resourceType": "Encounter",
        "id": eid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "identifier": [{"value": "V-1001"}],
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "participant": [{"individual": {"display": "Dr Smith"}}],
        "period": {"start": "2024-02-28T08:00:00Z", "end": "2024-03-01T09:30:00Z"},
        "hospitalization": {"dischargeDisposition": {"coding": [{"code": "01"}]}},
        "location": [{"location": {"reference": "Location/ward-4"}}],
    }


def observation(oid: str, pid: str, value: float = 7.2, code: str = "6690-2") -> Resource:
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "status": "preliminary",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": "Leukocytes"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": "2024-03-01T07:45:00Z",
        "issued": "2024-03-01T09:00:00.000Z",
        "valueQuantity": {
            "value": value,
            "unit": "10*3/uL",
            "system": "http://unitsofmeasure.org",
            "code": "10*3/uL",
        },
        "interpretation": [{"coding": [{"code": "H"}]}],
        "referenceRange": [{"low": {"value": 4.5}, "high": {"value": 11.0}}],
    }


def blood_pressure(oid: str, pid: str) -> Resource:
    return {
        "resourceType": "Observation",
        "id": oid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": "2024-03-01T07:00:00Z",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": {"value": 120, "unit": "mm[Hg]", "code": "mm[Hg]"},
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": {"value": 80, "unit": "mm[Hg]", "code": "mm[Hg]"},
            },
        ],
    }


def condition(cid: str, pid: str) -> Resource:
    return {
        "resourceType": "Condition",
        "id": cid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "verificationStatus": {"coding": [{"code": "confirmed"}]},
        "category": [{"coding": [{"code": "encounter-diagnosis"}]}],
        "code": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/icd-10-cm",
                    "code": "J18.9",
                    "display": "Pneumonia",
                }
            ]
        },
        "subject": {"reference": f"Patient/{pid}"},
        "onsetDateTime": "2024-02-27",
        "recordedDate": "2024-02-28T08:30:00Z",
    }


def diagnostic_report(rid: str, pid: str, results: list[str], sr: str | None = None) -> Resource:
    report: Resource = {
        "resourceType": "DiagnosticReport",
        "id": rid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "status": "preliminary",
        "category": [{"coding": [{"code": "LAB"}]}],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "58410-2", "display": "CBC panel"}]
        },
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": "2024-03-01T07:45:00Z",
        "issued": "2024-03-01T09:00:00+01:00",
        "result": [{"reference": f"Observation/{o}"} for o in results],
    }
    if sr:
        report["basedOn"] = [{"reference": f"ServiceRequest/{sr}"}]
    return report


def service_request(sid: str, pid: str) -> Resource:
    return {
        "resourceType": "ServiceRequest",
        "id": sid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "identifier": [
            {"type": {"coding": [{"code": "PLAC"}]}, "value": "ORD-778"},
            {"type": {"coding": [{"code": "FILL"}]}, "value": "LAB-998"},
        ],
        "status": "active",
        "intent": "order",
        "priority": "stat",
        "code": {"coding": [{"system": "http://loinc.org", "code": "58410-2"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "authoredOn": "2024-03-01T07:30:00Z",
        "requester": {"reference": "Practitioner/dr-1"},
    }


def imaging_study(iid: str, pid: str) -> Resource:
    return {
        "resourceType": "ImagingStudy",
        "id": iid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:1.3.6.1.4.1.5962.1.2.1"}],
        "status": "available",
        "subject": {"reference": f"Patient/{pid}"},
        "started": "2004-01-19T07:04:57Z",
        "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}],
        "numberOfSeries": 2,
        "numberOfInstances": 3,
        "series": [
            {
                "uid": "1.3.6.1.4.1.5962.1.3.1",
                "number": 1,
                "modality": {"code": "CT"},
                "numberOfInstances": 2,
                "bodySite": {"code": "67734004"},
            },
            {
                "uid": "1.3.6.1.4.1.5962.1.3.2",
                "number": 2,
                "modality": {"code": "CT"},
                "numberOfInstances": 1,
            },
        ],
    }


def immunization(iid: str, pid: str) -> Resource:
    return {
        "resourceType": "Immunization",
        "id": iid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "status": "completed",
        "vaccineCode": {
            "coding": [
                {
                    "system": "http://hl7.org/fhir/sid/cvx",
                    "code": "08",
                    "display": "Hep B, adolescent or pediatric",
                }
            ]
        },
        "patient": {"reference": f"Patient/{pid}"},
        "occurrenceDateTime": "2024-02-01T10:00:00Z",
        "lotNumber": "L-1234",
        "manufacturer": {"display": "Merck"},
        "route": {"coding": [{"code": "IM"}]},
        "site": {"coding": [{"code": "LA"}]},
        "doseQuantity": {"value": 0.5, "unit": "mL", "code": "mL"},
    }


def allergy(aid: str, pid: str) -> Resource:
    return {
        "resourceType": "AllergyIntolerance",
        "id": aid,
        "meta": {"versionId": "1", "lastUpdated": "2024-03-01T10:00:00.000Z"},
        "clinicalStatus": {"coding": [{"code": "active"}]},
        "type": "allergy",
        "category": ["medication"],
        "criticality": "high",
        "code": {"coding": [{"code": "7980", "display": "Penicillin"}]},
        "patient": {"reference": f"Patient/{pid}"},
        "onsetDateTime": "2010",
        "reaction": [
            {"manifestation": [{"coding": [{"display": "Hives"}]}], "severity": "moderate"}
        ],
    }


def corpus_like(prefix: str) -> list[Resource]:
    """One of each resource type the lake ships a view for, linked to one patient."""
    pid = f"{prefix}-pat"
    obs = [f"{prefix}-obs-1", f"{prefix}-obs-2"]
    return [
        patient(pid),
        encounter(f"{prefix}-enc", pid),
        observation(obs[0], pid),
        observation(obs[1], pid, value=13.5, code="718-7"),
        blood_pressure(f"{prefix}-bp", pid),
        condition(f"{prefix}-cond", pid),
        service_request(f"{prefix}-sr", pid),
        diagnostic_report(f"{prefix}-dr", pid, obs, sr=f"{prefix}-sr"),
        imaging_study(f"{prefix}-img", pid),
        immunization(f"{prefix}-imm", pid),
        allergy(f"{prefix}-alg", pid),
    ]
