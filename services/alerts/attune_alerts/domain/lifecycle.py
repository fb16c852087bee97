"""An alert's lifecycle as pure functions: rule decisions and person actions -> the next alert + its event.

Every change bumps the alert's `sequence` by one and is published as one AlertEvent whose id is
derived from (alert_id, event_type, sequence), so re-deriving the same change re-derives the same id.
The alert_id itself is derived from (episode_id, rule_id, id of the input event that raised it), or
from the Raise's own `key` when the rule names the alert by several inputs (see `Raise`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from attune_alerts.domain.decisions import Raise, Resolve, Update
from attune_shared.events import Alert, AlertEvent
from attune_shared.ids import derived_id

PERSON_RESOLUTIONS = frozenset({"addressed", "false_positive"})
MAX_NOTE_CHARS = 2000


class InvalidTransition(ValueError):
    """A person action the alert's current status does not allow (the API answers 409)."""


@dataclass(frozen=True, slots=True)
class EpisodeContext:
    """Who an episode's alerts are about and for: pseudonymous ids only."""

    episode_id: str
    clinic_id: str
    client_ref: str
    clinician_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as the service keeps it: the contract's Alert plus bookkeeping that is never published.

    `notes` are a person's free text: kept for the clinic's leads, never put on an event or a webhook.
    """

    alert: Alert
    sequence: int
    origin_event_id: str
    tracking: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[Mapping[str, Any], ...] = ()
    resolved_by: str | None = None

    @property
    def alert_id(self) -> str:
        """The alert's id."""
        return self.alert.alert_id

    @property
    def is_open(self) -> bool:
        """Open or acknowledged: not yet resolved."""
        return self.alert.status != "resolved"


def now_ms() -> datetime:
    """The wall clock in UTC, truncated to milliseconds (what BSON dates keep), so stored == published."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def utc_ms(at: datetime) -> datetime:
    """A time as the store gives it back: UTC, truncated to milliseconds (BSON dates keep no offset and
    no microseconds). The times of processing on an alert are so written, so an event built from an
    alert read back from the store has the very bytes of one built from the alert still in memory."""
    at = at.astimezone(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def as_raised(stored: StoredAlert) -> StoredAlert:
    """An alert read back from the store, with `triggered_at` as it was raised.

    `triggered_at` is the EHR's time with the clinic's offset (reporting counts the alert in that
    month of the clinic's wall clock); the store's dates come back in UTC to the millisecond, so an
    event built from the stored alert would carry other bytes (and maybe another month) than one
    built from the alert in memory. The time as raised is kept in `tracking` and put back here.
    """
    raised = stored.tracking.get("triggered_at")
    if raised is None or stored.alert.triggered_at is None:
        return stored
    at = datetime.fromisoformat(raised)
    if at.isoformat() == stored.alert.triggered_at.isoformat():
        return stored
    return replace(stored, alert=stored.alert.model_copy(update={"triggered_at": at}))


def alert_id_for(episode_id: str, rule_id: str, origin_event_id: str) -> str:
    """The id of the alert a rule raises on an input event: a replay of that input re-derives it."""
    return derived_id("alert", episode_id, rule_id, origin_event_id)


def raised_alert_id(episode_id: str, d: Raise, origin_event_id: str) -> str:
    """The id of the alert a Raise opens on an input event: by the Raise's `key` when it has one (the
    same whichever of the inputs it names raised it), else by that input."""
    return alert_id_for(episode_id, d.rule_id, d.key if d.key is not None else origin_event_id)


def event_id_for(alert_id: str, event_type: str, sequence: int) -> str:
    """The id of the alert's `sequence`-th event."""
    return derived_id("alert-event", alert_id, event_type, str(sequence))


def jsonable(value: Any) -> Any:
    """Evidence as plain JSON values (tuples to lists, datetimes to RFC 3339)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [jsonable(v) for v in items]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _next(cur: StoredAlert, **changes: Any) -> StoredAlert:
    data = cur.alert.model_dump()
    data.update(changes)
    return replace(cur, alert=Alert.model_validate(data), sequence=cur.sequence + 1)


def _rule_evidence(cur: StoredAlert, evidence: Mapping[str, Any]) -> dict[str, Any]:
    """New evidence from a rule, keeping the rule version and thresholds recorded at raise."""
    kept = {k: cur.alert.evidence[k] for k in ("rule_version", "thresholds_used") if k in cur.alert.evidence}
    return {**jsonable(evidence), **kept}


def raised(
    ctx: EpisodeContext,
    d: Raise,
    *,
    origin_event_id: str,
    at: datetime,
    tracking: Mapping[str, Any] | None = None,
    triggered_at: datetime | None = None,
) -> StoredAlert:
    """The new alert a Raise decision opens (sequence 1); `triggered_at` unless the Raise sets its own."""
    if d.triggered_at is not None:
        triggered_at = d.triggered_at
    evidence = {
        **jsonable(d.evidence),
        "rule_version": d.rule_version,
        "thresholds_used": jsonable(d.thresholds_used),
    }
    alert = Alert(
        alert_id=raised_alert_id(ctx.episode_id, d, origin_event_id),
        clinic_id=ctx.clinic_id,
        clinician_id=ctx.clinician_id,
        client_ref=ctx.client_ref,
        episode_id=ctx.episode_id,
        rule_id=d.rule_id,
        rule_version=d.rule_version,
        severity=d.severity,  # type: ignore[arg-type]
        status="open",
        title=d.title,
        evidence=evidence,
        suggested_action=d.suggested_action,
        raised_at=utc_ms(at),
        triggered_at=triggered_at,
    )
    kept = dict(tracking or {})
    if triggered_at is not None:
        kept["triggered_at"] = triggered_at.isoformat()  # see as_raised
    return StoredAlert(alert, 1, origin_event_id, kept)


def updated(cur: StoredAlert, d: Update) -> StoredAlert | None:
    """New evidence (and maybe severity) on an unresolved alert; None when it is already resolved."""
    if not cur.is_open:
        return None
    changes: dict[str, Any] = {"evidence": _rule_evidence(cur, d.evidence)}
    if d.severity is not None:
        changes["severity"] = d.severity
    return _next(cur, **changes)


def resolved_by_rule(
    cur: StoredAlert, d: Resolve, *, at: datetime, extra: Mapping[str, Any] | None = None
) -> StoredAlert | None:
    """A rule resolves the alert; its evidence keeps what it had plus `resolution_evidence`."""
    if not cur.is_open:
        return None
    evidence = {
        **cur.alert.evidence,
        "resolution_evidence": jsonable({**d.evidence, **(extra or {})}),
    }
    nxt = _next(cur, status="resolved", resolution=d.resolution, resolved_at=utc_ms(at), evidence=evidence)
    return replace(nxt, resolved_by="rules")


def _note(action: str, by: str, at: datetime, note: str | None) -> tuple[Mapping[str, Any], ...]:
    if not note:
        return ()
    return ({"action": action, "by": by, "at": at, "note": note[:MAX_NOTE_CHARS]},)


def acknowledged(cur: StoredAlert, *, by: str, at: datetime, note: str | None = None) -> StoredAlert:
    """open -> acknowledged, by a person."""
    if cur.alert.status != "open":
        raise InvalidTransition(f"alert is {cur.alert.status}; only an open alert can be acknowledged")
    nxt = _next(cur, status="acknowledged", acknowledged_at=utc_ms(at), acknowledged_by=by)
    return replace(nxt, notes=(*cur.notes, *_note("acknowledge", by, at, note)))


def resolved_by_person(
    cur: StoredAlert, *, resolution: str, by: str, at: datetime, note: str | None = None
) -> StoredAlert:
    """acknowledged -> resolved, by a person, `addressed` or `false_positive`."""
    if resolution not in PERSON_RESOLUTIONS:
        raise InvalidTransition(f"a person resolves with addressed or false_positive, not {resolution!r}")
    if cur.alert.status != "acknowledged":
        raise InvalidTransition(
            f"alert is {cur.alert.status}; acknowledge it first, then resolve it (open -> acknowledged -> resolved)"
            if cur.alert.status == "open"
            else "alert is already resolved"
        )
    nxt = _next(cur, status="resolved", resolution=resolution, resolved_at=utc_ms(at))
    return replace(nxt, resolved_by=by, notes=(*cur.notes, *_note("resolve", by, at, note)))


def escalated(cur: StoredAlert, *, level: int) -> StoredAlert | None:
    """The alert's escalation level raised to `level`; None when it no longer applies."""
    if cur.alert.status != "open" or cur.alert.escalation_level >= level:
        return None
    return _next(cur, escalation_level=level)


def alert_event(stored: StoredAlert, event_type: str, at: datetime) -> AlertEvent:
    """The event announcing the alert's current state (its `sequence`-th change)."""
    return AlertEvent(
        event_id=event_id_for(stored.alert_id, event_type, stored.sequence),
        event_type=event_type,  # type: ignore[arg-type]
        occurred_at=utc_ms(at),
        alert=stored.alert,
    )
