"""DICOM headers to Patient and ImagingStudy (processors/dicom_header.py), and the merge of
single-instance ImagingStudy resources (processors/imaging_study_merge.py).

Input: the small test files shipped inside pydicom (tests/corpus/README.md, dicom/)."""

from __future__ import annotations

import contextlib
import copy
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from processors.dicom_header import MAPPING_VERSION, translate_dicom
from processors.ids import resource_id
from processors.imaging_study_merge import merge_imaging_study
from processors.translation import TranslatedResource, TranslationError
from tests.processors.r4b import assert_valid_r4b

EVENT = "9a0e8d7c-0000-4000-8000-0000000dc001"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
CT_SERIES = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
CT_SOP = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"


def pydicom_file(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None
    with open(path, "rb") as f:
        return f.read()


def changed(name: str, **elements: Any) -> bytes:
    """The test file with elements set (None deletes one), written back as Part 10."""
    ds = dcmread(BytesIO(pydicom_file(name)))
    for keyword, value in elements.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


def locations(exc: pytest.ExceptionInfo[TranslationError]) -> set[str | None]:
    return {issue.location for issue in exc.value.issues}


def test_ct_small_by_hand() -> None:
    translation = translate_dicom(pydicom_file("CT_small.dcm"), EVENT)
    patient_id = resource_id("Patient", "", "1CT1")  # the file has no IssuerOfPatientID
    assert translation.mapping_version == MAPPING_VERSION
    assert translation.business_time == datetime(2004, 1, 19, 12, 27, 30, tzinfo=UTC)
    assert translation.resources == [
        TranslatedResource(
            {
                "resourceType": "Patient",
                "id": patient_id,
                "identifier": [{"value": "1CT1"}],
                "name": [{"family": "CompressedSamples", "given": ["CT1"]}],
                "gender": "other",
            }
        ),
        TranslatedResource(
            {
                "resourceType": "ImagingStudy",
                "id": resource_id("ImagingStudy", CT_STUDY),
                "identifier": [
                    {"use": "official", "system": "urn:dicom:uid", "value": f"urn:oid:{CT_STUDY}"}
                ],
                "status": "available",
                "modality": [{"system": DCM, "code": "CT"}],
                "subject": {"reference": f"Patient/{patient_id}"},
                "started": "2004-01-19T07:27:30-05:00",
                "numberOfSeries": 1,
                "numberOfInstances": 1,
                "description": "e+1",
                "series": [
                    {
                        "uid": CT_SERIES,
                        "number": 1,
                        "modality": {"system": DCM, "code": "CT"},
                        "numberOfInstances": 1,
                        "instance": [
                            {
                                "uid": CT_SOP,
                                "sopClass": {
                                    "system": "urn:ietf:rfc:3986",
                                    "code": "urn:oid:1.2.840.10008.5.1.4.1.1.2",
                                },  # CT Image Storage
                                "number": 1,
                            }
                        ],
                    }
                ],
            }
        ),
    ]
    for item in translation.resources:
        assert_valid_r4b(item.resource)


def test_mr_small() -> None:
    patient, study = (
        r.resource for r in translate_dicom(pydicom_file("MR_small.dcm"), EVENT).resources
    )
    assert patient["gender"] == "female"
    assert patient["id"] == resource_id("Patient", "", "4MR1")
    assert study["modality"] == [{"system": DCM, "code": "MR"}]
    assert study["started"] == "2004-08-26T18:50:59-04:00"
    assert (
        study["series"][0]["instance"][0]["sopClass"]["code"] == "urn:oid:1.2.840.10008.5.1.4.1.1.4"
    )
    assert_valid_r4b(patient)
    assert_valid_r4b(study)


def test_issuer_and_full_person_name_and_birth_date() -> None:
    data = changed(
        "CT_small.dcm",
        IssuerOfPatientID="NWH",
        PatientName="Doe^Jane^Q^Dr^III",
        PatientBirthDate="19700412",
        PatientSex="F",
        AccessionNumber="ACC-77",
        BodyPartExamined="CHEST",
        SeriesDescription="Axial",
    )
    patient, study = (r.resource for r in translate_dicom(data, EVENT).resources)
    assert patient == {
        "resourceType": "Patient",
        # An issuer known only by name gets carelog's local system, as HL7 CX-4 does.
        "id": resource_id("Patient", "urn:carelog:sid:NWH", "1CT1"),
        "identifier": [
            {"system": "urn:carelog:sid:NWH", "value": "1CT1", "assigner": {"display": "NWH"}}
        ],
        "name": [{"family": "Doe", "given": ["Jane", "Q"], "prefix": ["Dr"], "suffix": ["III"]}],
        "gender": "female",
        "birthDate": "1970-04-12",
    }
    assert study["identifier"][1] == {
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]
        },
        "value": "ACC-77",
    }
    assert study["series"][0]["bodySite"] == {"display": "CHEST"}
    assert study["series"][0]["description"] == "Axial"
    assert study["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert_valid_r4b(patient)
    assert_valid_r4b(study)


def test_issuer_oid_from_the_qualifiers_sequence() -> None:
    qualifier = Dataset()
    qualifier.UniversalEntityID = "2.16.840.1.113883.3.9001.1"
    qualifier.UniversalEntityIDType = "ISO"
    data = changed("CT_small.dcm", IssuerOfPatientIDQualifiersSequence=[qualifier])
    patient = translate_dicom(data, EVENT).resources[0].resource
    system = "urn:oid:2.16.840.1.113883.3.9001.1"
    assert patient["identifier"] == [{"system": system, "value": "1CT1"}]
    assert patient["id"] == resource_id("Patient", system, "1CT1")


def test_without_a_time_zone_started_is_the_date_alone() -> None:
    translation = translate_dicom(changed("CT_small.dcm", TimezoneOffsetFromUTC=None), EVENT)
    assert translation.resources[1].resource["started"] == "2004-01-19"
    assert translation.business_time is None  # a local time is not an instant


def test_fractional_and_short_study_times() -> None:
    study = translate_dicom(changed("CT_small.dcm", StudyTime="072730.25"), EVENT).resources[1]
    assert study.resource["started"] == "2004-01-19T07:27:30.250000-05:00"
    short = translate_dicom(changed("CT_small.dcm", StudyTime="0727"), EVENT).resources[1]
    assert short.resource["started"] == "2004-01-19T07:27:00-05:00"
    assert_valid_r4b(study.resource)


@pytest.mark.parametrize(
    ("elements", "expected"),
    [
        ({"PatientID": None}, {"PatientID (0010,0020)"}),
        ({"StudyInstanceUID": None}, {"StudyInstanceUID (0020,000D)"}),
        ({"SOPInstanceUID": "1.2.abc"}, {"SOPInstanceUID (0008,0018)"}),
        ({"Modality": None}, {"Modality (0008,0060)"}),
        ({"PatientSex": "X"}, {"PatientSex (0010,0040)"}),
        ({"PatientBirthDate": "19701312"}, {"PatientBirthDate (0010,0030)"}),
        ({"StudyDate": "2004-01-19"}, {"StudyDate (0008,0020)"}),
        ({"StudyTime": "7h27"}, {"StudyTime (0008,0030)"}),
        (
            {"SeriesNumber": None, "StudyInstanceUID": None, "PatientID": None},
            {"StudyInstanceUID (0020,000D)", "PatientID (0010,0020)"},
        ),
    ],
)
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns when the test writes them
def test_invalid_headers_name_the_element(elements: dict[str, Any], expected: set[str]) -> None:
    with pytest.raises(TranslationError) as exc:
        translate_dicom(changed("CT_small.dcm", **elements), EVENT)
    assert locations(exc) == expected


def test_not_dicom() -> None:
    with pytest.raises(TranslationError) as exc:
        translate_dicom(b"MSH|^~\\&|not an image", EVENT)
    assert locations(exc) == {"DICOM"} and exc.value.issues[0].code == "structure"


def test_same_input_twice_gives_identical_output_whatever_the_event() -> None:
    data = pydicom_file("CT_small.dcm")
    assert translate_dicom(data, EVENT) == translate_dicom(data, "another-event")


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about each bad value
@settings(max_examples=60, deadline=None)
@given(st.integers(132, 2000), st.binary(min_size=1, max_size=16))
def test_corrupted_files_raise_nothing_but_translation_error(at: int, junk: bytes) -> None:
    data = bytearray(pydicom_file("CT_small.dcm")[:4000])
    data[at : at + len(junk)] = junk
    with contextlib.suppress(TranslationError):
        translate_dicom(bytes(data), EVENT)


# --- merge_imaging_study ------------------------------------------------------------------


def instance_study(
    series: str, sop: str, series_number: int, instance_number: int
) -> dict[str, Any]:
    data = changed(
        "CT_small.dcm",
        SeriesInstanceUID=series,
        SOPInstanceUID=sop,
        SeriesNumber=str(series_number),
        InstanceNumber=str(instance_number),
    )
    return translate_dicom(data, EVENT).resources[1].resource


def test_merge_unions_series_and_instances_by_uid() -> None:
    first = instance_study("1.2.3.1", "1.2.3.1.1", 1, 1)
    second = instance_study("1.2.3.1", "1.2.3.1.2", 1, 2)
    other = instance_study("1.2.3.2", "1.2.3.2.1", 2, 1)
    merged = merge_imaging_study(merge_imaging_study(second, other), first)

    assert merged["numberOfSeries"] == 2
    assert merged["numberOfInstances"] == 3
    assert [s["uid"] for s in merged["series"]] == ["1.2.3.1", "1.2.3.2"]
    assert [i["uid"] for i in merged["series"][0]["instance"]] == ["1.2.3.1.1", "1.2.3.1.2"]
    assert [s["numberOfInstances"] for s in merged["series"]] == [2, 1]
    assert merged["identifier"] == first["identifier"]
    assert merged["modality"] == [{"system": DCM, "code": "CT"}]
    assert_valid_r4b(merged)


def test_merge_is_idempotent_and_leaves_its_arguments_alone() -> None:
    a = instance_study("1.2.3.1", "1.2.3.1.1", 1, 1)
    b = instance_study("1.2.3.2", "1.2.3.2.1", 2, 1)
    a_before, b_before = copy.deepcopy(a), copy.deepcopy(b)
    assert merge_imaging_study(a, a) == a
    ab = merge_imaging_study(a, b)
    assert merge_imaging_study(ab, b) == ab
    assert merge_imaging_study(ab, a) == ab
    assert (a, b) == (a_before, b_before)


def test_merge_new_values_win_and_identifiers_add_up() -> None:
    a = instance_study("1.2.3.1", "1.2.3.1.1", 1, 1)
    b = copy.deepcopy(a)
    b["description"] = "corrected description"
    b["identifier"].append({"value": "ACC-1"})
    b["modality"] = [{"system": DCM, "code": "SR"}]
    merged = merge_imaging_study(a, b)
    assert merged["description"] == "corrected description"
    assert merged["identifier"] == [*a["identifier"], {"value": "ACC-1"}]
    assert merged["modality"] == [{"system": DCM, "code": "CT"}, {"system": DCM, "code": "SR"}]


def test_merge_refuses_different_studies() -> None:
    a = instance_study("1.2.3.1", "1.2.3.1.1", 1, 1)
    other_study = translate_dicom(pydicom_file("MR_small.dcm"), EVENT).resources[1].resource
    with pytest.raises(ValueError, match="different studies"):
        merge_imaging_study(a, other_study)
    with pytest.raises(ValueError):
        merge_imaging_study(a, {"resourceType": "Patient", "id": a["id"]})


def skeleton(pairs: list[tuple[int, int]]) -> dict[str, Any]:
    """A single-study ImagingStudy holding series s / instance i for each (s, i)."""
    seed: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": "s",
        "status": "available",
        "subject": {"reference": "Patient/p"},
    }
    study = merge_imaging_study(seed, seed)
    for s, i in pairs:
        study = merge_imaging_study(
            study,
            {
                "resourceType": "ImagingStudy",
                "id": "s",
                "status": "available",
                "subject": {"reference": "Patient/p"},
                "series": [
                    {
                        "uid": f"1.{s}",
                        "number": s,
                        "modality": {"system": DCM, "code": "CT"},
                        "instance": [
                            {
                                "uid": f"1.{s}.{i}",
                                "number": i,
                                "sopClass": {"system": "urn:ietf:rfc:3986", "code": "urn:oid:1.2"},
                            }
                        ],
                    }
                ],
            },
        )
    return study


PAIRS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), max_size=12)


@settings(max_examples=100, deadline=None)
@given(PAIRS, st.randoms(use_true_random=False))
def test_merge_result_does_not_depend_on_arrival_order(
    pairs: list[tuple[int, int]], rnd: Any
) -> None:
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    merged = skeleton(pairs)
    assert merged == skeleton(shuffled)
    assert merged["numberOfInstances"] == len(set(pairs))
    assert merged["numberOfSeries"] == len({s for s, _ in pairs})
    assert_valid_r4b(merged)
