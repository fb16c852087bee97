"""What intake publishes: the topics, message models and reasons (the AsyncAPI document is generated
from this, and a unit test fails when the pipeline publishes to a topic not declared here).

Published by the batch pipeline (canonical events and dead letters of consumed records) and by the HTTP
endpoints: `POST /v1/ehr/events` and the FHIR endpoint write accepted envelopes to the inbound topic and
rejected ones to the dead-letter topic; an admin's dead-letter replay re-submits raw records to the
inbound topic.
"""

from __future__ import annotations

from attune_shared import events as ev
from attune_shared.asyncapi import Output, outputs
from attune_shared.topics import Topics

OUTPUTS: tuple[Output, ...] = (
    *outputs(
        Topics.CARE,
        ev.CARE_EVENT_TYPES.values(),
        "A care event, pseudonymised (no MRN), keyed by client_ref, placed in its episode.",
    ),
    Output(
        Topics.CARE,
        ev.ResponseSubmitted,
        "A questionnaire response, pseudonymised, keyed by client_ref, in order with the care events.",
    ),
    Output(
        Topics.EHR_DLQ,
        ev.DeadLetter,
        "An inbound record intake rejected (consumed or sent over HTTP), keyed like the record.",
    ),
    Output(
        Topics.EHR_EVENTS,
        ev.EhrEnvelope,
        "An envelope accepted over HTTP (POST /v1/ehr/events, or mapped from a FHIR R4 resource), or a "
        "dead letter's raw record replayed by an admin.",
    ),
)
