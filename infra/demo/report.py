"""What to look at after the demo: one patient over /fhir, its Delta rows, the rejections.

Each function returns plain data or rich renderables; `command` prints them.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from rich.table import Table

from infra.demo.outgoing import Outgoing
from infra.demo.people import Person
from infra.demo.senders import Result
from schemas.events import Rejected
from streams.settings import Settings

# What the shown patient's $everything holds once everything sent about them was applied.
EXPECTED_TYPES = frozenset(
    {
        "Patient",
        "Encounter",
        "Observation",
        "DiagnosticReport",
        "ImagingStudy",
        "Condition",
        "AllergyIntolerance",
    }
)
# silver views and the column that names the patient in each.
VIEWS = (
    ("patient", "id"),
    ("encounter", "patient_id"),
    ("observation", "patient_id"),
    ("diagnosticreport", "patient_id"),
    ("condition", "patient_id"),
    ("allergyintolerance", "patient_id"),
    ("imagingstudy", "patient_id"),
)


def sent_table(results: list[Result]) -> Table:
    table = Table(title="sent")
    for column in ("stream", "messages", "accepted", "refused at the door", "failed"):
        table.add_column(column, justify="left" if column == "stream" else "right")
    by_stream: dict[str, Counter[str]] = {}
    for r in results:
        by_stream.setdefault(r.message.stream, Counter())[r.outcome] += 1
    for stream, counts in by_stream.items():
        table.add_row(
            stream,
            str(sum(counts.values())),
            str(counts["accepted"]),
            str(counts["refused"]),
            str(counts["failed"]),
        )
    return table


def unexpected(results: list[Result]) -> list[Result]:
    """Good messages carelog did not accept (bad ones may be refused at the door)."""
    return [r for r in results if r.outcome != "accepted" and not r.message.bad]


async def wait_for_everything(
    gateway: str, token: str, patient: str, timeout: float
) -> dict[str, Any] | None:
    """Patient/$everything once it holds every expected type (or what it held at the
    deadline; None if the Patient never became readable)."""
    url = f"{gateway}/fhir/Patient/{patient}/$everything"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    deadline = time.monotonic() + timeout
    last: dict[str, Any] | None = None
    async with httpx.AsyncClient(timeout=30) as http:
        while True:
            try:
                answer = await http.get(url, headers=headers)
                if answer.status_code == 200:
                    last = answer.json()
                    if _complete(last):
                        return last
            except httpx.HTTPError:
                pass  # the gateway restarting: keep waiting until the deadline
            if time.monotonic() >= deadline:
                return last
            await asyncio.sleep(1.0)


def resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]


def _complete(bundle: dict[str, Any]) -> bool:
    found = resources(bundle)
    types = {r.get("resourceType") for r in found}
    finished = any(
        r.get("resourceType") == "Encounter" and r.get("status") == "finished" for r in found
    )
    return types >= EXPECTED_TYPES and finished


def everything_summary(bundle: dict[str, Any]) -> list[str]:
    """A few lines on what carelog knows of the patient, from Patient/$everything."""
    found = resources(bundle)
    lines = []
    for p in (r for r in found if r.get("resourceType") == "Patient"):
        name = (p.get("name") or [{}])[0]
        address = (p.get("address") or [{}])[0]
        lines.append(
            f"{' '.join(name.get('given', []))} {name.get('family', '')}, {p.get('gender')}, "
            f"born {p.get('birthDate')}, lives in {address.get('city', '?')}; "
            f"version {p.get('meta', {}).get('versionId')}"
        )
    counts = Counter(str(r.get("resourceType")) for r in found)
    lines.append("holds: " + ", ".join(f"{n} {t}" for t, n in sorted(counts.items())))
    for e in (r for r in found if r.get("resourceType") == "Encounter"):
        period = e.get("period", {})
        lines.append(
            f"Encounter {e.get('status')}: {period.get('start')} to {period.get('end', '...')}"
        )
    for s in (r for r in found if r.get("resourceType") == "ImagingStudy"):
        lines.append(
            f"ImagingStudy {s.get('description')}: {s.get('numberOfInstances')} instance(s)"
        )
    for kind in ("Condition", "AllergyIntolerance"):
        for c in (r for r in found if r.get("resourceType") == kind):
            coding = (c.get("code", {}).get("coding") or [{}])[0]
            lines.append(f"{kind}: {coding.get('display') or coding.get('code')}")
    return lines


@dataclass(frozen=True, slots=True)
class LakeRows:
    view: str
    uri: str
    rows: int | None  # None: the table does not exist (yet)
    patient_rows: int


def lake_rows(settings: Settings, patient: str) -> list[LakeRows]:
    """Row counts of the silver views, all and the patient's, read from the lake now."""
    import pyarrow as pa
    from deltalake import QueryBuilder

    from projections.lake.tables import Lake

    lake = Lake.from_settings(settings)
    out = []
    for view, column in VIEWS:
        table = lake.open(f"silver/{view}")
        if table is None:
            out.append(LakeRows(view, lake.uri_of(f"silver/{view}"), None, 0))
            continue
        sql = (
            f"SELECT count(*) AS n, coalesce(sum(CASE WHEN {column} = '{patient}' "
            f"THEN 1 ELSE 0 END), 0) AS mine FROM {view}"
        )
        answer = QueryBuilder().register(view, table).execute(sql).read_all()
        row = pa.table(answer).to_pylist()[0]
        out.append(LakeRows(view, lake.uri_of(f"silver/{view}"), int(row["n"]), int(row["mine"])))
    return out


def expected_rows(bundle: dict[str, Any] | None) -> dict[str, int]:
    """{view: rows of the patient} the lake should hold once it caught up with $everything."""
    counts = Counter(str(r.get("resourceType")).lower() for r in resources(bundle or {}))
    return {view: counts[view] for view, _ in VIEWS}


async def wait_for_lake(
    settings: Settings, patient: str, expected: dict[str, int], timeout: float
) -> list[LakeRows]:
    """Lake rows once the patient's rows reached `expected` (the sink is seconds behind)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await asyncio.to_thread(lake_rows, settings, patient)
        caught_up = all(r.patient_rows >= expected.get(r.view, 0) for r in rows)
        if (caught_up and rows[0].patient_rows) or time.monotonic() >= deadline:
            return rows
        await asyncio.sleep(1.0)


def lake_table(rows: list[LakeRows], person: Person) -> Table:
    table = Table(title=f"Delta tables (silver), rows now; {person.mrn}'s rows")
    table.add_column("table")
    table.add_column("rows", justify="right")
    table.add_column(person.mrn, justify="right")
    for r in rows:
        table.add_row(r.uri, "no table yet" if r.rows is None else str(r.rows), str(r.patient_rows))
    return table


def polars_snippet(lake_root: str, patient: str) -> str:
    return (
        "import polars as pl\n"
        f'obs = pl.scan_delta("{lake_root}/silver/observation")\n'
        f'print(obs.filter(pl.col("patient_id") == "{patient}")\n'
        '         .select("code_display", "effective_date_time", "value_quantity", "value_unit")\n'
        '         .sort("effective_date_time").collect())'
    )


def rejection_table(bad: list[Outgoing], found: dict[str, Rejected]) -> Table:
    table = Table(title="deliberately bad messages, as carelog.rejected holds them")
    for column in ("message", "what is wrong", "stage", "carelog's reason"):
        table.add_column(column, overflow="fold")
    for m in bad:
        event = found.get(m.tag)
        if event is None:
            table.add_row(m.label, m.bad or "", "-", "not on carelog.rejected yet")
        else:
            table.add_row(m.label, m.bad or "", event.stage, event.reason)
    return table
