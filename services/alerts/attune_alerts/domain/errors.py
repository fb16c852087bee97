"""Named business errors of the alert-rules domain; the service decides ack, retry or dead-letter."""


class AlertDomainError(ValueError):
    """Base class: input the alert rules cannot act on."""


class InvalidThresholds(AlertDomainError):
    """A threshold override names an unknown key or carries an unusable value."""


class UnknownSeverity(AlertDomainError):
    """A severity outside urgent, high and normal."""


class InvalidStateDocument(AlertDomainError):
    """A persisted episode-state document that cannot be read back."""
