"""DICOM outputs are partial views: an image header never overwrites the ADT feed's Patient,
and the instances of a study, each in its own event, add up to one ImagingStudy. HL7 v2
messages other than ADT only create the Patient and Encounter the ADT feed owns."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from processors.canonical import canonical_json
from processors.hl7v2.context import mapping_version_of
from processors.ids import resource_id
from processors.versioning import next_change
from schemas.events import (
    Channel,
    Format,
    InboundMessage,
    Operation,
    ResourceChanged,
    ResourceTranslated,
)
from tests.conftest import CORPUS
from tests.processors.pipeline_driver import Pipeline
from tests.processors.test_dicom_header import CT_STUDY, changed

ADT_A28 = (CORPUS / "hl7v2_extra" / "adt_a28_add_person_v2.5.1.hl7").read_bytes()  # MRN7001, NWH


def dicom(**elements: Any) -> InboundMessage:
    return InboundMessage.received(
        changed("CT_small.dcm", **elements), channel=Channel.http, format=Format.dicom,
        content_type="application/dicom", sender="pacs",
    )  # fmt: skip


def hl7(message: bytes) -> InboundMessage:
    return InboundMessage.received(
        message, channel=Channel.mllp, format=Format.hl7v2,
        content_type="x-application/hl7-v2+er7", sender="adt",
    )  # fmt: skip


def of_type(changes: list[ResourceChanged], rtype: str) -> list[ResourceChanged]:
    return [c for c in changes if c.resource_type == rtype]


def body(change: ResourceChanged) -> dict[str, Any]:
    resource: dict[str, Any] = orjson.loads(change.resource or "")
    return resource


SAME_PATIENT = {"PatientID": "MRN7001", "IssuerOfPatientID": "NWH", "PatientName": "X^Y"}


def test_an_image_header_creates_a_patient_but_never_overwrites_one() -> None:
    pipeline = Pipeline()
    adt, rejected = pipeline.run(hl7(ADT_A28))
    assert not rejected
    [patient] = of_type(adt, "Patient")
    imaging, rejected = pipeline.run(dicom(**SAME_PATIENT))
    assert not rejected
    assert of_type(imaging, "ImagingStudy")  # the study is recorded
    assert of_type(imaging, "Patient") == []  # the ADT feed's patient is left as it was
    assert body(of_type(imaging, "ImagingStudy")[0])["subject"]["reference"] == patient.key

    alone, _ = Pipeline().run(dicom(**SAME_PATIENT))  # no ADT yet: the header creates it
    [created] = of_type(alone, "Patient")
    assert created.key == patient.key and body(created)["name"][0]["family"] == "X"


def test_the_instances_of_a_study_add_up_whatever_their_order() -> None:
    instances = [
        {"SeriesInstanceUID": f"1.2.3.{s}", "SOPInstanceUID": f"1.2.3.{s}.{i}",
         "SeriesNumber": str(s), "InstanceNumber": str(i)}
        for s, i in [(1, 1), (1, 2), (2, 1)]
    ]  # fmt: skip
    finals = []
    for order in itertools.permutations(instances):
        pipeline = Pipeline()
        studies = [
            of_type(pipeline.run(dicom(**elements))[0], "ImagingStudy") for elements in order
        ]
        assert [[c.version for c in s] for s in studies] == [[1], [2], [3]]
        final = body(studies[-1][0])
        assert (final["numberOfSeries"], final["numberOfInstances"]) == (2, 3)
        assert sorted(i["uid"] for s in final["series"] for i in s["instance"]) == sorted(
            e["SOPInstanceUID"] for e in instances
        )
        again, _ = pipeline.run(dicom(**order[0]))  # an instance sent twice changes nothing
        assert of_type(again, "ImagingStudy") == []
        finals.append({k: v for k, v in final.items() if k != "meta"})
    assert all(f == finals[0] for f in finals)
    assert finals[0]["id"] == resource_id("ImagingStudy", CT_STUDY)


def test_a_deleted_study_starts_again_from_the_next_instance() -> None:
    pipeline = Pipeline()
    [first] = of_type(pipeline.run(dicom(SOPInstanceUID="1.2.9.1"))[0], "ImagingStudy")
    key = first.key.encode()
    gone = ResourceTranslated(
        event_id="t", resource_type="ImagingStudy", resource_id=first.resource_id,
        operation=Operation.delete, resource=None, if_match=None, inbound_event_id="d",
        inbound_topic="carelog.inbound.fhir", inbound_partition=0, inbound_offset=1,
        received_at=datetime.now(UTC), mapping_version="fhir-input/1.0.0",
    )  # fmt: skip
    deleted, pipeline.states[key] = next_change(gone, pipeline.states[key])
    assert deleted is not None and deleted.operation is Operation.delete
    [after] = of_type(pipeline.run(dicom(SOPInstanceUID="1.2.9.2"))[0], "ImagingStudy")
    assert after.version == 3
    assert [i["uid"] for s in body(after)["series"] for i in s["instance"]] == ["1.2.9.2"]


# --- HL7 v2: the ADT feed owns demographics and visits ------------------------------------

EXTRA = CORPUS / "hl7v2_extra"
ADT_A08 = (EXTRA / "adt_a08_update_nk1_al1_dg1_v2.5.1.hl7").read_bytes()  # MRN5520, rich PID
ORU = (CORPUS / "hl7v2" / "oru_r01_cbc_v2.5.1.hl7").read_bytes()  # MRN5520, name and MRN only
ORM = (CORPUS / "hl7v2" / "orm_o01_order_v2.4.hl7").read_bytes()  # MRN5520, thin PID + PV1
MDM = (EXTRA / "mdm_t02_document_v2.5.1_fixed.hl7").read_bytes()  # MRN5520, thin PID + PV1
ADT_A40 = (CORPUS / "hl7v2" / "adt_a40_merge_v2.5.1.hl7").read_bytes()  # MRN9911 -> MRN5520
SSN = {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-88-7777"}


def demographics(resource: dict[str, Any]) -> dict[str, Any]:
    keys = ("address", "telecom", "maritalStatus", "birthDate", "extension")
    return {k: resource.get(k) for k in keys} | {
        "ssn": [i for i in resource["identifier"] if i.get("system") == SSN["system"]]
    }


def test_a_result_order_or_document_never_erases_what_the_adt_feed_gave() -> None:
    pipeline = Pipeline()
    changes, rejected = pipeline.run(hl7(ADT_A08))
    assert not rejected
    [patient] = of_type(changes, "Patient")
    rich = body(patient)
    assert rich["address"] and rich["telecom"] and rich["maritalStatus"]
    assert [i["value"] for i in demographics(rich)["ssn"]] == [SSN["value"]]
    [encounter] = of_type(changes, "Encounter")

    for message in (ORU, ORM, MDM):
        changes, rejected = pipeline.run(hl7(message))
        assert not rejected
        assert of_type(changes, "Patient") == [] and of_type(changes, "Encounter") == []
        # the result, order or document itself is recorded, on the ADT feed's patient
        recorded = [c for c in changes if c.resource_type not in ("Practitioner", "Organization")]
        assert recorded and all(patient.key in (c.resource or "") for c in recorded)
    for key in (patient.key, encounter.key):
        state = pipeline.states[key.encode()]
        assert state is not None and state.version == 1


def test_the_adt_feed_still_updates_demographics_after_a_result() -> None:
    pipeline = Pipeline()
    [v1] = of_type(pipeline.run(hl7(ADT_A08))[0], "Patient")
    assert of_type(pipeline.run(hl7(ORU))[0], "Patient") == []
    moved = ADT_A08.replace(b"9 Pine Ct^Apt 2", b"12 Oak Ave^Unit 5").replace(
        b"NWH-ADT-1108", b"M2"
    )
    [v2] = of_type(pipeline.run(hl7(moved))[0], "Patient")
    assert (v1.version, v2.version) == (1, 2) and v2.key == v1.key
    assert body(v2)["address"][0]["line"] == ["12 Oak Ave", "Unit 5"]
    kept = {k: v for k, v in demographics(body(v2)).items() if k != "address"}
    assert kept == {k: v for k, v in demographics(body(v1)).items() if k != "address"}


def test_a_result_before_any_adt_creates_the_patient_and_adt_then_replaces_it() -> None:
    pipeline = Pipeline()
    [thin] = of_type(pipeline.run(hl7(ORU))[0], "Patient")
    assert thin.version == 1 and "address" not in body(thin)
    [rich] = of_type(pipeline.run(hl7(ADT_A08))[0], "Patient")
    assert rich.key == thin.key and rich.version == 2 and body(rich)["address"]


def test_a_result_for_a_merged_away_patient_does_not_bring_it_back() -> None:
    pipeline = Pipeline()
    merged = of_type(pipeline.run(hl7(ADT_A40))[0], "Patient")
    [old] = [c for c in merged if body(c)["active"] is False]
    late_result = ORU.replace(b"MRN5520", b"MRN9911")
    changes, rejected = pipeline.run(hl7(late_result))
    assert not rejected and of_type(changes, "Patient") == []
    assert body(of_type(changes, "DiagnosticReport")[0])["subject"]["reference"] == old.key


@pytest.mark.parametrize("message_type", ["ORU^R01", "ORM^O01", "SIU^S12", "VXU^V04"])
def test_an_encounter_from_a_message_other_than_adt_only_creates(message_type: str) -> None:
    source = mapping_version_of(*message_type.split("^"))
    adt_encounter = {"resourceType": "Encounter", "id": "e1", "status": "in-progress",
                     "period": {"start": "2026-11-05T10:15:00-05:00"},
                     "location": [{"location": {"reference": "Location/l1"}}]}  # fmt: skip
    thin = {"resourceType": "Encounter", "id": "e1", "status": "unknown"}
    _, state = next_change(encounter_event(adt_encounter, mapping_version_of("ADT", "A01")), None)
    change, after = next_change(encounter_event(thin, source), state)
    assert change is None and after is not None and after.version == 1
    created, _ = next_change(encounter_event(thin, source), None)
    assert created is not None and created.version == 1
    updated, _ = next_change(encounter_event(thin, mapping_version_of("ADT", "A08")), state)
    assert updated is not None and updated.version == 2


_inbound_offsets = itertools.count(1)


def encounter_event(resource: dict[str, Any], mapping_version: str) -> ResourceTranslated:
    return ResourceTranslated(
        event_id="t", resource_type="Encounter", resource_id=str(resource["id"]),
        operation=Operation.upsert, resource=canonical_json(resource), if_match=None,
        inbound_event_id="i", inbound_topic="carelog.inbound.hl7v2", inbound_partition=0,
        inbound_offset=next(_inbound_offsets), received_at=datetime.now(UTC),
        mapping_version=mapping_version,
    )  # fmt: skip


ORDERS = CORPUS / "hl7v2_orders"


def test_a_result_never_replaces_the_order_the_order_feed_gave() -> None:
    """The ServiceRequest an ORU writes from its ORC/OBR (for DiagnosticReport.basedOn) is the
    filler's echo of the order: it creates the request when no order was seen, and never
    replaces what the ORM/OML feed said (priority, requester, authoredOn)."""
    pipeline = Pipeline()
    order = (CORPUS / "hl7v2" / "orm_o01_order_v2.4.hl7").read_bytes()
    result = (CORPUS / "hl7v2" / "oru_r01_cbc_v2.5.1.hl7").read_bytes()  # same ORD-90001
    [request] = of_type(pipeline.run(hl7(order))[0], "ServiceRequest")
    changes, rejected = pipeline.run(hl7(result))
    assert not rejected and of_type(changes, "ServiceRequest") == []
    assert of_type(changes, "DiagnosticReport")
    state = pipeline.states[request.key.encode()]
    assert state is not None and state.version == 1
    assert body(request)["priority"] == "routine"
    created = of_type(Pipeline().run(hl7(result))[0], "ServiceRequest")
    assert [c.key for c in created] == [request.key]  # without the order, the result creates it


def test_a_dispense_never_replaces_the_medication_order() -> None:
    pipeline = Pipeline()
    order = (ORDERS / "rde_o25_refill_v2.5.1.hl7").read_bytes()
    dispense = (ORDERS / "rds_o13_dispense_v2.5.1.hl7").read_bytes()  # same RX-97201
    [request] = of_type(pipeline.run(hl7(order))[0], "MedicationRequest")
    changes, rejected = pipeline.run(hl7(dispense))
    assert not rejected and of_type(changes, "MedicationRequest") == []
    assert of_type(changes, "MedicationDispense")
    assert body(request)["status"] == "active"
