"""Kafka topic names: the external ones are fixed by contract.md, the internal ones are the team's design."""

from typing import Final


class Topics:
    """Every topic Attune reads or writes."""

    EHR_EVENTS: Final = "ehr.events.v1"
    EHR_DLQ: Final = "ehr.events.dlq.v1"
    CARE: Final = "clinic.care.v1"
    MEASURES: Final = "clinic.measures.v1"
    ALERTS: Final = "clinic.alerts.v1"
    MEASURES_DLQ: Final = "clinic.measures.dlq.v1"
