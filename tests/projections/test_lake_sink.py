"""The Delta Lake sink against the real broker: changes on carelog.fhir.changes -> tables.

Each test has its own lake folder, consumer group and resource ids; the topic is shared
with other tests, so every check looks only at this test's ids.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, QueryBuilder
from pydantic import SecretStr

from projections.lake.changes import Batch
from projections.lake.deidentify import Deidentifier
from projections.lake.offsets import app_id
from projections.lake.sink import LakeSink
from projections.lake.tables import Lake
from projections.lake.views import SHIPPED_VIEWS
from streams.producer import EventProducer
from streams.settings import Settings
from streams.topics import FHIR_CHANGES
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import append, change, read, rows_of

pytestmark = pytest.mark.kafka

SECRET = "a-research-secret-of-32-bytes!!!"


@pytest.fixture
def lake_settings(kafka_settings: Settings, tmp_path: Path) -> Settings:
    return kafka_settings.amended(
        lake={
            "uri": str(tmp_path / "lake"),
            "group_id": f"test-lake-{uuid.uuid4()}",
            "batch_max_seconds": 0.3,
        }
    )


@pytest.fixture
def producer(kafka_settings: Settings):  # type: ignore[no-untyped-def]
    with EventProducer(kafka_settings) as p:
        yield p


def sink_once(settings: Settings) -> LakeSink:
    """Run a sink until it has written the topic as it was when it started."""
    sink = LakeSink(settings)
    sink.run(caught_up=True)
    return sink


def table(settings: Settings, name: str):  # type: ignore[no-untyped-def]
    return read(f"{settings.lake.uri}/{name}")


def test_corpus_end_to_end(lake_settings: Settings, producer: EventProducer) -> None:
    prefix = uuid.uuid4().hex[:12]
    resources = fx.corpus_like(prefix)
    delivered = append(producer, [change(r) for r in resources])
    sink_once(lake_settings)

    bronze = rows_of(
        table(lake_settings, "bronze/resource_changes"), "resource_id", {r["id"] for r in resources}
    )
    assert len(bronze) == len(resources)
    assert {(r["kafka_partition"], r["kafka_offset"]) for r in bronze} == {
        (d.partition, d.offset) for d in delivered
    }
    assert all(r["kafka_topic"] == FHIR_CHANGES and r["operation"] == "upsert" for r in bronze)
    assert {r["resource_type"] for r in bronze} == {r["resourceType"] for r in resources}
    assert all(r["month"] == r["last_updated"].strftime("%Y-%m") for r in bronze)
    first = bronze[0]
    assert json.loads(first["resource"])["id"] == first["resource_id"]
    assert (
        first["inbound_topic"] == "carelog.inbound.hl7v2" and first["mapping_version"] == "tests/1"
    )
    assert DeltaTable(
        f"{lake_settings.lake.uri}/bronze/resource_changes"
    ).metadata().partition_columns == ["resource_type", "month"]

    pid = f"{prefix}-pat"
    [patient] = rows_of(table(lake_settings, "silver/patient"), "id", {pid})
    assert {
        k: patient[k]
        for k in (
            "gender",
            "birth_date",
            "family",
            "given",
            "mrn",
            "city",
            "race",
            "deceased",
            "_resource_id",
            "_version",
        )
    } == {
        "gender": "male",
        "birth_date": "1980-06-15",
        "family": "Everyman",
        "given": "Adam A.",
        "mrn": "MRN-1",
        "city": "Ann Arbor",
        "race": "2106-3",
        "deceased": False,
        "_resource_id": pid,
        "_version": 1,
    }
    idents = rows_of(table(lake_settings, "silver/patient_identifier"), "patient_id", {pid})
    assert sorted((i["type"], i["value"]) for i in idents) == [
        ("MR", "MRN-1"),
        ("SS", "123-45-6789"),
    ]

    obs = rows_of(table(lake_settings, "silver/observation"), "patient_id", {pid})
    assert [
        (o["id"], o["code"], o["value_quantity"], o["value_unit"], o["component_count"])
        for o in obs
    ] == [
        (f"{prefix}-bp", "85354-9", None, None, 2),
        (f"{prefix}-obs-1", "6690-2", 7.2, "10*3/uL", 0),
        (f"{prefix}-obs-2", "718-7", 13.5, "10*3/uL", 0),
    ]
    assert str(obs[1]["issued"]) == "2024-03-01 09:00:00+00:00"
    comps = rows_of(table(lake_settings, "silver/observation_component"), "patient_id", {pid})
    assert sorted((c["code"], c["value_quantity"]) for c in comps) == [
        ("8462-4", 80.0),
        ("8480-6", 120.0),
    ]

    expected_one_row = {
        "encounter": ("class", "IMP"),
        "condition": ("code", "J18.9"),
        "diagnosticreport": ("service_request_id", f"{prefix}-sr"),
        "servicerequest": ("placer_order_number", "ORD-778"),
        "imagingstudy": ("number_of_series", 2),
        "immunization": ("vaccine_code", "08"),
        "allergyintolerance": ("category", ["medication"]),
    }
    for name, (column, value) in expected_one_row.items():
        [row] = rows_of(table(lake_settings, f"silver/{name}"), "patient_id", {pid})
        assert row[column] == value, name
    [dr] = rows_of(table(lake_settings, "silver/diagnosticreport"), "patient_id", {pid})
    assert str(dr["issued"]) == "2024-03-01 08:00:00+00:00"  # +01:00 normalised to UTC
    results = rows_of(
        table(lake_settings, "silver/diagnosticreport_result"),
        "diagnostic_report_id",
        {f"{prefix}-dr"},
    )
    assert [r["observation_id"] for r in results] == [f"{prefix}-obs-1", f"{prefix}-obs-2"]
    series = rows_of(
        table(lake_settings, "silver/imagingstudy_series"), "imaging_study_id", {f"{prefix}-img"}
    )
    assert [(s["number"], s["number_of_instances"], s["body_site"]) for s in series] == [
        (1, 2, "67734004"),
        (2, 1, None),
    ]


def test_updates_and_deletes_merge(lake_settings: Settings, producer: EventProducer) -> None:
    prefix = uuid.uuid4().hex[:12]
    a, b, c = (fx.patient(f"{prefix}-{n}", family=n) for n in ("a", "b", "c"))
    append(producer, [change(a), change(b), change(c)])
    sink_once(lake_settings)

    a2 = {**a, "identifier": a["identifier"][:1], "gender": "female"}  # one identifier fewer
    b2 = {**b, "name": [{"family": "B2"}]}
    b3 = {**b, "name": [{"family": "B3"}]}  # two versions in one batch: the last wins
    append(
        producer,
        [
            change(a2, 2),
            change(b2, 2),
            change(b3, 3),
            change(None, 2, rtype="Patient", rid=c["id"]),
        ],
    )
    sink_once(lake_settings)

    ids = {a["id"], b["id"], c["id"]}
    patients = rows_of(table(lake_settings, "silver/patient"), "id", ids)
    assert [(p["id"], p["gender"], p["family"], p["_version"]) for p in patients] == [
        (a["id"], "female", "a", 2),
        (b["id"], "male", "B3", 3),
    ]
    idents = rows_of(table(lake_settings, "silver/patient_identifier"), "patient_id", ids)
    assert sorted((i["patient_id"], i["_version"]) for i in idents) == [
        (a["id"], 2),
        (b["id"], 3),
        (b["id"], 3),
    ]

    # Re-created after the delete: version 3 comes back.
    append(producer, [change(c, 3)])
    sink_once(lake_settings)
    [again] = rows_of(table(lake_settings, "silver/patient"), "id", {c["id"]})
    assert again["_version"] == 3
    bronze = rows_of(table(lake_settings, "bronze/resource_changes"), "resource_id", ids)
    assert sorted((r["resource_id"], r["version"], r["operation"]) for r in bronze) == sorted(
        [
            (a["id"], 1, "upsert"),
            (a["id"], 2, "upsert"),
            (b["id"], 1, "upsert"),
            (b["id"], 2, "upsert"),
            (b["id"], 3, "upsert"),
            (c["id"], 1, "upsert"),
            (c["id"], 2, "delete"),
            (c["id"], 3, "upsert"),
        ]
    )


def test_positions_are_in_the_tables_and_a_restart_writes_nothing_again(
    lake_settings: Settings, producer: EventProducer
) -> None:
    prefix = uuid.uuid4().hex[:12]
    delivered = append(
        producer, [change(fx.observation(f"{prefix}-{i}", f"{prefix}-p")) for i in range(50)]
    )
    sink = sink_once(lake_settings)
    for target in sink.targets:  # every table, touched or not, records how far it has read
        for d in delivered:
            assert target.table.transaction_version(app_id(FHIR_CHANGES, d.partition)) >= d.offset
    again = sink_once(lake_settings.amended(lake={"group_id": f"other-{uuid.uuid4()}"}))
    assert again.stats.rows == {}  # a new group starts where the tables are, not at offset 0
    obs = rows_of(table(lake_settings, "silver/observation"), "patient_id", {f"{prefix}-p"})
    assert len(obs) == 50


def test_view_added_later_and_a_view_that_adds_a_column(
    lake_settings: Settings, producer: EventProducer, tmp_path: Path
) -> None:
    prefix = uuid.uuid4().hex[:12]
    pats = [fx.patient(f"{prefix}-{i}") for i in range(3)]
    append(producer, [change(p) for p in pats])
    sink_once(lake_settings)

    views = tmp_path / "views"
    views.mkdir()
    # A new view: a table of its own, filled from the whole log.
    (views / "patient_phone.json").write_text(
        json.dumps(
            {
                "resourceType": "ViewDefinition",
                "name": "patient_phone",
                "resource": "Patient",
                "select": [
                    {"column": [{"name": "id", "path": "getResourceKey()"}]},
                    {
                        "forEach": "telecom.where(system = 'phone')",
                        "column": [{"name": "phone", "path": "value"}],
                    },
                ],
            }
        )
    )
    # The shipped patient view with one more column: the table's schema grows.
    patient_view = json.loads((SHIPPED_VIEWS / "patient.json").read_text())
    patient_view["select"][0]["column"].append({"name": "phone", "path": "telecom.value.first()"})
    (views / "patient.json").write_text(json.dumps(patient_view))
    later = lake_settings.amended(lake={"views_dir": views})

    more = fx.patient(f"{prefix}-new")
    append(producer, [change(more), change({**pats[0], "gender": "other"}, 2)])
    sink_once(later)

    ids = {p["id"] for p in pats} | {more["id"]}
    phones = rows_of(table(later, "silver/patient_phone"), "id", ids)
    assert len(phones) == 4 and {p["phone"] for p in phones} == {"(555)555-2004"}
    patient = DeltaTable(f"{later.lake.uri}/silver/patient")
    assert "phone" in patient.schema().to_arrow().names
    rows = {r["id"]: r for r in rows_of(table(later, "silver/patient"), "id", ids)}
    assert rows[more["id"]]["phone"] == "(555)555-2004"  # written after the change
    assert rows[pats[0]["id"]]["phone"] == "(555)555-2004"  # a new version: re-flattened
    assert rows[pats[1]["id"]]["phone"] is None  # older rows keep null until they change


def test_readers_deltalake_polars_duckdb_and_time_travel(
    lake_settings: Settings, producer: EventProducer
) -> None:
    prefix = uuid.uuid4().hex[:12]
    pid = f"{prefix}-p"
    append(
        producer, [change(fx.observation(f"{prefix}-{i}", pid, value=float(i))) for i in range(5)]
    )
    sink_once(lake_settings)
    uri = f"{lake_settings.lake.uri}/silver/observation"
    version_before = DeltaTable(uri).version()
    append(producer, [change(fx.observation(f"{prefix}-0", pid, value=99.0), 2)])
    sink_once(lake_settings)

    dt = DeltaTable(uri)
    # deltalake: SQL through its own engine. (Not pyarrow filters: files that delta-rs MERGE
    # or OPTIMIZE rewrote hold string_view columns pyarrow cannot compare, delta-rs#4579.)
    found = (
        QueryBuilder()
        .register("observation", dt)
        .execute(f"SELECT value_quantity FROM observation WHERE patient_id = '{pid}'")
        .read_all()
    )
    assert sorted(pa.table(found).column("value_quantity").to_pylist()) == [
        1.0,
        2.0,
        3.0,
        4.0,
        99.0,
    ]
    assert pid in dt.to_pyarrow_table(columns=["patient_id"]).column("patient_id").to_pylist()

    frame = pl.scan_delta(uri).filter(pl.col("patient_id") == pid).collect()
    assert frame.height == 5 and frame["value_quantity"].sum() == 109.0
    old = pl.read_delta(uri, version=version_before).filter(pl.col("patient_id") == pid)
    assert old["value_quantity"].sum() == 10.0  # time travel: before the update

    # duckdb: the Parquet files of the current snapshot (hive partitions for bronze). Its
    # delta extension (delta_scan) does the same but is downloaded on first use.
    bronze = DeltaTable(f"{lake_settings.lake.uri}/bronze/resource_changes")
    [(count, versions)] = duckdb.sql(
        "SELECT count(*), max(version) FROM read_parquet($files, hive_partitioning = true) "
        "WHERE resource_type = 'Observation' AND resource_id LIKE $ids",
        params={"files": bronze.file_uris(), "ids": f"{prefix}-%"},
    ).fetchall()
    assert (count, versions) == (6, 2)


def test_deidentified_tables(lake_settings: Settings, producer: EventProducer) -> None:
    prefix = uuid.uuid4().hex[:12]
    pid = f"{prefix}-pat"
    append(
        producer,
        [
            change(fx.patient(pid)),
            change(fx.observation(f"{prefix}-o", pid)),
            change(fx.encounter(f"{prefix}-e", pid)),
        ],
    )
    settings = lake_settings.amended(lake={"deidentify_secret": SecretStr(SECRET)})
    sink_once(settings)
    deid = Deidentifier(SECRET.encode())
    hashed = deid.resource_id("Patient", pid)
    [patient] = rows_of(table(settings, "deidentified/silver/patient"), "id", {hashed})
    assert patient["family"] is None and patient["given"] is None and patient["mrn"] is None
    assert patient["city"] is None and patient["state"] == "MI" and patient["gender"] == "male"
    assert patient["birth_date"] != "1980-06-15" and patient["_resource_id"] == hashed
    assert patient["_last_updated"] is None
    assert (
        rows_of(table(settings, "deidentified/silver/patient_identifier"), "patient_id", {hashed})
        == []
    )
    [obs] = rows_of(table(settings, "deidentified/silver/observation"), "patient_id", {hashed})
    [enc] = rows_of(table(settings, "deidentified/silver/encounter"), "patient_id", {hashed})
    assert (
        obs["id"] == deid.resource_id("Observation", f"{prefix}-o") and obs["value_quantity"] == 7.2
    )
    # One shift per patient: the interval between the encounter start and the lab survives.
    shift = deid.shift_days(f"Patient/{pid}")
    assert shift != 0 or obs["effective_date_time"] == "2024-03-01T07:45:00Z"
    assert enc["period_start"][:10] != "2024-02-28" or shift == 0
    text = json.dumps(table(settings, "deidentified/silver/patient").to_pylist(), default=str)
    assert pid not in text and "Everyman" not in text and "MRN-1" not in text


def test_cli_lake_tables_and_optimize(lake_settings: Settings, producer: EventProducer) -> None:
    prefix = uuid.uuid4().hex[:12]
    for i in range(3):  # three batches: three small files to compact
        append(producer, [change(fx.condition(f"{prefix}-{i}", f"{prefix}-p"))])
        sink_once(lake_settings)
    env = {
        "CARELOG_LAKE_URI": lake_settings.lake.uri or "",
        "CARELOG_KAFKA_BOOTSTRAP": lake_settings.kafka.bootstrap,
    }
    carelog = str(Path(sys.executable).with_name("carelog"))
    listing = subprocess.run(
        [carelog, "lake", "tables", "--json"],
        env=_env(env),
        capture_output=True,
        text=True,
        check=True,
    )
    infos = {i["name"]: i for i in map(json.loads, listing.stdout.splitlines())}
    cond = infos["silver/condition"]
    assert cond["rows"] >= 3 and ["code", "string"] in cond["columns"] and cond["positions"]
    assert infos["bronze/resource_changes"]["partition_by"] == ["resource_type", "month"]
    files_before = cond["files"]
    done = subprocess.run(
        [carelog, "lake", "optimize", "--retention-hours", "0"],
        env=_env(env),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "silver/condition" in done.stdout
    after = DeltaTable(f"{lake_settings.lake.uri}/silver/condition")
    assert len(after.file_uris()) <= max(1, files_before)
    assert len(rows_of(after.to_pyarrow_table(), "patient_id", {f"{prefix}-p"})) == 3
    human = subprocess.run(
        [carelog, "lake", "tables"], env=_env(env), capture_output=True, text=True, check=True
    )
    assert "silver/condition" in human.stdout and "offsets of carelog.fhir.changes" in human.stdout


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    return {**os.environ, **extra}


def test_lake_by_url_with_storage_options(
    lake_settings: Settings, producer: EventProducer, tmp_path: Path
) -> None:
    prefix = uuid.uuid4().hex[:12]
    root = tmp_path / "url-lake"
    root.mkdir()
    settings = lake_settings.amended(
        lake={"uri": f"file://{root}", "storage_options": {"timeout": "30s"}}
    )
    assert Lake.from_settings(settings).uri_of("silver/patient") == f"file://{root}/silver/patient"
    append(producer, [change(fx.patient(f"{prefix}-p"))])
    sink_once(settings)
    dt = DeltaTable(f"file://{root}/silver/patient", storage_options={"timeout": "30s"})
    assert rows_of(dt.to_pyarrow_table(), "id", {f"{prefix}-p"})
    shutil.rmtree(root)


def test_a_caught_up_sink_writes_without_waiting_out_the_batch_time(
    lake_settings: Settings, producer: EventProducer
) -> None:
    """Batches close by count or time, but once the log is drained the sink writes what it
    holds after the linger time (1 s): a backlog is not left waiting `lake_batch_max_seconds`
    for its last batch."""
    settings = lake_settings.amended(lake={"batch_max_seconds": 60.0})
    tag = uuid.uuid4().hex[:8]
    ids = {f"caught-up-{tag}-{i}" for i in range(5)}
    append(producer, [change(fx.patient(rid)) for rid in sorted(ids)])
    sink = LakeSink(settings)
    stop = threading.Event()
    written: set[str] = set()

    def on_batch(batch: Batch, committed: float) -> None:
        written.update(c.resource_id for c in batch.changes)
        if ids <= written:
            stop.set()

    runner = threading.Thread(target=lambda: sink.run(stop=stop, on_batch=on_batch))
    runner.start()
    stop.wait(20)
    stop.set()
    runner.join()
    assert ids <= written, "the drained backlog waited for the 60 s batch time"
    assert {r["id"] for r in rows_of(table(settings, "silver/patient"), "id", ids)} == ids
