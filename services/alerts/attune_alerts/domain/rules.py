"""The alert rules' entry points: each takes the episode state and returns (new state, decisions)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from attune_alerts.domain.common import compact, resolve_alert
from attune_alerts.domain.decisions import Decision
from attune_alerts.domain.deterioration import apply_deterioration
from attune_alerts.domain.dropout import apply_session, sweep_inactivity, sync_dropout_severity
from attune_alerts.domain.errors import AlertDomainError
from attune_alerts.domain.inputs import CareEvent, Measure
from attune_alerts.domain.not_on_track import apply_not_on_track
from attune_alerts.domain.psq import apply_psq
from attune_alerts.domain.rupture import apply_alliance
from attune_alerts.domain.safety import apply_safety
from attune_alerts.domain.state import EpisodeState, RuptureClosure
from attune_alerts.domain.texts import RUPTURE
from attune_alerts.domain.thresholds import AlertThresholds

RESOLUTIONS = frozenset({"repaired", "re_engaged", "episode_ended", "addressed", "false_positive"})


def on_measure(
    state: EpisodeState, measure: Measure, thresholds: AlertThresholds, now: datetime
) -> tuple[EpisodeState, list[Decision]]:
    """Apply one scored response; a replayed or older revision of a response is a no-op.

    A revision above the one already applied is an amendment: alerts that depended on the response
    are re-judged. After the episode has closed only the safety rule still raises (an item-9 answer
    must never go unseen); the other rules serve ongoing treatment and stay quiet.
    """
    applied = state.applied.get(measure.response_id)
    if applied is not None and measure.revision <= applied:
        return state, []
    amended = measure.superseded or applied is not None
    state = replace(state, applied={**state.applied, measure.response_id: measure.revision})
    decisions: list[Decision] = []
    for rule in (apply_safety, apply_deterioration, apply_not_on_track, apply_alliance, apply_psq):
        state, produced = rule(state, measure, thresholds, now, amended=amended)
        decisions.extend(produced)
    state, produced = sync_dropout_severity(state, now, thresholds)
    return state, compact([*decisions, *produced])


def on_care(
    state: EpisodeState, event: CareEvent, thresholds: AlertThresholds, now: datetime
) -> tuple[EpisodeState, list[Decision]]:
    """Apply one care event: session outcomes drive dropout risk; closure resolves every open alert."""
    if event.kind == "closed":
        return close_episode(state, event, now)
    if event.kind == "opened":
        return replace(state, episode_open=True), []
    if event.kind in {"attended", "missed", "cancelled"}:
        state, decisions = apply_session(state, event, thresholds, now)
        return state, compact(decisions)
    raise AlertDomainError(f"unknown care event kind {event.kind!r}")


def on_inactivity_sweep(
    state: EpisodeState, now: datetime, thresholds: AlertThresholds
) -> tuple[EpisodeState, list[Decision]]:
    """The periodic check: dropout risk after N days without an attended session."""
    return sweep_inactivity(state, now, thresholds)


def close_episode(
    state: EpisodeState, event: CareEvent, now: datetime
) -> tuple[EpisodeState, list[Decision]]:
    """Resolve every open alert `episode_ended` (a rupture so closed counts as unrepaired)."""
    decisions: list[Decision] = []
    for rule_id in sorted(state.open_alerts):
        evidence: dict[str, object] = {"close_reason": event.close_reason}
        if rule_id == RUPTURE:
            evidence["unrepaired"] = True
        state, resolved = resolve_alert(state, rule_id, "episode_ended", evidence, now)
        decisions.append(resolved)
    return replace(state, episode_open=False), decisions


def on_person_resolved(state: EpisodeState, rule_id: str, resolution: str, now: datetime) -> EpisodeState:
    """Forget an alert a person resolved, so the next trigger raises a new one.

    A rupture a person resolves counts as repaired only with resolution `repaired`; `false_positive`
    means there was no rupture and is not remembered; anything else counts as unrepaired for the
    dropout-risk severity rule.
    """
    if resolution not in RESOLUTIONS:
        raise AlertDomainError(f"unknown resolution {resolution!r}")
    if state.alert(rule_id) is None:
        return state
    state = state.without_alert(rule_id)
    if rule_id == RUPTURE and resolution != "false_positive":
        state = state.with_rupture_closure(RuptureClosure(now, repaired=resolution == "repaired"))
    return state
