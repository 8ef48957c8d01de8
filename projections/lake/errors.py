"""Errors of the Delta Lake sink."""


class LakeError(RuntimeError):
    """The lake could not be read or written."""


class ViewDefinitionError(LakeError):
    """A ViewDefinition is malformed or uses something carelog cannot evaluate."""


class ViewEvaluationError(LakeError):
    """A ViewDefinition failed on one resource (e.g. several values in a single-valued column)."""
