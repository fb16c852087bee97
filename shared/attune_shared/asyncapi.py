"""AsyncAPI documents generated from the services' code (FastStream), kept in docs/asyncapi/.

Each service's subscribers are registered by its create_app. What it publishes is declared beside the
code that publishes, as `OUTPUTS` in the service's `outputs.py` (a tuple of `Output`); the document
adds them as documentation-only publishers carrying the shared Pydantic models, so it shows every
message shape on every topic. `attune asyncapi` writes the files; unit tests keep them current and
check that every topic a service publishes to is declared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker


@dataclass(frozen=True, slots=True)
class Output:
    """One kind of message a service publishes."""

    topic: str
    """The topic's contract name (attune_shared.topics.Topics), before any ATTUNE_NAME_PREFIX."""
    schema: type[BaseModel]
    """The message's model (its JSON schema is the message's payload in the document)."""
    description: str
    """When and why the service publishes it."""


def outputs(topic: str, schemas: Iterable[type[BaseModel]], description: str) -> tuple[Output, ...]:
    """The same topic and description for several message models."""
    return tuple(Output(topic, schema, description) for schema in schemas)


def topics(declared: Iterable[Output]) -> set[str]:
    """The topics a service declares it publishes to."""
    return {o.topic for o in declared}


def document(
    service: str, broker: KafkaBroker, description: str, declared: Iterable[Output]
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of one service (its broker's subscribers plus its declared outputs)."""
    from faststream.specification import AsyncAPI

    for out in declared:
        name = out.schema.__name__
        summary = (out.schema.__doc__ or "").strip().splitlines()[0]
        broker.publisher(
            out.topic,
            title=f"{service}:{out.topic}:{name}",
            schema=out.schema,
            description=f"{name} ({summary}) {out.description}",
        )
    spec = AsyncAPI(
        broker, title=f"Attune {service}", version="0.1.0", description=description, schema_version="3.0.0"
    )
    doc: dict[str, Any] = json.loads(spec.to_specification().to_json())
    # Host names differ by environment; keep the document stable.
    doc.pop("servers", None)
    return doc
