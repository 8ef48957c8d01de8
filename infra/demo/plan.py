"""The whole demo stream (pure): who, what, over which channel, in which phase.

1. admissions: ADT^A01 of every patient over MLLP;
2. the stay: lab panels (ORU^R01, half over HTTP, half over MLLP), bedside vitals, FHIR
   writes from a care app, and the deliberately bad messages;
3. imaging studies (STOW-RS);
4. the ends: ADT^A08 updates, A02 transfers and A03 discharges over MLLP, one patient's
   messages in that order on one connection.

Phases keep cause before effect across channels: the Patient an A01 creates exists before
devices and apps refer to it. A DICOM header knows only name, birth date and sex, and its
Patient replaces the whole resource (processors/dicom_header.py says so): imaging goes after
the lab results (which repeat the full PID) and right before the A08, which puts the full
demographics back, so the current Patient flips as little as it can.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson

from infra.demo import feeds, hl7
from infra.demo.bad import HL7_TYPE, bad_messages
from infra.demo.outgoing import Outgoing, Phase
from infra.demo.people import Person, make_people
from schemas.events import Format

FHIR_JSON = "application/fhir+json"
ASYNC = (("Prefer", "respond-async"),)  # the demo does not wait for each write to apply


@dataclass(frozen=True, slots=True)
class Plan:
    seed: int
    people: list[Person]
    phases: list[Phase]

    @property
    def messages(self) -> list[Outgoing]:
        return [m for phase in self.phases for m in phase.messages]

    @property
    def bad(self) -> list[Outgoing]:
        return [m for m in self.messages if m.bad]

    @property
    def shown(self) -> Person:
        """The patient the report shows: the one with every kind of message."""
        return self.people[0]


def make_plan(seed: int, patients: int) -> Plan:
    if patients < 1:
        raise ValueError("the demo needs at least one patient (--patients 1 or more)")
    people = make_people(seed, patients)
    rng = random.Random(seed * 7919 + 1)  # values of results and readings, apart from people
    admissions = Phase("admissions", [_adt(p, "A01", hl7.admit(p)) for p in people])
    stay = Phase("the stay")
    for p in people:
        stay.messages.extend(_labs(p, rng) + _vitals(p, rng) + _app(p, rng))
    stay.messages.extend(bad_messages(people[-1]))
    imaging = Phase("imaging", [m for p in people for m in _imaging(p, seed)])
    ends = Phase("updates, transfers, discharges")
    for p in people:
        now = p.moved() if p.updated else p  # after the A08, messages carry the new address
        if p.updated:
            ends.messages.append(_adt(p, "A08", hl7.update(p)))
        if p.transfer_to is not None:
            ends.messages.append(_adt(p, "A02", hl7.transfer(now)))
        if p.discharged is not None:
            ends.messages.append(_adt(p, "A03", hl7.discharge(now)))
    return Plan(seed, people, [admissions, stay, imaging, ends])


def _adt(p: Person, trigger: str, body: bytes) -> Outgoing:
    return Outgoing("ADT over MLLP", "mllp", Format.hl7v2, body, f"{p.mrn} ADT^{trigger}")


def _labs(p: Person, rng: random.Random) -> list[Outgoing]:
    out = []
    for n in range(p.labs):
        label = f"{p.mrn} ORU^R01 panel {n + 1}"
        if (p.index + n) % 2:
            body = hl7.lab_result(p, n, rng, sent_by="DEMO_LIS_MLLP")
            out.append(Outgoing("labs over MLLP", "mllp", Format.hl7v2, body, label))
        else:
            body = hl7.lab_result(p, n, rng)
            out.append(
                Outgoing(
                    "labs over HTTP",
                    "http",
                    Format.hl7v2,
                    body,
                    label,
                    path="/hl7v2",
                    content_type=HL7_TYPE,
                )
            )
    return out


def _vitals(p: Person, rng: random.Random) -> list[Outgoing]:
    return [
        Outgoing(
            "bedside vitals",
            "http",
            Format.device,
            feeds.readings(p, n, rng),
            f"{p.mrn} vitals {n + 1}",
            path="/devices/readings",
            content_type="application/json",
        )
        for n in range(p.vitals)
    ]


def _imaging(p: Person, seed: int) -> list[Outgoing]:
    if not p.imaging:
        return []
    parts = feeds.instances(p)
    body, content_type = feeds.multipart(parts, f"carelog-demo-{seed}-{p.mrn}")
    return [
        Outgoing(
            "imaging (STOW-RS)",
            "http",
            Format.dicom,
            body,
            f"{p.mrn} study of {len(parts)} instances",
            path=f"/dicomweb/studies/{feeds.study_uid(p)}",
            content_type=content_type,
            parts=tuple(parts),
        )
    ]


def _app(p: Person, rng: random.Random) -> list[Outgoing]:
    stream = "FHIR app writes"
    target, observation = feeds.weight(p, rng)
    out = [
        Outgoing(
            stream,
            "http",
            Format.fhir,
            orjson.dumps(observation),
            f"PUT {target}",
            path=f"/fhir/{target}",
            method="PUT",
            content_type=FHIR_JSON,
            headers=ASYNC,
        )
    ]
    if p.index % 2 == 0:
        criteria, condition = feeds.problem(p)
        out.append(
            Outgoing(
                stream,
                "http",
                Format.fhir,
                orjson.dumps(condition),
                f"{p.mrn} POST Condition (if none exist)",
                path="/fhir/Condition",
                content_type=FHIR_JSON,
                headers=(*ASYNC, ("If-None-Exist", criteria)),
            )
        )
    if p.index % 3 == 0:
        bundle = feeds.intake_bundle(p, rng)
        out.append(
            Outgoing(
                stream,
                "http",
                Format.fhir,
                orjson.dumps(bundle),
                f"{p.mrn} transaction (intake form)",
                path="/fhir",
                content_type=FHIR_JSON,
                headers=ASYNC,
            )
        )
    return out
