"""The FHIR store: a projection of carelog.fhir.changes into SQLite (WAL), and its search.

(Full API documentation below is completed with the implementation.)
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
