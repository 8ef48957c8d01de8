"""The FHIR store: a projection of carelog.fhir.changes into SQLite (WAL), and its search.

Build and keep it with `carelog projection` (run), `carelog projection rebuild` (from
offset 0 into a fresh file, swapped in atomically) and `carelog projection verify`
(rebuild up to the live store's offsets into a fresh file and compare every resource,
version and rejection; exit status 2 when they differ). The file is
CARELOG_FHIR_STORE_PATH (default var/fhir-store.sqlite). One process writes a file (it
holds `<file>.lock`); any number of processes and threads read it.

Python API, for the FHIR REST layer
-----------------------------------

    from projections.fhir_store import FhirStore, SearchError

    store = FhirStore.open(path, readonly=True)  # thread-safe: one connection per thread

`store.read(type, id) -> StoredResource | None`
    The current version. A deleted resource comes back with `deleted=True` and `json == ""`
    (answer 410); None means never seen (404). StoredResource has resource_type, id,
    version (int), deleted, last_updated (aware datetime, = meta.lastUpdated) and json (the
    canonical JSON from the log, meta.versionId/lastUpdated included: serve it as is).
`store.vread(type, id, version, compartment=None) -> StoredResource | None`
`store.history(type=None, id=None, since=None, count=50, offset=0, compartment=None) -> (list, total)`
    Instance, type or system history, newest first, deleted versions included.
    `compartment=("Patient", id)` keeps only the versions that were in that compartment,
    each judged by its own JSON (a deletion where the version it deleted was): vread
    answers None for the others, history neither lists nor counts them (one resource's
    history only). See projections/fhir_store/compartment.py.
`store.search(type, params, compartment=None) -> SearchResult`
    `params` is the query as a list of (name, value) pairs exactly as received (repeats
    mean AND, commas inside a value mean OR; modifiers and chains stay in the name:
    ("subject:Patient.name", "smith")). `compartment=("Patient", id)` limits the search to
    that patient's compartment (R4 CompartmentDefinition), chains included (a chain
    follows only references to resources in the compartment). Returns
    SearchResult(matches, included, total, next_offset); for the next page send the same
    params plus ("_offset", str(next_offset)); next_offset is None on the last page. Raises
    SearchError(param, message) for an unknown or unsupported parameter or modifier, a bad
    value or a search beyond the limits below: answer 400 with an OperationOutcome.
`store.change_for_inbound(inbound_event_id) -> list[(type, id, version)]`
    The changes an inbound event produced (read-your-writes: poll until it appears).
`store.rejection_for_inbound(inbound_event_id) -> Rejection | None`
    Set when the write was rejected downstream: stage, reason, operation_outcome (JSON).
`store.applied_offsets() -> {(topic, partition): offset}`
`store.patient_compartment(patient_id, types=None) -> list[StoredResource]`
    Patient/$everything: the patient and every live resource in its compartment.
`store.compartment_params() -> {type: (param, ...)}`
`store.supported_search_params() -> {type: [(name, type, documentation)]}`
    For the CapabilityStatement (searchParam name/type/documentation per resource).
`store.resource_types() -> [type]`

Search support
--------------

Parameters are the official FHIR R4 (4.0.1) SearchParameter definitions for the 18
resource types carelog produces (search-parameters.r4.json, see PROVENANCE.md), their
FHIRPath expressions compiled to Python (fhirpathpy for the rest). Composite and special
parameters are not served.

- string: starts-with, case- and accent-insensitive; `:exact`; `:contains`.
- token: `code`, `system|code`, `|code`, `system|`; `:not`; `:text` (starts-with on the
  display / CodeableConcept.text).
- date: prefixes eq ne gt lt ge le sa eb ap; values of any precision (2020, 2020-03,
  2020-03-04, ...T10:15, ...T10:15:30(.123)(Z|+01:00)) are ranges, compared as the FHIR
  search spec says (eq: the value's range lies within the parameter's range; gt: it
  extends above it; sa: it starts after it; ...).
- reference: `Type/id`, `id`, absolute URL, `:Type`; chains (`subject:Patient.name=x`,
  `patient.identifier=s|v`, up to 3 links).
- quantity: `[prefix]number[|system|code]` (`||code` matches code or unit); number:
  `[prefix]number` with the implicit precision range for eq; uri: exact, `:below`, `:above`.
- `:missing=true|false` on any parameter.
- `_id`, `_lastUpdated`; `_tag`, `_profile`, `_security`, `_source` (from the definitions).
- `_count` (default 20, max 1000, 0 = total only), `_offset`, `_sort` (comma-separated,
  `-` for descending, on _id, _lastUpdated and any indexed parameter), `_include` and
  `_revinclude` (`Type:param[:Target]`, `Type:*`, `:iterate`), `_summary=count|data|false`,
  `_elements`, `_total=none|estimate|accurate` (default accurate). `_format` and `_pretty`
  are ignored (the API's business).

Order is deterministic (the _sort keys, then the id), so offset paging is stable while the
store does not change.

Limits (search_limits.py; beyond them a SearchError naming the parameter and the limit): 100
parameter occurrences per search, 100 comma-separated values per occurrence, 1000 characters
per value, 10 `_sort` keys, `_count` 0..1000, `_offset` 0..2^31, numbers 0 or 1e-300..1e300 in
magnitude, 3 chain links, 3 `:iterate` rounds. A search within them that SQLite still
refuses (its expression depth, ORDER BY terms, bound variables) is a SearchError too.
"""

from projections.fhir_store.errors import RebuildRequired, SearchError, StoreError
from projections.fhir_store.models import Rejection, SearchResult, StoredResource
from projections.fhir_store.store import FhirStore

__all__ = [
    "FhirStore",
    "RebuildRequired",
    "Rejection",
    "SearchError",
    "SearchResult",
    "StoreError",
    "StoredResource",
]
