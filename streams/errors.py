"""Errors of the log layer."""


class LogError(RuntimeError):
    """Talking to Kafka failed."""


class DeliveryFailed(LogError):
    """The broker did not confirm an event: it is not on the log and must not be acknowledged."""


class BrokerUnavailable(LogError):
    """No broker answered at the configured bootstrap address."""
