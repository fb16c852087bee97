"""Write (or check) docs/asyncapi/<service>.json from each service's code: its subscribers (create_app)
and the outputs it declares beside the code that publishes (`attune_<service>.outputs.OUTPUTS`)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from attune_cli.stack import ROOT, SERVICES
from attune_shared.asyncapi import Output, document

DOCS = ROOT / "docs" / "asyncapi"


def declared(service: str) -> tuple[Output, ...]:
    """What the service declares it publishes (its outputs.py)."""
    found: tuple[Output, ...] = importlib.import_module(f"attune_{service}.outputs").OUTPUTS
    return found


def generate(service: str) -> dict[str, Any]:
    """The service's AsyncAPI document, built from its create_app and its outputs (no connection is made)."""
    app = importlib.import_module(f"attune_{service}.app").create_app()
    return document(service, app.state.service.broker, app.description, declared(service))


def render(doc: dict[str, Any]) -> str:
    """Stable JSON text."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def write_all(target: Path = DOCS) -> list[Path]:
    """Write every service's document."""
    target.mkdir(parents=True, exist_ok=True)
    out = []
    for service in SERVICES:
        path = target / f"{service}.json"
        path.write_text(render(generate(service)))
        out.append(path)
    return out


def stale(target: Path = DOCS) -> list[str]:
    """Services whose committed document differs from the code's."""
    return [
        s
        for s in SERVICES
        if not (target / f"{s}.json").exists() or (target / f"{s}.json").read_text() != render(generate(s))
    ]
