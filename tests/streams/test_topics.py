from __future__ import annotations

import pytest

from schemas.events import Format
from streams.topics import (
    AUDIT,
    FHIR_CHANGES,
    FHIR_TRANSLATED,
    KEYS,
    MESSAGE_KEYS_SUFFIX,
    REJECTED,
    SCHEMAS,
    catalogue,
    inbound_topic,
    processing_topics,
)


def test_catalogue_holds_every_required_topic() -> None:
    names = {t.name for t in catalogue()}
    assert names >= {
        "carelog.inbound.hl7v2",
        "carelog.inbound.fhir",
        "carelog.inbound.dicom",
        "carelog.inbound.device",
        FHIR_CHANGES,
        AUDIT,
        REJECTED,
        SCHEMAS,
        KEYS,
    }


def test_the_log_is_kept_forever_and_schemas_are_compacted() -> None:
    for topic in catalogue():
        configs = topic.all_configs()
        if topic.name in (SCHEMAS, KEYS, KEYS + MESSAGE_KEYS_SUFFIX):
            assert configs["cleanup.policy"] == "compact"
            assert "retention.ms" not in configs
        elif topic.name == FHIR_TRANSLATED:  # internal, rebuilt from the inbound topics
            assert int(configs["retention.ms"]) > 0
        else:
            assert configs["retention.ms"] == "-1"
            assert configs["cleanup.policy"] == "delete"


def test_production_overrides_raise_durability() -> None:
    for topic in catalogue("production"):
        assert topic.replication == 3
        assert topic.all_configs()["min.insync.replicas"] == "2"
    local = {t.name: t for t in catalogue("local")}
    assert local[FHIR_CHANGES].replication == 1


def test_unknown_environment_names_the_setting() -> None:
    with pytest.raises(ValueError, match="CARELOG_ENVIRONMENT"):
        catalogue("staging")


def test_inbound_topic_per_format() -> None:
    assert inbound_topic(Format.dicom) == "carelog.inbound.dicom"
    with pytest.raises(ValueError):
        inbound_topic("pdf")


def test_processing_topics_have_as_many_partitions_as_one_machine_runs_workers() -> None:
    processing = set(processing_topics())
    assert processing == {*(inbound_topic(f) for f in Format), FHIR_TRANSLATED, FHIR_CHANGES}
    for environment, expected in (("local", 2), ("test", 2), ("production", 12)):
        counts = {t.name: t.partitions for t in catalogue(environment)}
        assert {counts[name] for name in processing} == {expected}, environment
    # CARELOG_KAFKA_PARTITIONS sets the processing topics only; the others keep theirs.
    local = {t.name: t.partitions for t in catalogue("local")}
    chosen = {t.name: t.partitions for t in catalogue("local", 5)}
    assert {chosen[name] for name in processing} == {5}
    assert {n: p for n, p in chosen.items() if n not in processing} == {
        n: p for n, p in local.items() if n not in processing
    }
    assert catalogue("production", 24)[0].partitions == 24


def test_a_topic_without_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        catalogue("local", 0)
