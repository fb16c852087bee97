"""Every topic a service publishes to is declared in its outputs.py (from which docs/asyncapi is generated).

Two checks: a reading of each service's code for the topics of the records it builds (`OutRecord(topic,
...)`, the topic written inline or held in a name set from `settings.topic(Topics.X)`), and runs of
intake's and measures' pipelines against an in-memory broker and store. The contract's external topics are declared by the
services the contract says write them.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from attune_cli.asyncapi import declared
from attune_cli.stack import SERVICES
from attune_shared.asyncapi import topics
from attune_shared.topics import Topics
from tests.support.ehr import BASE, Ehr, encode
from tests.support.fakes import MemoryIntake
from tests.unit.measures_service.builders import srs, submitted
from tests.unit.measures_service.test_pipeline import MemoryBroker, make, records

# contract.md section 1: the external topics and the service that writes each.
CONTRACT_WRITERS = {
    Topics.EHR_EVENTS: "intake",  # "clinic EHR systems (and intake's HTTP endpoint)"
    Topics.EHR_DLQ: "intake",
    Topics.ALERTS: "alerts",
}


def _topic_names(node: ast.AST) -> Iterator[str]:
    """The `Topics.X` named in an expression, as topic names."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id == "Topics":
            yield getattr(Topics, sub.attr)


def _target(node: ast.AST) -> str | None:
    """`x` or `self.x` as the name it binds (the attribute's name for `self.x`)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def published_topics(service: str) -> dict[str, set[str]]:
    """Per module of the service, the topics of the records it builds for publishing."""
    package = Path(importlib.import_module(f"attune_{service}").__file__ or "").parent
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text())
        bound: dict[str, set[str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    pairs = [(t, node.value)]
                    if isinstance(t, ast.Tuple) and isinstance(node.value, ast.Tuple):
                        pairs = list(zip(t.elts, node.value.elts, strict=False))  # a, b = x(Topics.A), y(...)
                    for target, value in pairs:
                        topics_of = set(_topic_names(value))
                        if topics_of and (name := _target(target)):
                            bound.setdefault(name, set()).update(topics_of)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _target(node.func) == "OutRecord":
                given = [k.value for k in node.keywords if k.arg == "topic"]
                topic = node.args[0] if node.args else given[0]
                names = set(_topic_names(topic))
                if (name := _target(topic)) is not None:
                    names |= bound.get(name, set())
                assert names, f"{path}:{node.lineno}: cannot tell which topic this OutRecord is for"
                found.setdefault(path.name, set()).update(names)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_every_topic_the_code_publishes_to_is_declared(service: str) -> None:
    published = published_topics(service)
    missing = {
        m: sorted(t - topics(declared(service)))
        for m, t in published.items()
        if t - topics(declared(service))
    }
    assert not missing, f"{service} publishes to topics its outputs.py does not declare: {missing}"


def test_the_reading_finds_what_each_service_publishes() -> None:
    found = {s: set().union(*published_topics(s).values()) for s in SERVICES}
    assert found == {
        "intake": {Topics.CARE, Topics.EHR_DLQ, Topics.EHR_EVENTS},
        "measures": {Topics.MEASURES, Topics.MEASURES_DLQ},
        "alerts": {Topics.ALERTS},
        "reporting": set(),
    }


@pytest.mark.parametrize("service", SERVICES)
def test_nothing_is_declared_that_the_code_never_publishes(service: str) -> None:
    published = set().union(*published_topics(service).values())
    assert topics(declared(service)) == published


def test_the_contract_topics_are_declared_by_their_writers() -> None:
    for topic, service in CONTRACT_WRITERS.items():
        assert topic in topics(declared(service)), f"{service} writes {topic} (contract.md section 1)"


async def test_the_topics_intake_pipeline_publishes_to_are_declared() -> None:
    from attune_intake.pipeline import IntakePipeline
    from attune_intake.settings import IntakeSettings
    from attune_shared.kafka import Inbound

    broker = MemoryBroker([])
    pipeline = IntakePipeline(IntakeSettings(attune_name_prefix="u_"), broker, MemoryIntake())  # type: ignore[arg-type]
    ehr = Ehr()
    values = [encode(ehr.referred("north-01", "mrn-1", BASE)), b"not json {"]
    await pipeline.process(
        [
            Inbound(value=v, key=None, topic="u_ehr.events.v1", partition=0, offset=i)
            for i, v in enumerate(values)
        ]
    )
    sent = {t.removeprefix("u_") for t, _, _ in broker.sent}
    assert sent == {Topics.CARE, Topics.EHR_DLQ}
    assert sent <= topics(declared("intake"))


async def test_the_topics_measures_pipeline_publishes_to_are_declared() -> None:
    pipeline, broker, _, _ = make()
    await pipeline.process(records([b"not json {", submitted(srs("s1", 36, 0)).model_dump_json().encode()]))
    sent = {t.removeprefix("u_") for t, _, _ in broker.sent}
    assert sent == {Topics.MEASURES, Topics.MEASURES_DLQ}
    assert sent <= topics(declared("measures"))
