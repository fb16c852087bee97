"""QuestionnaireResponse: which instrument it is, and its item scores in published order. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from attune_intake.domain.fhir.config import SourceConfig
from attune_intake.domain.fhir.loinc import ANSWERS, IGNORED, LOINC, ORDINAL_EXTENSIONS, PANEL_ITEMS, PANELS
from attune_intake.domain.fhir.resolve import Unusable, seq, text

_LOINC_CODE = re.compile(r"^[0-9]{1,7}-[0-9]$")
_INSTRUMENTS = ("WAI-SR", "SRS", "ORS", "PHQ-9", "GAD-7", "PSQ")


@dataclass(frozen=True, slots=True)
class Leaf:
    """One answerable item of the response: its FHIRPath, the codes naming it, its answers."""

    path: str
    link_id: str
    names: tuple[str, ...]
    answers: list[Any]


def _leaves(items: Any, path: str) -> list[Leaf]:
    out: list[Leaf] = []
    if not isinstance(items, list):
        return out
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        here = f"{path}.item[{i}]"
        link = text(item.get("linkId"))
        answers = seq(item.get("answer"))
        names = [link.rstrip("/").rsplit("/", 1)[-1]] if link else []
        names += [
            c["code"]
            for c in item.get("code", [])
            if isinstance(c, dict) and isinstance(c.get("code"), str) and c.get("system") in (None, LOINC)
        ]
        definition = item.get("definition")
        if isinstance(definition, str):
            names.append(re.split(r"[/#]", definition)[-1])
        if answers or not item.get("item"):
            out.append(Leaf(here, link, tuple(names), answers))
        out.extend(_leaves(item.get("item"), here))
        for j, answer in enumerate(answers):
            if isinstance(answer, dict):
                out.extend(_leaves(answer.get("item"), f"{here}.answer[{j}]"))
    return out


def instrument(resource: dict[str, Any], config: SourceConfig) -> str:
    """The instrument: a configured canonical URL, else a LOINC panel (canonical or top-level item)."""
    canonical = resource.get("questionnaire")
    url = canonical.split("|", 1)[0] if isinstance(canonical, str) else None
    if url and url in config.questionnaires:
        name = config.questionnaires[url]
        if name in _INSTRUMENTS:
            return name
    if url:
        tail = re.split(r"[/#]", url.rstrip("/"))[-1]
        if tail in PANELS:
            return PANELS[tail]
    top = seq(resource.get("item"))
    for item in top:
        if isinstance(item, dict):
            names = [str(item.get("linkId", "")).strip("/")]
            names += [str(c.get("code")) for c in seq(item.get("code")) if isinstance(c, dict)]
            for name in names:
                if name in PANELS:
                    return PANELS[name]
    # No panel named anywhere: the panel whose item codes the answers carry.
    answered = {n for leaf in _leaves(top, "QuestionnaireResponse") if leaf.answers for n in leaf.names}
    hits = {name: len(answered & set(order)) for name, order in PANEL_ITEMS.items()}
    best = max(hits, key=lambda name: hits[name])
    if hits[best] > 0:
        return best
    raise Unusable(
        "QuestionnaireResponse.questionnaire",
        "not a questionnaire Attune scores (PHQ-9 44249-1, GAD-7 69737-5, or a configured canonical URL)",
        code="not-supported",
    )


def value(answer: Any, path: str) -> float | int:
    """An answer's number: valueInteger, valueDecimal, a LOINC LL358-3 coding or an ordinal extension."""
    if not isinstance(answer, dict):
        raise Unusable(path, "the answer is not an object")
    if isinstance(answer.get("valueInteger"), int):
        return int(answer["valueInteger"])
    if isinstance(answer.get("valueDecimal"), int | float):
        return answer["valueDecimal"]
    coding = answer.get("valueCoding")
    if isinstance(coding, dict):
        for ext in coding.get("extension", []):
            if isinstance(ext, dict) and ext.get("url") in ORDINAL_EXTENSIONS:
                found = ext.get("valueDecimal", ext.get("valueInteger"))
                if isinstance(found, int | float):
                    return found
        if coding.get("system") in (None, LOINC) and coding.get("code") in ANSWERS:
            return ANSWERS[coding["code"]]
        raise Unusable(
            f"{path}.valueCoding", "a coding outside LOINC's LL358-3 with no ordinalValue extension"
        )
    raise Unusable(path, "the answer is not valueInteger, valueDecimal or valueCoding")


def items(resource: dict[str, Any], name: str) -> tuple[list[float | int | None], list[str]]:
    """The item scores in published order, and each item's FHIRPath (for errors about item i)."""
    leaves = _leaves(resource.get("item"), "QuestionnaireResponse")
    if name in PANEL_ITEMS:
        order = PANEL_ITEMS[name]
        scores: list[float | int | None] = [None] * len(order)
        paths = ["QuestionnaireResponse.item"] * len(order)
        seen: set[int] = set()
        for leaf in leaves:
            loinc = [n for n in leaf.names if _LOINC_CODE.match(n)]
            if not loinc or not leaf.answers:
                continue  # display items, hidden helpers: read past
            hit = next((n for n in loinc if n in order), None)
            if hit is None:
                if any(n in IGNORED or n in PANELS for n in loinc):
                    continue
                raise Unusable(f"{leaf.path}.linkId", f"LOINC {loinc[0]} is not an item of {name}")
            index = order.index(hit)
            if index in seen:
                raise Unusable(f"{leaf.path}.linkId", f"LOINC {hit} is answered twice")
            seen.add(index)
            scores[index] = value(leaf.answers[0], f"{leaf.path}.answer[0]")
            paths[index] = f"{leaf.path}.answer[0]"
        if not seen and not any(_LOINC_CODE.match(n) for leaf in leaves for n in leaf.names):
            return _in_order(leaves)  # a form without LOINC codes, configured by its canonical URL
        if name == "PHQ-9" and 9 not in seen:
            scores, paths = scores[:9], paths[:9]  # the difficulty item is optional
        return scores, paths
    return _in_order(leaves)


def _in_order(leaves: list[Leaf]) -> tuple[list[float | int | None], list[str]]:
    """Instruments without LOINC codes: the answerable items in document order."""
    answerable = [leaf for leaf in leaves if leaf.answers or leaf.link_id]
    scores = [
        value(leaf.answers[0], f"{leaf.path}.answer[0]") if leaf.answers else None for leaf in answerable
    ]
    return scores, [f"{leaf.path}.answer[0]" for leaf in answerable]
