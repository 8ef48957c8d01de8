"""Errors raised while encoding or decoding carelog events."""


class CodecError(ValueError):
    """An event could not be encoded or decoded."""


class UnknownFingerprint(CodecError):
    """The writer schema's fingerprint is not in the catalogue (schemas/avro/)."""


class CorruptEvent(CodecError):
    """The bytes are not a valid Avro single-object encoded carelog event."""
