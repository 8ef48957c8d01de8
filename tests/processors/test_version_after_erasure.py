"""The versioning stage after `carelog erase`: a resource whose last change was sealed with a
shredded key is as deleted, with no content. The version goes on; the same content sent again
is a new change (the store no longer has it), a create-only source creates it again, and a
merging resource does not merge into what was erased."""

from __future__ import annotations

import pytest

import processors.pipeline as pipeline_module
from processors.pipeline import Record, translate_record, version_record
from processors.versioning import VersionState
from schemas.codec import AvroCodec
from schemas.events import Format, ResourceChanged
from streams.event_codec import encode_event
from streams.privacy.envelope import keystore
from streams.topics import inbound_topic
from tests.processors.pipeline_driver import Pipeline
from tests.processors.test_version_policy import ADT_A28, ORU, body, dicom, hl7, of_type


def _erase(pid: str) -> None:
    store = keystore()
    assert store is not None
    assert store.shred(store.key_ids(f"patient:{pid}"))


def _patient(changes: list[ResourceChanged]) -> ResourceChanged:
    [patient] = of_type(changes, "Patient")
    return patient


def test_the_same_message_after_an_erasure_records_the_patient_again() -> None:
    pipeline = Pipeline()
    first = _patient(pipeline.run(hl7(ADT_A28))[0])
    again, _ = pipeline.run(hl7(ADT_A28))  # the same content: nothing to record
    assert of_type(again, "Patient") == []

    _erase(first.resource_id)
    after, rejected = pipeline.run(hl7(ADT_A28))
    assert not rejected
    recorded = _patient(after)
    assert recorded.resource_id == first.resource_id and recorded.version == 2
    assert body(recorded)["name"] == body(first)["name"]
    # and it is sealed with a new key of the patient's (the one it had is gone)
    state = pipeline.states[recorded.key.encode()]
    assert isinstance(state, VersionState) and state.key_id is not None
    assert state.key_id.startswith(f"patient:{first.resource_id}/")
    store = keystore()
    assert store is not None and store.cipher(state.key_id) is not None


def test_a_create_only_source_creates_an_erased_patient_again() -> None:
    """An ORU never replaces the ADT feed's patient, but after an erasure there is none."""
    pipeline = Pipeline()
    first = _patient(pipeline.run(hl7(ORU))[0])
    assert of_type(pipeline.run(hl7(ORU))[0], "Patient") == []
    _erase(first.resource_id)
    recreated = _patient(pipeline.run(hl7(ORU))[0])
    assert recreated.version == 2 and recreated.resource_id == first.resource_id


def test_a_study_after_an_erasure_does_not_merge_into_the_erased_one() -> None:
    pipeline = Pipeline()
    changes, _ = pipeline.run(dicom(SOPInstanceUID="1.2.8.1"))
    patient = _patient(changes)
    _erase(patient.resource_id)
    [study] = of_type(pipeline.run(dicom(SOPInstanceUID="1.2.8.2"))[0], "ImagingStudy")
    assert study.version == 2
    assert [i["uid"] for s in body(study)["series"] for i in s["instance"]] == ["1.2.8.2"]


def _key_of(value: bytes) -> str:
    key_id = AvroCodec().decode(value, plain=True)[1]["key_id"]
    assert isinstance(key_id, str)
    return key_id


def test_an_erasure_while_a_message_is_translated_leaves_nothing_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The erasure shreds the message's key and the patient's while the worker translates:
    computed again, the message is erased; else its resources would be sealed with a new key
    of the patient's, which the erasure never shredded."""
    pipeline = Pipeline()
    patient = _patient(pipeline.run(hl7(ADT_A28))[0])
    inbound = Record(inbound_topic(Format.hl7v2), 0, 99, b"k", encode_event(hl7(ADT_A28)))
    translate = pipeline_module.translate_event
    erased: list[str] = []

    def erasure_comes(*args: object) -> object:
        if not erased:
            store = keystore()
            assert store is not None
            keys = [_key_of(inbound.value), *store.key_ids(f"patient:{patient.resource_id}")]
            erased.extend(store.shred(keys))
        return translate(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline_module, "translate_event", erasure_comes)
    assert translate_record(inbound) == []
    assert len(erased) == 2


def test_an_erasure_while_a_resource_is_versioned_leaves_nothing_of_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline = Pipeline()
    inbound = Record(inbound_topic(Format.hl7v2), 0, 7, b"k", encode_event(hl7(ADT_A28)))
    [patient_out] = [o for o in translate_record(inbound) if b"Patient/" in o.key]  # type: ignore[operator]
    record = Record(patient_out.topic, 0, 3, patient_out.key, patient_out.value)
    versioning = pipeline_module.next_change
    erased: list[str] = []

    def erasure_comes(*args: object) -> object:
        if not erased:
            erased.extend(keystore().shred([_key_of(record.value)]))  # type: ignore[union-attr]
        return versioning(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline_module, "next_change", erasure_comes)
    assert version_record(record, None) == ([], None)
    assert erased and pipeline.states == {}
