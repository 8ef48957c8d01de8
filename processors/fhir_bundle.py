"""Transaction and batch Bundles (FHIR R4 3.1.0.11) as a list of resource writes.

Each entry is a write by request.method: POST (create, id resource_id(type, event_id,
entry index), or a conditional create with request.ifNoneExist: create-only, with the id
the gateway resolved or the criteria's id, see `fhir_request.conditional_id`), PUT (id from
request.url) or DELETE; request.ifMatch and request.ifNoneMatch "*" as on single writes.
In a transaction, references to an entry's urn:uuid / urn:oid fullUrl are replaced by the
"Type/id" assigned to it, wherever a "reference" string holds one in the Bundle. A batch entry may not depend on another (R4 3.1.0.11.1), so there such a
reference is an error.

The translation is all or nothing for both kinds: the Translation contract has no place
for the per-entry outcomes a batch-response would carry, so a batch with a bad entry is
rejected whole, with one issue per problem. Two entries writing the same resource are an
error (R4 3.1.0.11.2). Writes come out in the processing order R4 sets: DELETE, POST, PUT.
What an entry does is read from request.method and request.url only; an entry.resource of
another type than the url names is refused, on a DELETE too (where the body is otherwise
ignored), so a decoy body cannot disguise what is done. An entry may not update or delete
an AuditEvent, nor create one (processors/append_only.py).
Each resource carries its entry's path (Bundle.entry[i].resource) for the translate stage's
validator, which reports every invalid resource at once, once the requests are sound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from processors.append_only import check_appendable
from processors.fhir_request import (
    IDS_HEADER,
    check_body_type,
    check_id,
    check_type,
    conditional_target,
    fail,
    parse_json_object,
    parse_preconditions,
    prepared,
)
from processors.ids import resource_id
from processors.translation import TranslatedResource, Translation, TranslationError
from schemas.outcome import Issue

_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2}
_PLACEHOLDERS = ("urn:uuid:", "urn:oid:")


@dataclass(frozen=True, slots=True)
class _Write:
    method: str
    resource_type: str
    resource_id: str
    resource: dict[str, Any] | None  # None for DELETE
    if_match: int | None
    where: str  # the entry's FHIRPath, Bundle.entry[i]
    if_none_exist: bool = False

    @property
    def key(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


def translate_bundle(
    payload: bytes, event_id: str, mapping_version: str, resolved: dict[int, str] | None = None
) -> Translation:
    """The writes of a transaction or batch Bundle; TranslationError names every problem.

    `resolved` holds, per entry index, the id the gateway resolved the entry's
    request.ifNoneExist to (fhir_request.IDS_HEADER): the entry is create-only on it (so it
    changes nothing while the resource exists), and references to its fullUrl point at it.
    """
    resolved = resolved or {}
    bundle = parse_json_object(payload, "Bundle")
    if bundle.get("resourceType") != "Bundle":
        raise fail("POST to the base takes a transaction or batch Bundle", "Bundle.resourceType")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise fail(
            f"Bundle type {str(kind)[:32]!r} cannot be posted to the base; "
            "transaction or batch expected",
            "Bundle.type",
            "not-supported",
        )
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise fail("entry must be a list", "Bundle.entry", "structure")
    issues: list[Issue] = []
    writes: list[_Write] = []
    placeholders: dict[str, str] = {}
    for index, entry in enumerate(entries):
        try:
            write = _write(entry, index, event_id, resolved.get(index))
        except TranslationError as exc:
            issues.extend(exc.issues)
            continue
        full_url = entry.get("fullUrl")
        if isinstance(full_url, str) and full_url.startswith(_PLACEHOLDERS):
            if full_url in placeholders:
                issues.append(
                    Issue("fullUrl used by an earlier entry", location=f"{write.where}.fullUrl")
                )
            placeholders[full_url] = write.key
        writes.append(write)
    conditional = {w.where for w in writes if w.if_none_exist}
    if any(f"Bundle.entry[{i}]" not in conditional for i in resolved):
        why = "names an entry that is not a conditional create (request.ifNoneExist)"
        issues.append(Issue(why, location=IDS_HEADER))
    issues.extend(_duplicates(writes))
    targets = placeholders if kind == "transaction" else {}
    resources: list[tuple[int, TranslatedResource]] = []
    for write in writes:
        operation: Literal["upsert", "delete"] = "upsert"
        if write.resource is None:
            resource: dict[str, Any] = {
                "resourceType": write.resource_type,
                "id": write.resource_id,
            }
            operation = "delete"
        else:
            resource = _resolve(write.resource, targets, f"{write.where}.resource", kind, issues)
        item = TranslatedResource(resource, operation, write.if_match,
                                  where=f"{write.where}.resource",
                                  if_none_exist=write.if_none_exist)  # fmt: skip
        resources.append((_ORDER[write.method], item))
    if issues:
        raise TranslationError(issues)
    resources.sort(key=lambda pair: pair[0])
    return Translation([r for _, r in resources], None, mapping_version)


def _write(entry: Any, index: int, event_id: str, resolved: str | None) -> _Write:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        raise fail("each entry needs a request (method and url)", f"{where}.request", "required")
    request = entry["request"]
    method, url = request.get("method"), request.get("url")
    if method not in _ORDER:
        raise fail(
            f"request method {str(method)[:16]!r} not supported: POST, PUT or DELETE",
            f"{where}.request.method",
            "not-supported",
        )
    if not isinstance(url, str) or "?" in url:
        raise fail(
            "request url must be Type (POST) or Type/id (PUT, DELETE); conditional "
            "urls are not supported",
            f"{where}.request.url",
            "not-supported",
        )
    parts = url.strip("/").split("/")
    check_type(parts[0], f"{where}.request.url")
    check_appendable(method, parts[0], f"{where}.request.method", in_bundle=True)
    if_match = parse_preconditions(
        request.get("ifMatch"), request.get("ifNoneMatch"), f"{where}.request."
    )
    if method == "POST":
        if len(parts) != 1:
            raise fail("a POST entry's url is the resource type", f"{where}.request.url")
        criteria = request.get("ifNoneExist")
        new_id = resource_id(parts[0], event_id, str(index))
        if criteria is not None:
            where_criteria = f"{where}.request.ifNoneExist"
            new_id = conditional_target(parts[0], criteria, where_criteria, resolved, new_id)
    else:
        if len(parts) != 2:
            raise fail(f"a {method} entry's url is Type/id", f"{where}.request.url")
        check_id(parts[1], f"{where}.request.url")
        new_id = parts[1]
    body = entry.get("resource")
    if method == "DELETE":
        if body is not None:  # ignored, but a decoy of another type is not let through
            check_body_type(body, parts[0], f"{where}.resource")
        return _Write(method, parts[0], new_id, None, if_match, where)
    if method == "PUT" and isinstance(body, dict) and body.get("id", new_id) != new_id:
        raise fail("the resource id must equal the id in request.url", f"{where}.resource.id")
    resource = prepared(body, parts[0], new_id, f"{where}.resource")
    conditional = method == "POST" and request.get("ifNoneExist") is not None
    return _Write(method, parts[0], new_id, resource, if_match, where, conditional)


def _duplicates(writes: list[_Write]) -> list[Issue]:
    first: dict[str, str] = {}
    issues = []
    for write in writes:
        if write.key in first:
            issues.append(
                Issue(
                    f"{write.key} is also written by {first[write.key]}; an entry "
                    "may write a resource only once",
                    location=f"{write.where}.request.url",
                )
            )
        first.setdefault(write.key, write.where)
    return issues


def _resolve(node: Any, targets: dict[str, str], where: str, kind: str, issues: list[Issue]) -> Any:
    """A copy of `node` with placeholder references replaced; unresolved ones become issues."""
    if isinstance(node, list):
        return [
            _resolve(item, targets, f"{where}[{i}]", kind, issues) for i, item in enumerate(node)
        ]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "reference" and isinstance(value, str) and value.startswith(_PLACEHOLDERS):
            if value in targets:
                value = targets[value]
            else:
                why = (
                    "a batch entry cannot refer to another entry"
                    if kind == "batch"
                    else "no entry of this transaction has this fullUrl"
                )
                issues.append(
                    Issue(
                        f"unresolved reference {value[:80]!r}: {why}", location=f"{where}.reference"
                    )
                )
        else:
            value = _resolve(value, targets, f"{where}.{key}", kind, issues)
        out[key] = value
    return out
