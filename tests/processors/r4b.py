"""Assert that a produced resource is valid FHIR: the fhir.resources R4B model, checked
directly, and carelog's required-binding checks."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from processors.validation import resource_issues


def assert_valid_r4b(resource: dict[str, Any]) -> None:
    model = get_fhir_model_class(resource["resourceType"])
    parsed = model.model_validate(resource)
    assert parsed.id == resource["id"]
    assert resource_issues(resource) == []
