"""AsyncAPI documents generated from the services' code (FastStream), kept in docs/asyncapi/.

Each service's subscribers are registered by its create_app; what it publishes is declared here as
documentation-only publishers carrying the shared Pydantic models, so the document shows every
message shape on every topic. `attune asyncapi` writes the files; a test keeps them current.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from attune_shared import events as ev
from attune_shared.topics import Topics

CARE = (
    ev.EpisodeOpened,
    ev.ClientReferred,
    ev.ClinicianAssigned,
    ev.AppointmentScheduled,
    ev.SessionAttended,
    ev.SessionMissed,
    ev.SessionCancelled,
    ev.EpisodeClosed,
)
OUTPUTS: dict[str, list[tuple[str, type[Any]]]] = {
    "intake": [
        *((Topics.CARE, m) for m in CARE),
        (Topics.CARE, ev.ResponseSubmitted),
        (Topics.EHR_DLQ, ev.DeadLetter),
    ],
    "measures": [(Topics.MEASURES, ev.MeasureScored), *((Topics.MEASURES, m) for m in CARE)],
    "alerts": [(Topics.ALERTS, ev.AlertEvent)],
    "reporting": [],
}


def document(service: str, broker: KafkaBroker, description: str) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of one service (its broker's subscribers plus its outputs)."""
    for topic, model in OUTPUTS[service]:
        name = model.__name__
        broker.publisher(
            topic,
            title=f"{service}:{topic}:{name}",
            schema=model,
            description=f"{name} ({(model.__doc__ or '').strip().splitlines()[0]})",
        )
    spec = AsyncAPI(
        broker, title=f"Attune {service}", version="0.1.0", description=description, schema_version="3.0.0"
    )
    doc: dict[str, Any] = json.loads(spec.to_specification().to_json())
    # Host names differ by environment; keep the document stable.
    doc.pop("servers", None)
    return doc
