"""DICOM outputs are partial views: an image header never overwrites the ADT feed's Patient,
and the instances of a study, each in its own event, add up to one ImagingStudy."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from processors.ids import resource_id
from schemas.events import Channel, Format, InboundMessage, Operation, ResourceChanged
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
    from datetime import UTC, datetime

    from processors.versioning import next_change
    from schemas.events import ResourceTranslated

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
