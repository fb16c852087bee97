"""What measures publishes: the topics, message models and reasons (the AsyncAPI document is generated
from this, and a unit test fails when the pipeline publishes to a topic not declared here).

All of it is published by pipeline.py, in one batch per consumed batch.
"""

from __future__ import annotations

from attune_measures.dead_letters import MeasuresDeadLetter
from attune_shared import events as ev
from attune_shared.asyncapi import Output, outputs
from attune_shared.topics import Topics

OUTPUTS: tuple[Output, ...] = (
    Output(
        Topics.MEASURES,
        ev.MeasureScored,
        "Every revision of a response's scores (a new response, an amendment, a recomputed series).",
    ),
    *outputs(
        Topics.MEASURES,
        ev.CARE_EVENT_TYPES.values(),
        "A care event forwarded unchanged, in order with the scores of the same client.",
    ),
    Output(
        Topics.MEASURES_DLQ,
        MeasuresDeadLetter,
        "A record of the care topic measures cannot read or score, keyed like the record.",
    ),
)
