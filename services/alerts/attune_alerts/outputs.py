"""What alerts publishes: the topics, message models and reasons (the AsyncAPI document is generated
from this, and a unit test fails when a topic alerts publishes to is not declared here).

Every alert change is published by ledger.py (for the consumer, the API and the sweeps alike).
"""

from __future__ import annotations

from attune_shared import events as ev
from attune_shared.asyncapi import Output
from attune_shared.topics import Topics

OUTPUTS: tuple[Output, ...] = (
    Output(
        Topics.ALERTS,
        ev.AlertEvent,
        "Published for the consumer, the API (acknowledge, resolve) and the sweeps (escalation, dropout) alike.",
    ),
)
