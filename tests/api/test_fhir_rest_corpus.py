"""The processors' output for the whole corpus, served back through every FHIR REST interaction.

Every corpus input (tests/corpus: HL7 v2 as sent and the corrected copies in hl7v2_extra, FHIR
writes, device readings) goes through the real processing stages as the worker calls them
(processors.pipeline: translate_record, then version_record with the per-key state), in
one order, so resources that several messages touch get several versions. The resulting
ResourceChanged events, plus a FHIR DELETE of one corpus resource run through the same
stages, are applied to one store for the module with the projection's applier, and the real
gateway app (TestClient, SMART token, AuditEvents to the session broker) serves it.

For every resource a corpus file produced: read (the body is the change's resource, ETag,
Last-Modified), If-None-Match 304, vread of every version, instance, type and system
history, search by _id and by its type's common parameters (expected hits derived from the
content of every live resource, not from the store), and Patient/$everything of the patients
it points at (expected compartment derived the same way). _summary=count per type equals the
number of live resources the corpus produced. A deleted resource answers 410 and keeps its
history. Inputs that are rejected on purpose produce a Rejected event and nothing else.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from api.security.dev_token import mint_token
from schemas.events import (
    Channel,
    Format,
    InboundMessage,
    Operation,
    Rejected,
    ResourceChanged,
)
from streams.settings import PROJECT_ROOT
from tests.api.conftest import SECRET
from tests.processors.pipeline_driver import Pipeline
from tests.projections.fhir_store_support import write_store

pytestmark = pytest.mark.kafka  # the gateway appends an AuditEvent per read to the real log

CORPUS = PROJECT_ROOT / "tests" / "corpus"
HL7 = "x-application/hl7-v2+er7"
FHIR_JSON = "application/fhir+json"
Json = dict[str, Any]


@dataclass(frozen=True)
class Input:
    """One corpus file as the gateway would append it."""

    path: Path
    format: Format
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


def _fhir_headers(path: Path) -> dict[str, str]:
    body = orjson.loads(path.read_bytes())
    url = "/fhir" if body["resourceType"] == "Bundle" else f"/fhir/{body['resourceType']}"
    return {"http.method": "POST", "http.path": url}


# The order the module feeds them in: messages as sent first, then the corrected copies and
# the coverage messages (later versions of the same patients, encounters, orders).
INPUTS = [
    *(Input(p, Format.hl7v2, HL7) for p in sorted(CORPUS.glob("hl7v2/*.hl7"))),
    *(Input(p, Format.hl7v2, HL7) for p in sorted(CORPUS.glob("hl7v2_extra/*.hl7"))),
    *(Input(p, Format.fhir, FHIR_JSON, _fhir_headers(p)) for p in sorted(CORPUS.glob("fhir/*.json"))),
    *(Input(p, Format.device, "application/json", {"http.path": "/devices/readings"})
      for p in sorted(CORPUS.glob("device/*.json"))),
]  # fmt: skip

# Rejected on purpose: two HL7 v2 messages as sent carry required fields one position off
# the standard (hl7v2_extra/README.md; their *_fixed.hl7 copies translate), and one FHIR
# Observation is invalid by design (tests/corpus/README.md). The third such message, the VXU,
# has its shift in optional fields (RXA-16, RXA-22): those are dropped with warnings and the
# rest translates (docs/hl7v2.md, tolerance).
REJECTED_ON_PURPOSE = {
    "hl7v2/mdm_t02_document_v2.5.1.hl7": "TXA-12",
    "hl7v2/siu_s12_appointment_v2.5.1.hl7": "SCH-11",
    "fhir/observation_invalid_status.json": "Observation.status",
}
TRANSLATED = [i for i in INPUTS if i.name not in REJECTED_ON_PURPOSE]
# Deleted through the pipeline after the corpus: the Condition of the FHIR transaction.
DELETED_FROM = "fhir/transaction_patient_with_condition.json"


@dataclass
class Run:
    """What the processors made of the corpus, and the store it was applied to."""

    store: Path
    produced: dict[str, list[ResourceChanged]]  # input name -> its changes, in order
    rejected: dict[str, list[Rejected]]  # input name -> its rejections
    changes: list[ResourceChanged]  # every change applied, in order
    deleted: str  # "Type/id" deleted after the corpus

    def versions(self, key: str) -> list[ResourceChanged]:
        return [c for c in self.changes if c.key == key]

    def last(self, key: str) -> ResourceChanged:
        return self.versions(key)[-1]

    @cached_property
    def live(self) -> dict[str, Json]:
        """The current resource of every key not deleted, parsed."""
        current: dict[str, ResourceChanged] = {}
        for change in self.changes:
            current[change.key] = change
        return {k: orjson.loads(c.resource or "") for k, c in current.items()
                if c.operation is Operation.upsert}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    pipeline = Pipeline()
    produced: dict[str, list[ResourceChanged]] = {}
    rejected: dict[str, list[Rejected]] = {}
    changes: list[ResourceChanged] = []
    for item in INPUTS:
        event = InboundMessage.received(
            item.path.read_bytes(), channel=Channel.file, format=item.format,
            content_type=item.content_type, sender="corpus-test", headers=item.headers,
        )  # fmt: skip
        produced[item.name], rejected[item.name] = pipeline.run(event)
        changes += produced[item.name]
    [condition] = [c.key for c in produced[DELETED_FROM] if c.resource_type == "Condition"]
    delete = InboundMessage.received(
        b"", channel=Channel.http, format=Format.fhir, content_type=FHIR_JSON,
        sender="corpus-test", headers={"http.method": "DELETE", "http.path": f"/fhir/{condition}"},
    )  # fmt: skip
    deletion, refused = pipeline.run(delete)
    assert not refused and [(c.key, c.operation) for c in deletion] == [
        (condition, Operation.delete)
    ]
    changes += deletion
    path = tmp_path_factory.mktemp("fhir-rest-corpus") / "store.sqlite"
    write_store(path, changes)
    return Run(path, produced, rejected, changes, condition)


@pytest.fixture(scope="module")
def api(run: Run, make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(store={"path": run.store})


HEADERS = {"Authorization": f"Bearer {mint_token(SECRET, 'user/*.read', 'corpus-reader')}"}


# The store does not change once the module's fixture built it: a query that several corpus
# files lead to (gender=female, the system history) is asked once and its answer reused.
_ANSWERS: dict[tuple[int, str, tuple[tuple[str, str], ...]], Any] = {}


def get(api: TestClient, url: str, **params: str) -> Any:
    """GET a FHIR JSON answer that must be 200 (parsed; shared, not to be changed)."""
    key = (id(api), url, tuple(sorted(params.items())))
    if key not in _ANSWERS:
        response = api.get(url, params=params, headers=HEADERS)
        assert response.status_code == 200, (url, params, response.text)
        assert response.headers["content-type"] == FHIR_JSON
        _ANSWERS[key] = response.json()
    return _ANSWERS[key]


def history(api: TestClient, rtype: str | None = None) -> Json:
    """Type or system history, every version on one page."""
    answer: Json = get(api, f"/fhir/{rtype}/_history" if rtype else "/fhir/_history", _count="1000")
    return answer


# --- what a resource should be found by, derived from its content -----------------------


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _tokens_of_codings(codings: list[Json]) -> list[str]:
    return [f"{c['system']}|{c['code']}" for c in codings if "system" in c and "code" in c]


def concept(*names: str) -> Callable[[Json], list[str]]:
    """system|code of every coding of the CodeableConcept(s) at `names`."""
    return lambda r: [t for n in names for cc in _list(r.get(n))
                      for t in _tokens_of_codings(cc.get("coding", []))]  # fmt: skip


def coding(name: str) -> Callable[[Json], list[str]]:
    return lambda r: _tokens_of_codings(_list(r.get(name)))


def code(name: str) -> Callable[[Json], list[str]]:
    return lambda r: [str(v) for v in _list(r.get(name))]


def identifier(*names: str) -> Callable[[Json], list[str]]:
    return lambda r: [f"{i['system']}|{i['value']}" for n in names for i in _list(r.get(n))
                      if "system" in i and "value" in i]  # fmt: skip


def _at(r: Json, paths: tuple[str, ...]) -> list[Any]:
    """The values at dotted `paths` of `r`, lists followed at every step."""
    found: list[Any] = []
    for path in paths:
        nodes: list[Any] = [r]
        for step in path.split("."):
            nodes = [x for n in nodes if isinstance(n, dict) for x in _list(n.get(step))]
        found += nodes
    return found


def reference(*paths: str, target: str | None = None) -> Callable[[Json], list[str]]:
    """The literal Type/id references at dotted `paths` (lists followed), of `target` type."""

    def refs(r: Json) -> list[str]:
        found = [n["reference"] for n in _at(r, paths) if isinstance(n, dict) and "reference" in n]
        return [
            f for f in found if f.count("/") == 1 and (target is None or f.startswith(f"{target}/"))
        ]

    return refs


def string(*paths: str) -> Callable[[Json], list[str]]:
    return lambda r: [n for n in _at(r, paths) if isinstance(n, str)]


def date(*names: str) -> Callable[[Json], list[str]]:
    return lambda r: [v for n in names for v in _list(r.get(n)) if isinstance(v, str)]


def period(name: str) -> Callable[[Json], list[str]]:
    """A Period as "start/end" (either may be empty: open)."""
    return lambda r: [f"{p.get('start', '')}/{p.get('end', '')}" for p in _list(r.get(name))]


def quantity(name: str) -> Callable[[Json], list[str]]:
    """value|system|code of a Quantity without a comparator (a "<0.5" is no 0.5 to find)."""
    return lambda r: [f"{q['value']}|{q['system']}|{q['code']}" for q in _list(r.get(name))
                      if "comparator" not in q and {"value", "system", "code"} <= set(q)]  # fmt: skip


Extract = Callable[[Json], list[str]]
STRING, TOKEN, REFERENCE, DATE, PERIOD, QUANTITY = (
    "string",
    "token",
    "reference",
    "date",
    "period",
    "quantity",
)
PATIENT_REF = reference("subject", target="Patient")

# Common search parameters per type (FHIR R4 names) and how to read their values from a
# resource, for the types the corpus produces.
SEARCHES: dict[str, list[tuple[str, str, Extract]]] = {
    "Patient": [("identifier", TOKEN, identifier("identifier")),
                ("family", STRING, string("name.family")), ("given", STRING, string("name.given")),
                ("birthdate", DATE, date("birthDate")), ("gender", TOKEN, code("gender"))],
    "Encounter": [("patient", REFERENCE, PATIENT_REF), ("subject", REFERENCE, reference("subject")),
                  ("status", TOKEN, code("status")), ("class", TOKEN, coding("class")),
                  ("identifier", TOKEN, identifier("identifier")),
                  ("location", REFERENCE, reference("location.location")),
                  ("date", PERIOD, period("period"))],
    "Observation": [("code", TOKEN, concept("code")), ("subject", REFERENCE, reference("subject")),
                    ("patient", REFERENCE, PATIENT_REF), ("status", TOKEN, code("status")),
                    ("category", TOKEN, concept("category")),
                    ("device", REFERENCE, reference("device")),
                    ("date", DATE, date("effectiveDateTime")),
                    ("value-quantity", QUANTITY, quantity("valueQuantity"))],
    "DiagnosticReport": [("result", REFERENCE, reference("result")),
                         ("patient", REFERENCE, PATIENT_REF), ("code", TOKEN, concept("code")),
                         ("identifier", TOKEN, identifier("identifier")),
                         ("status", TOKEN, code("status")),
                         ("date", DATE, date("effectiveDateTime")),
                         ("issued", DATE, date("issued"))],
    "Immunization": [("vaccine-code", TOKEN, concept("vaccineCode")),
                     ("patient", REFERENCE, reference("patient")),
                     ("lot-number", STRING, string("lotNumber")),
                     ("identifier", TOKEN, identifier("identifier")),
                     ("date", DATE, date("occurrenceDateTime"))],
    "ServiceRequest": [("patient", REFERENCE, PATIENT_REF), ("code", TOKEN, concept("code")),
                       ("identifier", TOKEN, identifier("identifier")),
                       ("status", TOKEN, code("status")), ("intent", TOKEN, code("intent")),
                       ("requester", REFERENCE, reference("requester")),
                       ("authored", DATE, date("authoredOn"))],
    "Appointment": [("actor", REFERENCE, reference("participant.actor")),
                    ("patient", REFERENCE, reference("participant.actor", target="Patient")),
                    ("status", TOKEN, code("status")),
                    ("identifier", TOKEN, identifier("identifier")),
                    ("date", DATE, date("start"))],
    "Condition": [("code", TOKEN, concept("code")), ("patient", REFERENCE, PATIENT_REF),
                  ("encounter", REFERENCE, reference("encounter")),
                  ("onset-date", DATE, date("onsetDateTime"))],
    "AllergyIntolerance": [("patient", REFERENCE, reference("patient")),
                           ("code", TOKEN, concept("code"))],
    "RelatedPerson": [("patient", REFERENCE, reference("patient")),
                      ("relationship", TOKEN, concept("relationship"))],
    "DocumentReference": [("patient", REFERENCE, PATIENT_REF), ("type", TOKEN, concept("type")),
                          ("identifier", TOKEN, identifier("masterIdentifier", "identifier")),
                          ("date", DATE, date("date"))],
    "Specimen": [("patient", REFERENCE, PATIENT_REF), ("type", TOKEN, concept("type")),
                 ("identifier", TOKEN, identifier("identifier"))],
    "Location": [("name", STRING, string("name", "alias")),
                 ("identifier", TOKEN, identifier("identifier"))],
    "Practitioner": [("identifier", TOKEN, identifier("identifier")),
                     ("family", STRING, string("name.family"))],
    "Organization": [("name", STRING, string("name", "alias")),
                     ("identifier", TOKEN, identifier("identifier"))],
    "Device": [("identifier", TOKEN, identifier("identifier")),
               ("manufacturer", STRING, string("manufacturer"))],
}  # fmt: skip

# Where each type points at its patient: the R4 patient CompartmentDefinition's parameters.
COMPARTMENT: dict[str, Extract] = {
    "AllergyIntolerance": reference("patient", "recorder", "asserter", target="Patient"),
    "Appointment": reference("participant.actor", target="Patient"),
    "Condition": reference("subject", "asserter", target="Patient"),
    "DiagnosticReport": reference("subject", target="Patient"),
    "DocumentReference": reference("subject", "author", target="Patient"),
    "Encounter": reference("subject", target="Patient"),
    "Immunization": reference("patient", target="Patient"),
    "Observation": reference("subject", "performer", target="Patient"),
    "Patient": reference("link.other", target="Patient"),
    "RelatedPerson": reference("patient", target="Patient"),
    "ServiceRequest": reference("subject", "performer", target="Patient"),
    "Specimen": reference("subject", target="Patient"),
}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


_PRECISION = {4: "year", 7: "month", 10: "day", 16: "minute", 19: "second"}


def date_range(value: str) -> tuple[datetime, datetime]:
    """The instants a FHIR date/dateTime covers, [start, end); without a zone: UTC."""
    if len(value) <= 10:
        year, month, day = (int(x) for x in (value + "-01-01")[:10].split("-"))
        start = datetime(year, month, day, tzinfo=UTC)
        precision = _PRECISION[len(value)]
    else:
        start = datetime.fromisoformat(value.replace("Z", "+00:00"))
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        precision = "second" if ":" in value[14:] and len(value.split("T")[1]) >= 8 else "minute"
    if precision == "year":
        return start, start.replace(year=start.year + 1)
    if precision == "month":
        return start, (start + timedelta(days=32)).replace(day=1)
    step = {"day": timedelta(days=1), "minute": timedelta(minutes=1)}.get(precision)
    return start, start + (step or timedelta(seconds=1))


def _number_range(text: str) -> tuple[Decimal, Decimal]:
    """eq on a number: the implicit precision range of how it is written (FHIR search 3.1.1.4.2)."""
    number = Decimal(text)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int), text
    half = Decimal(1).scaleb(exponent) / 2
    return number - half, number + half


def _date_eq(wanted: str, value: str) -> bool:
    """eq: the value's range lies within the searched range."""
    (low, high), (start, end) = date_range(wanted), date_range(value)
    return low <= start and end <= high


def _period_ge(wanted: str, value: str) -> bool:
    """ge: the period (start/end, open when empty) reaches the searched instant or later."""
    end = value.split("/")[1]
    return not end or date_range(end)[1] > date_range(wanted)[0]


def _quantity_eq(wanted: str, value: str) -> bool:
    """eq within the searched number's precision, same system and code."""
    number, unit = wanted.split("|", 1)
    value_number, value_unit = value.split("|", 1)
    low, high = _number_range(number)
    return unit == value_unit and low <= Decimal(value_number) < high


def matches(kind: str, wanted: str, value: str) -> bool:
    """Whether an indexed `value` answers a search for `wanted`, by the FHIR search rules."""
    if kind == STRING:  # starts-with, case- and accent-insensitive
        return _fold(value).startswith(_fold(wanted))
    if kind == TOKEN and "|" not in wanted:  # a bare code matches it in any system
        return value.rsplit("|", 1)[-1] == wanted
    if kind == DATE:
        return _date_eq(wanted, value)
    if kind == PERIOD:
        return _period_ge(wanted.removeprefix("ge"), value)
    if kind == QUANTITY:
        return _quantity_eq(wanted, value)
    return value == wanted


def search_values(kind: str, values: list[str]) -> list[str]:
    """What to search by to find a resource indexed with `values`."""
    if kind == PERIOD:  # every period from its start on
        return [f"ge{v.split('/')[0]}" for v in values if v.split("/")[0]]
    if kind == DATE:  # the instant, and its day (as clients ask)
        return values + [v[:10] for v in values if len(v) > 10]
    return values


def expected_hits(live: dict[str, Json], rtype: str, param: str, wanted: str) -> set[str]:
    [(kind, extract)] = [(k, e) for p, k, e in SEARCHES[rtype] if p == param]
    return {r["id"] for key, r in live.items() if key.startswith(f"{rtype}/")
            and any(matches(kind, wanted, v) for v in extract(r))}  # fmt: skip


def compartment_of(live: dict[str, Json], patient: str) -> set[str]:
    members = {patient}
    for key, r in live.items():
        rtype = key.split("/")[0]
        if rtype in COMPARTMENT and patient in COMPARTMENT[rtype](r):
            members.add(key)
    return members


def patients_of(key: str, resource: Json) -> set[str]:
    rtype = key.split("/")[0]
    found = set(COMPARTMENT[rtype](resource)) if rtype in COMPARTMENT else set()
    return found | {key} if rtype == "Patient" else found


def match_ids(bundle: Json) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def http_date(resource: Json) -> str:
    moment = datetime.fromisoformat(resource["meta"]["lastUpdated"].replace("Z", "+00:00"))
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


# --- the checks -----------------------------------------------------------------------------


def check_read(api: TestClient, run: Run, key: str) -> None:
    last = run.last(key)
    response = api.get(f"/fhir/{key}", headers=HEADERS)
    if last.operation is Operation.delete:
        assert response.status_code == 410, response.text
        assert response.json()["issue"][0]["code"] == "deleted"
        return
    assert response.status_code == 200, response.text
    resource = orjson.loads(last.resource or "")
    assert response.json() == resource
    assert response.content == (last.resource or "").encode()  # served as logged
    assert resource["meta"]["versionId"] == str(last.version)
    assert response.headers["etag"] == f'W/"{last.version}"'
    assert response.headers["last-modified"] == http_date(resource)
    same = api.get(f"/fhir/{key}", headers={**HEADERS, "If-None-Match": f'W/"{last.version}"'})
    assert same.status_code == 304 and same.content == b""
    assert same.headers["etag"] == f'W/"{last.version}"'
    if last.version > 1:
        stale = {**HEADERS, "If-None-Match": f'W/"{last.version - 1}"'}
        assert api.get(f"/fhir/{key}", headers=stale).status_code == 200
    since = {**HEADERS, "If-Modified-Since": http_date(resource)}
    assert api.get(f"/fhir/{key}", headers=since).status_code == 304


def check_vread(api: TestClient, run: Run, key: str) -> None:
    for change in run.versions(key):
        response = api.get(f"/fhir/{key}/_history/{change.version}", headers=HEADERS)
        if change.operation is Operation.delete:
            assert response.status_code == 410, response.text
            continue
        assert response.status_code == 200, (change.version, response.text)
        assert response.json() == orjson.loads(change.resource or "")
        assert response.headers["etag"] == f'W/"{change.version}"'
        assert response.headers["last-modified"] == http_date(response.json())
    beyond = run.last(key).version + 1
    assert api.get(f"/fhir/{key}/_history/{beyond}", headers=HEADERS).status_code == 404


def _entry_version(entry: Json) -> str:
    return str(entry["response"]["etag"]).removeprefix('W/"').removesuffix('"')


def check_history(api: TestClient, run: Run, key: str) -> None:
    versions = run.versions(key)
    wanted = [(str(c.version), c.operation is Operation.delete,
               None if c.resource is None else orjson.loads(c.resource))
              for c in reversed(versions)]  # fmt: skip

    def of(entries: list[Json]) -> list[tuple[str, bool, Json | None]]:
        return [(_entry_version(e), e["request"]["method"] == "DELETE", e.get("resource"))
                for e in entries if e["fullUrl"].endswith(f"/fhir/{key}")]  # fmt: skip

    instance = get(api, f"/fhir/{key}/_history")
    assert instance["type"] == "history" and instance["total"] == len(versions)
    assert of(instance["entry"]) == wanted
    assert len(instance["entry"]) == len(versions)
    assert of(history(api, key.split("/")[0])["entry"]) == wanted
    assert of(history(api)["entry"]) == wanted


def check_searches(api: TestClient, run: Run, key: str) -> None:
    rtype, rid = key.split("/")
    live = run.live
    gone = key not in live
    by_id = get(api, f"/fhir/{rtype}", _id=rid)
    assert match_ids(by_id) == ([] if gone else [rid]) and by_id["total"] == (0 if gone else 1)
    resource = orjson.loads(next(c.resource for c in reversed(run.versions(key)) if c.resource))
    searched = 0
    for param, kind, extract in SEARCHES[rtype]:
        for value in sorted(set(search_values(kind, extract(resource)))):
            want = expected_hits(live, rtype, param, value)
            assert (rid in want) is not gone, (param, value)
            bundle = get(api, f"/fhir/{rtype}", **{param: value, "_count": "1000"})
            assert sorted(match_ids(bundle)) == sorted(want), (param, value)
            assert bundle["total"] == len(want), (param, value)
            searched += 1
    assert searched, f"{key}: none of its type's common parameters has a value to search by"
    check_chained_search(api, run, key, resource)
    check_includes(api, run, key, resource)
    form = {"content-type": "application/x-www-form-urlencoded"}
    posted = api.post(f"/fhir/{rtype}/_search", content=f"_id={rid}".encode(),
                      headers={**HEADERS, **form})  # fmt: skip
    assert posted.status_code == 200 and match_ids(posted.json()) == match_ids(by_id)


def check_includes(api: TestClient, run: Run, key: str, resource: Json) -> None:
    """_include of each reference parameter brings its live targets; _revinclude from the
    targets' side brings this resource back."""
    if key not in run.live:
        return
    rtype, rid = key.split("/")
    live = run.live
    for param, kind, extract in SEARCHES[rtype]:
        if kind != REFERENCE or not extract(resource):
            continue
        targets = {t for t in extract(resource) if t in live}
        bundle = get(api, f"/fhir/{rtype}", _id=rid, _include=f"{rtype}:{param}")
        included = {f"{e['resource']['resourceType']}/{e['resource']['id']}"
                    for e in bundle["entry"] if e["search"]["mode"] == "include"}  # fmt: skip
        assert included == targets, (param, extract(resource))
        for target in sorted(targets):
            ttype, tid = target.split("/")
            back = get(
                api, f"/fhir/{ttype}", _id=tid, _revinclude=f"{rtype}:{param}", _count="1000"
            )
            assert key in {f"{e['resource']['resourceType']}/{e['resource']['id']}"
                           for e in back["entry"] if e["search"]["mode"] == "include"}, (param, target)  # fmt: skip


def check_chained_search(api: TestClient, run: Run, key: str, resource: Json) -> None:
    """patient.identifier=system|value, for a resource that points at a known patient."""
    rtype, rid = key.split("/")
    live = run.live
    patient_param = [e for p, k, e in SEARCHES[rtype] if p == "patient" and k == REFERENCE]
    if not patient_param:
        return
    for patient in patient_param[0](resource):
        for value in identifier("identifier")(live.get(patient, {})):
            owners = {k for k, r in live.items()
                      if k.startswith("Patient/") and value in identifier("identifier")(r)}  # fmt: skip
            want = {r["id"] for k, r in live.items() if k.startswith(f"{rtype}/")
                    and owners & set(patient_param[0](r))}  # fmt: skip
            assert (rid in want) is (key in live)
            bundle = get(api, f"/fhir/{rtype}", **{"patient.identifier": value, "_count": "1000"})
            assert sorted(match_ids(bundle)) == sorted(want), ("patient.identifier", value)


def check_everything(api: TestClient, run: Run, key: str) -> None:
    live = run.live
    resource = live.get(key)
    if resource is None:  # deleted: it left its patient's compartment
        for change in run.versions(key):
            for patient in patients_of(key, orjson.loads(change.resource or "{}")):
                bundle = get(api, f"/fhir/{patient}/$everything")
                assert key.split("/")[1] not in match_ids(bundle)
        return
    for patient in patients_of(key, resource):
        if patient not in live:  # the corpus never described this patient
            missing = api.get(f"/fhir/{patient}/$everything", headers=HEADERS)
            assert missing.status_code == 404, missing.text
            continue
        bundle = get(api, f"/fhir/{patient}/$everything")
        got = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
        assert key in got
        assert got == compartment_of(live, patient), patient
        assert bundle["total"] == len(got)
        # a SMART token in that patient's context reads it too
        mine = {"Authorization": f"Bearer {patient_token(patient)}"}
        response = api.get(f"/fhir/{key}", headers=mine)
        assert response.status_code == 200, (patient, response.text)
        assert response.content == (run.last(key).resource or "").encode()


def patient_token(patient: str) -> str:
    if patient not in _TOKENS:
        pid = patient.split("/")[1]
        _TOKENS[patient] = mint_token(SECRET, "patient/*.read", "corpus-app", patient=pid)
    return _TOKENS[patient]


_TOKENS: dict[str, str] = {}


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("item", TRANSLATED, ids=lambda i: i.name)
def test_corpus_file_served_back_through_every_interaction(
    item: Input, run: Run, api: TestClient
) -> None:
    produced = run.produced[item.name]
    assert produced, f"{item.name} changed nothing"
    assert run.rejected[item.name] == [], [r.reason for r in run.rejected[item.name]]
    for key in dict.fromkeys(c.key for c in produced):
        check_read(api, run, key)
        check_vread(api, run, key)
        check_history(api, run, key)
        check_searches(api, run, key)
        check_everything(api, run, key)


@pytest.mark.parametrize("item", [i for i in INPUTS if i.name in REJECTED_ON_PURPOSE],
                         ids=lambda i: i.name)  # fmt: skip
def test_inputs_rejected_on_purpose_produce_nothing(item: Input, run: Run) -> None:
    assert run.produced[item.name] == []
    [rejected] = run.rejected[item.name]
    outcome = orjson.loads(rejected.operation_outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    locations = [loc for issue in outcome["issue"] for loc in issue.get("location", [])]
    assert REJECTED_ON_PURPOSE[item.name] in locations, outcome
    if item.format is Format.hl7v2:  # the corrected copy translates
        fixed = f"hl7v2_extra/{item.path.stem}_fixed.hl7"
        assert run.produced[fixed] and run.rejected[fixed] == []
    else:  # both faults named: the status code and the string where a decimal belongs
        assert {"Observation.status", "Observation.valueQuantity.value"} <= set(locations)


@pytest.mark.parametrize("rtype", sorted(SEARCHES))
def test_summary_count_per_type_equals_what_the_corpus_produced(
    rtype: str, run: Run, api: TestClient
) -> None:
    live = [k for k in run.live if k.startswith(f"{rtype}/")]
    produced = {c.key for c in run.changes if c.resource_type == rtype}
    assert produced, f"the corpus produced no {rtype}"
    count = get(api, f"/fhir/{rtype}", _summary="count")
    assert count["total"] == len(live) and not count.get("entry")
    history = get(api, f"/fhir/{rtype}/_history", _count="0")
    assert history["total"] == sum(1 for c in run.changes if c.resource_type == rtype)


def test_every_type_produced_is_checked(run: Run) -> None:
    assert {c.resource_type for c in run.changes} == set(SEARCHES)


def test_system_history_holds_every_change(run: Run, api: TestClient) -> None:
    system = history(api)
    assert system["total"] == len(run.changes) <= 1000
    got = Counter(e["fullUrl"].split("/fhir/")[1] for e in system["entry"])
    assert got == Counter(c.key for c in run.changes)
    stamps = [datetime.fromisoformat(e["response"]["lastModified"]) for e in system["entry"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first


def test_the_deleted_resource_is_gone_but_keeps_its_history(run: Run, api: TestClient) -> None:
    gone = api.get(f"/fhir/{run.deleted}", headers=HEADERS)
    assert gone.status_code == 410 and gone.json()["resourceType"] == "OperationOutcome"
    history = get(api, f"/fhir/{run.deleted}/_history")
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "POST"]
    assert "resource" not in history["entry"][0]
    first = api.get(f"/fhir/{run.deleted}/_history/1", headers=HEADERS)
    assert first.status_code == 200 and first.json()["resourceType"] == "Condition"
    rtype, rid = run.deleted.split("/")
    assert match_ids(get(api, f"/fhir/{rtype}", _id=rid)) == []


def test_every_corpus_file_is_fed() -> None:
    on_disk = {f"{p.parent.name}/{p.name}" for folder in ("hl7v2", "hl7v2_extra", "fhir", "device")
               for p in (CORPUS / folder).iterdir() if p.suffix in (".hl7", ".json")}  # fmt: skip
    assert on_disk == {i.name for i in INPUTS} and set(REJECTED_ON_PURPOSE) <= on_disk
