"""The FHIR store's exceptions; the REST layer turns them into OperationOutcomes."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be opened or used as asked."""


class RebuildRequired(StoreError):
    """The store was built with other search definitions or schema: rebuild it."""


class SearchError(StoreError):
    """A search the store cannot answer: unknown or unsupported parameter, or a bad value.

    `param` names the offending parameter as the client sent it (an OperationOutcome
    `expression`); `message` says what was wrong. The API answers 400 with it.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


class OverBudget(StoreError):
    """A call stopped because it ran longer than its time budget (FhirStore.within)."""
