"""Device reading batches to Device and Observations (processors/device_readings.py)."""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.device_readings import MAPPING_VERSION, translate_device
from processors.ids import resource_id
from processors.translation import TranslatedResource, TranslationError
from processors.validation import validated
from schemas.plausibility import PLAUSIBLE
from tests.conftest import CORPUS
from tests.processors.json_values import json_values
from tests.processors.r4b import assert_valid_r4b

EVENT = "5f1d2c3b-0000-4000-8000-00000000d001"
BATCH_BYTES = (CORPUS / "device" / "bedside_monitor_batch.json").read_bytes()
BATCH: dict[str, Any] = orjson.loads(BATCH_BYTES)
DEVICE_ID = resource_id("Device", "MON-4WEST-412B")
# The assigner NWH names the authority as the ADT feed's PID-3 does (MRN7731^^^NWH^MR), so
# the readings land on the Patient the HL7 feed made (processors/ids.py, patient_id).
PATIENT_ID = resource_id("Patient", "urn:carelog:sid:NWH", "MRN7731")
SUBJECT = {
    "reference": f"Patient/{PATIENT_ID}",
    "identifier": {
        "system": "urn:oid:2.16.840.1.113883.3.9001.1",
        "value": "MRN7731",
        "assigner": {"display": "NWH"},
    },
}
VITAL_SIGNS = [
    {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
                "display": "Vital Signs",
            }
        ]
    }
]


def with_changes(**readings: dict[str, Any]) -> bytes:
    """The corpus batch with reading fields changed: with_changes(r2={"unit": "kg"})."""
    batch = copy.deepcopy(BATCH)
    for name, change in readings.items():
        batch["readings"][int(name[1:])].update(change)
    return orjson.dumps(batch)


def locations(exc: pytest.ExceptionInfo[TranslationError]) -> set[str | None]:
    return {issue.location for issue in exc.value.issues}


def by_code(resources: list[TranslatedResource]) -> dict[str, dict[str, Any]]:
    return {
        r.resource["code"]["coding"][0]["code"]: r.resource
        for r in resources
        if r.resource["resourceType"] == "Observation"
    }


def test_corpus_batch_gives_the_device_and_six_observations() -> None:
    translation = translate_device(BATCH_BYTES, EVENT)
    assert translation.mapping_version == MAPPING_VERSION
    assert translation.business_time == datetime(2026, 11, 3, 19, 1, tzinfo=UTC)
    assert translation.resources[0] == TranslatedResource(
        {
            "resourceType": "Device",
            "id": DEVICE_ID,
            "identifier": [{"value": "MON-4WEST-412B"}],
            "manufacturer": "Acme Medical",
            "serialNumber": "AM-77-10442",
            "type": {"text": "bedside-monitor"},
        }
    )
    observations = by_code(translation.resources)
    # seven readings, but the LOINC and the MDC SpO2 at 14:00 are one measurement
    assert sorted(observations) == ["59408-5", "8310-5", "8462-4", "8480-6", "8867-4", "9279-1"]
    for item in translation.resources:
        assert item.operation == "upsert" and item.if_match is None
        assert_valid_r4b(item.resource)


def test_heart_rate_observation_as_fhir_r4_vital_signs() -> None:
    heart_rate = by_code(translate_device(BATCH_BYTES, EVENT).resources)["8867-4"]
    assert heart_rate == {
        "resourceType": "Observation",
        "id": resource_id("Observation", "MON-4WEST-412B", "8867-4", "2026-11-03T19:00:00+00:00"),
        "status": "final",
        "category": VITAL_SIGNS,
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
            "text": "Heart rate",
        },
        "subject": SUBJECT,
        "effectiveDateTime": "2026-11-03T14:00:00-05:00",
        "valueQuantity": {
            "value": 88,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
        "device": {"reference": f"Device/{DEVICE_ID}"},
    }


def test_spo2_sent_as_loinc_and_mdc_is_one_observation_with_every_coding() -> None:
    spo2 = by_code(translate_device(BATCH_BYTES, EVENT).resources)["59408-5"]
    assert spo2["code"] == {
        "coding": [
            {
                "system": "http://loinc.org",
                "code": "59408-5",
                "display": "Oxygen saturation in Arterial blood by Pulse oximetry",
            },
            {
                "system": "http://loinc.org",
                "code": "2708-6",
                "display": "Oxygen saturation in Arterial blood",
            },
            {
                "system": "urn:iso:std:iso:11073:10101",
                "code": "150456",
                "display": "MDC_PULS_OXIM_SAT_O2",
            },
        ],
        "text": "Oxygen saturation by pulse oximetry",
    }
    assert spo2["valueQuantity"]["value"] == 94 and spo2["valueQuantity"]["code"] == "%"


def test_blood_pressure_stays_two_observations() -> None:
    observations = by_code(translate_device(BATCH_BYTES, EVENT).resources)
    assert observations["8480-6"]["valueQuantity"]["value"] == 132
    assert observations["8462-4"]["valueQuantity"]["value"] == 84
    assert observations["8480-6"]["valueQuantity"]["code"] == "mm[Hg]"


def test_temperature_keeps_its_decimal() -> None:
    temperature = by_code(translate_device(BATCH_BYTES, EVENT).resources)["8310-5"]
    assert temperature["valueQuantity"] == {
        "value": 38.2,
        "unit": "Cel",
        "system": "http://unitsofmeasure.org",
        "code": "Cel",
    }
    assert orjson.dumps(temperature["valueQuantity"]["value"]) == b"38.2"


def test_an_mdc_reading_alone_maps_to_loinc_and_keeps_the_mdc_coding() -> None:
    payload = with_changes(
        r0={
            "system": "urn:iso:std:iso:11073:10101",
            "code": "147842",
            "display": "MDC_ECG_HEART_RATE",
            "unit": "bpm",
        }
    )
    heart_rate = by_code(translate_device(payload, EVENT).resources)["8867-4"]
    assert heart_rate["code"]["coding"] == [
        {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
        {
            "system": "urn:iso:std:iso:11073:10101",
            "code": "147842",
            "display": "MDC_ECG_HEART_RATE",
        },
    ]
    # "bpm" is how the device wrote it; the UCUM code is /min
    assert heart_rate["valueQuantity"]["unit"] == "bpm"
    assert heart_rate["valueQuantity"]["code"] == "/min"
    # same id as the LOINC-coded reading: same device, measurement and time
    assert (
        heart_rate["id"] == by_code(translate_device(BATCH_BYTES, EVENT).resources)["8867-4"]["id"]
    )


def test_an_unmapped_mdc_code_keeps_its_own_coding() -> None:
    payload = with_changes(
        r0={
            "system": "urn:iso:std:iso:11073:10101",
            "code": "151708",
            "display": "MDC_CONC_AWAY_CO2_ET",
            "unit": "mm[Hg]",
        }
    )
    observations = by_code(translate_device(payload, EVENT).resources)
    assert observations["151708"]["code"]["coding"] == [
        {
            "system": "urn:iso:std:iso:11073:10101",
            "code": "151708",
            "display": "MDC_CONC_AWAY_CO2_ET",
        }
    ]
    assert_valid_r4b(observations["151708"])


def test_without_an_assigner_the_system_names_the_authority() -> None:
    batch = copy.deepcopy(BATCH)
    del batch["patient"]["assigner"]
    [_, first, *_] = translate_device(orjson.dumps(batch), EVENT).resources
    expected = resource_id("Patient", "urn:oid:2.16.840.1.113883.3.9001.1", "MRN7731")
    assert first.resource["subject"]["reference"] == f"Patient/{expected}"
    assert "assigner" not in first.resource["subject"]["identifier"]


def test_no_patient_resource_is_emitted() -> None:
    types = {r.resource["resourceType"] for r in translate_device(BATCH_BYTES, EVENT).resources}
    assert types == {"Device", "Observation"}


def test_ids_depend_on_the_instant_not_on_its_offset_nor_the_event() -> None:
    same_instant = with_changes(r0={"time": "2026-11-03T19:00:00Z"})
    a = by_code(translate_device(BATCH_BYTES, EVENT).resources)["8867-4"]
    b = by_code(translate_device(same_instant, "another-event").resources)["8867-4"]
    assert a["id"] == b["id"]
    assert b["effectiveDateTime"] == "2026-11-03T19:00:00+00:00"


def test_same_input_twice_gives_identical_output() -> None:
    assert translate_device(BATCH_BYTES, EVENT) == translate_device(BATCH_BYTES, EVENT)


def test_resources_share_no_mutable_parts() -> None:
    first, second = translate_device(BATCH_BYTES, EVENT).resources[1:3]
    first.resource["subject"]["identifier"]["value"] = "changed"
    first.resource["category"][0]["coding"][0]["code"] = "changed"
    assert second.resource["subject"]["identifier"]["value"] == "MRN7731"
    assert second.resource["category"] == VITAL_SIGNS


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"r2": {"unit": "kg"}}, "readings[2].unit"),
        ({"r4": {"unit": "degrees C"}}, "readings[4].unit"),
        ({"r1": {"value": "94"}}, "readings[1].value"),
        ({"r1": {"value": True}}, "readings[1].value"),
        ({"r0": {"time": "2026-11-03T14:00:00"}}, "readings[0].time"),  # no offset
        ({"r0": {"time": "yesterday"}}, "readings[0].time"),
        ({"r3": {"system": "http://snomed.info/sct"}}, "readings[3].system"),
        ({"r3": {"code": "not-a-loinc"}}, "readings[3].code"),
        ({"r6": {"code": "MDC_PULS_OXIM_SAT_O2"}}, "readings[6].code"),
        ({"r5": {"code": ""}}, "readings[5].code"),
        ({"r6": {"value": 95}}, "readings[6].value"),  # contradicts readings[1]
    ],
)
def test_invalid_readings_are_named_by_json_path(changes: dict[str, Any], location: str) -> None:
    with pytest.raises(TranslationError) as exc:
        translate_device(with_changes(**changes), EVENT)
    assert locations(exc) == {location}


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(TranslationError) as exc:
        translate_device(
            with_changes(r0={"unit": "kg"}, r2={"time": None}, r5={"value": None}), EVENT
        )
    assert locations(exc) == {"readings[0].unit", "readings[2].time", "readings[5].value"}


@pytest.mark.parametrize(
    ("batch", "expected"),
    [
        ({**BATCH, "readings": []}, {"readings"}),
        ({k: v for k, v in BATCH.items() if k != "device"}, {"device"}),
        ({**BATCH, "patient": {"system": "urn:oid:1.2"}}, {"patient.value"}),
        ({**BATCH, "device": {"id": "  "}}, {"device.id"}),
        ({**BATCH, "readings": [1]}, {"readings[0]"}),
        ([BATCH], {"$"}),
    ],
)
def test_invalid_batches(batch: Any, expected: set[str]) -> None:
    with pytest.raises(TranslationError) as exc:
        translate_device(orjson.dumps(batch), EVENT)
    assert locations(exc) == expected


def test_not_json() -> None:
    with pytest.raises(TranslationError) as exc:
        translate_device(b"{readings: [", EVENT)
    assert locations(exc) == {"$"} and exc.value.issues[0].code == "structure"


VALUES = st.integers(-(10**12), 10**12) | st.floats(
    allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12
)
TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
    ),
)


@settings(max_examples=200, deadline=None)
@given(VALUES, TIMES)
def test_any_valid_value_round_trips_into_value_quantity(value: float, time: datetime) -> None:
    batch = with_changes(r0={"value": value, "time": time.isoformat()})
    low, high = PLAUSIBLE["8867-4"].ranges["/min"]
    if not low <= value <= high:
        # The contract refuses an impossible heart rate, at the edge and here alike (the
        # translate stage's validator would refuse the Observation by the same table).
        with pytest.raises(TranslationError) as exc:
            translate_device(batch, EVENT)
        assert locations(exc) == {"readings[0].value"}
        return
    translation = translate_device(batch, EVENT)
    heart_rate = by_code(translation.resources)["8867-4"]
    assert heart_rate["valueQuantity"]["value"] == value
    assert type(heart_rate["valueQuantity"]["value"]) is type(value)
    assert datetime.fromisoformat(heart_rate["effectiveDateTime"]) == time
    assert_valid_r4b(heart_rate)
    assert validated(translation) == translation


JSON = json_values(key_size=10)
READING_KEYS = ["code", "system", "display", "value", "unit", "time"]


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_arbitrary_json_raises_nothing_but_translation_error(value: Any) -> None:
    with contextlib.suppress(TranslationError):
        translate_device(orjson.dumps(value), EVENT)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 6), st.sampled_from(READING_KEYS), JSON)
def test_any_field_replaced_by_any_json_gives_resources_or_translation_error(
    index: int, key: str, value: Any
) -> None:
    try:
        translation = validated(
            translate_device(with_changes(**{f"r{index}": {key: value}}), EVENT)
        )
    except TranslationError as exc:
        # the field's own path, or (a changed value now contradicting another) a reading's,
        # or, refused by the validator, the Observation's element
        assert all(
            i.location and i.location.startswith(("readings[", "Observation.")) for i in exc.issues
        )
    else:
        for item in translation.resources:
            assert_valid_r4b(item.resource)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_nothing_but_translation_error(payload: bytes) -> None:
    with contextlib.suppress(TranslationError):
        translate_device(payload, EVENT)


# --- the patient reference lands on the Patient the HL7 v2 feed made ----------------------


def hl7_patients(message: bytes) -> dict[str, dict[str, Any]]:
    from processors.hl7v2.mapping import map_hl7v2

    resources = map_hl7v2(message).resources
    return {f"Patient/{r['id']}": r for r in resources if r["resourceType"] == "Patient"}


def subjects(batch: bytes) -> set[str]:
    return {
        r.resource["subject"]["reference"]
        for r in translate_device(batch, EVENT).resources
        if r.resource["resourceType"] == "Observation"
    }


def test_corpus_readings_point_at_the_patient_the_corpus_hl7_feed_made() -> None:
    # MRN7731^^^NWH^MR: the corpus's HL7 messages for the patient the corpus batch names.
    message = (CORPUS / "hl7v2_extra" / "siu_s12_appointment_v2.5.1_fixed.hl7").read_bytes()
    patients = hl7_patients(message)
    assert subjects(BATCH_BYTES) == {f"Patient/{PATIENT_ID}"} and set(patients) == {
        f"Patient/{PATIENT_ID}"
    }


ADT_FILES = sorted(
    p for p in CORPUS.glob("hl7v2*/adt_*.hl7") if "_a40_" not in p.name
)  # an A40 names two patients


@pytest.mark.parametrize("path", ADT_FILES, ids=lambda p: p.name)
def test_readings_for_a_corpus_adt_patient_point_at_its_patient(path: Path) -> None:
    """The corpus batch, sent for the patient of each corpus ADT (its MRN and authority)."""
    message = path.read_bytes()
    pid = next(s for s in message.split(b"\r") if s.startswith(b"PID|")).decode("latin-1")
    mrn, _, _, authority = pid.split("|")[3].split("~")[0].split("^")[:4]
    batch = copy.deepcopy(BATCH)
    batch["patient"].update(value=mrn, assigner=authority)
    [subject] = subjects(orjson.dumps(batch))
    assert subject in hl7_patients(message)


OID = "2.16.840.1.113883.3.9001.1"
# (PID-3 as the ADT feed sends it, the device batch's patient for the same identifier)
SAME_PATIENT = [
    ("MRN1^^^NWH^MR", {"system": f"urn:oid:{OID}", "assigner": "NWH"}),
    ("MRN1^^^NWH^MR", {"system": "urn:carelog:sid:NWH", "assigner": "NWH"}),
    ("MRN1^^^NWH^MR", {"system": "urn:carelog:sid:NWH"}),
    ("MRN1^^^North Wind/East^MR", {"system": "urn:x", "assigner": "North Wind/East"}),
    (f"MRN1^^^&{OID}&ISO^MR", {"system": f"urn:oid:{OID}"}),
    ("MRN1^^^&https://mrn.example.org&URI^MR", {"system": "https://mrn.example.org"}),
    ("123-45-6789^^^SSA^SS", {"system": "http://hl7.org/fhir/sid/us-ssn", "assigner": "SSA"}),
    ("123-45-6789^^^SSA^SS", {"system": "http://hl7.org/fhir/sid/us-ssn"}),
]


def adt_with(pid3: str) -> bytes:
    return (
        "MSH|^~\\&|MPI|NORTHWIND_HOSP|CARELOG|CARELOG|20261020090000-0500||ADT^A28^ADT_A05|C1|P|2.5.1\r"
        f"PID|1||{pid3}||O'Brien^Siobhan||20010915|F\r"
    ).encode()  # fmt: skip


def batch_for(patient: dict[str, str]) -> bytes:
    batch = copy.deepcopy(BATCH)
    batch["patient"] = patient
    return orjson.dumps(batch)


@pytest.mark.parametrize(("pid3", "patient"), SAME_PATIENT)
def test_each_form_of_an_identifier_lands_on_the_hl7_patient(
    pid3: str, patient: dict[str, str]
) -> None:
    value = pid3.split("^")[0]
    [hl7_patient] = hl7_patients(adt_with(pid3))
    assert subjects(batch_for({**patient, "value": value})) == {hl7_patient}


_AUTHORITY = st.text(
    st.characters(codec="ascii", categories=("L", "N", "P", "Zs"), exclude_characters="|^~\\&"),
    min_size=1,
    max_size=20,
).filter(lambda a: a.strip() == a)


@given(authority=_AUTHORITY, mrn=st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True))
@settings(max_examples=60, deadline=None)
def test_any_named_authority_gives_the_hl7_patient(authority: str, mrn: str) -> None:
    [hl7_patient] = hl7_patients(adt_with(f"{mrn}^^^{authority}^MR"))
    device = {"system": f"urn:oid:{OID}", "value": mrn, "assigner": authority}
    assert subjects(batch_for(device)) == {hl7_patient}
