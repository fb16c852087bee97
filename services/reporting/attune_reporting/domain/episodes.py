"""Per-episode facts (opened, closed, reason, attended count, last session, outcome, the client's
equity attributes), from facts alone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from attune_reporting.domain.facts import RUPTURE_RULE, UNASSIGNED, AlertFact, CareFact, MeasureFact
from attune_reporting.domain.months import month_of

OUTCOME_INSTRUMENTS: Final = ("ORS", "PHQ-9", "GAD-7")
LOW_DOSE_SESSIONS: Final = 4  # clinical-rules.md: low_dose = closed with fewer than 4 attended
PLANNED_CLOSURES: Final = frozenset({"planned", "mutual"})
_SESSION_KINDS: Final = frozenset({"scheduled", "attended", "missed", "cancelled"})
_ASSIGNING_KINDS: Final = frozenset({"assigned", "referred", "opened"})


@dataclass(frozen=True, slots=True)
class EpisodeSummary:
    """What reporting needs to know about one episode of care."""

    episode_id: str
    clinic_id: str
    client_ref: str
    clinician_id: str
    opened_on: date | None
    closed_on: date | None
    close_reason: str | None
    attended: int
    last_missed: bool  # the last session with a recorded outcome was missed or cancelled by the client
    outcome_measured: bool
    improved: bool
    deteriorated: bool
    appointments: tuple[tuple[str, str], ...]  # (appointment_id, modality), sorted
    months: tuple[str, ...]  # the cells holding this episode's facts (alerts' too)
    # The client's attributes at referral, for the equity view: each the latest referral (by
    # occurred_at) that sent it, so a late referral or a changed one re-attributes the whole episode.
    language: str | None = None  # primary language subtag, lower case
    interpreter: bool | None = None
    age_band: str | None = None
    ruptured: bool = False  # some alliance.rupture alert was raised in the episode
    # (appointment_id, month) of every fact that borrows its appointment's modality (a care fact
    # without one of its own, a measure), sorted: the months a change of that appointment touches.
    # None in a summary stored before it was kept (then every month is taken as touched).
    borrowers: tuple[tuple[str, str], ...] | None = None

    @property
    def opened_month(self) -> str | None:
        """Month the episode opened in (counts towards episodes_opened there)."""
        return month_of(self.opened_on) if self.opened_on else None

    @property
    def closed_month(self) -> str | None:
        """Month the episode closed in (its outcome and dropout figures count there)."""
        return month_of(self.closed_on) if self.closed_on else None

    def modality_of(self, appointment_id: str | None) -> str | None:
        """The modality of one of the episode's appointments, when known."""
        if appointment_id is None:
            return None
        return dict(self.appointments).get(appointment_id)

    @property
    def main_modality(self) -> str | None:
        """The modality most of the episode's appointments had (ties: in_person, video, phone);
        None without one. Episode figures (dropout, outcome, ruptures) borrow it in the equity view."""
        counts: dict[str, int] = {}
        for _, modality in self.appointments:
            counts[modality] = counts.get(modality, 0) + 1
        if not counts:
            return None
        order = ("in_person", "video", "phone")
        return max(counts, key=lambda m: (counts[m], -order.index(m) if m in order else -len(order)))

    @property
    def dropout_unilateral(self) -> bool:
        """Closed with reason unilateral."""
        return self.closed_on is not None and self.close_reason == "unilateral"

    @property
    def dropout_last_missed(self) -> bool:
        """Closed, last session missed (no-show, late cancel, client cancellation), not planned/mutual."""
        return self.closed_on is not None and self.last_missed and self.close_reason not in PLANNED_CLOSURES

    @property
    def dropout_low_dose(self) -> bool:
        """Closed with fewer than 4 attended sessions."""
        return self.closed_on is not None and self.attended < LOW_DOSE_SESSIONS


def _order(f: CareFact) -> tuple[datetime, str]:
    return f.occurred_at, f.fact_id


def _clinician(care: list[CareFact]) -> str:
    """The latest explicit assignment (assigned, referred or opened with a clinician), else the
    clinician of the latest session, else "unassigned"."""
    assigned = [f for f in care if f.kind in _ASSIGNING_KINDS and f.clinician_id]
    if assigned:
        return max(assigned, key=_order).clinician_id or UNASSIGNED
    sessions = [f for f in care if f.kind in _SESSION_KINDS and f.clinician_id]
    if sessions:
        return max(sessions, key=_order).clinician_id or UNASSIGNED
    return UNASSIGNED


def _last_missed(care: list[CareFact]) -> bool:
    """Was the last session (by scheduled start, else by when its outcome happened) missed?

    Only appointments with an outcome that involves the client count: attended, missed, or
    cancelled by the client. A cancellation by the clinician or the clinic is not the client's
    last session, and an appointment with no outcome yet tells nothing.
    """
    schedules: dict[str, CareFact] = {}
    outcomes: dict[str, CareFact] = {}
    for f in care:
        if f.appointment_id is None:
            continue
        if f.kind == "scheduled" and f.scheduled_start is not None:
            table = schedules
        elif f.kind in ("attended", "missed", "cancelled"):
            table = outcomes
        else:
            continue
        seen = table.get(f.appointment_id)
        if seen is None or _order(f) > _order(seen):
            table[f.appointment_id] = f
    scheduled_at = {appt: f.scheduled_start for appt, f in schedules.items()}
    candidates = [
        (scheduled_at.get(appt) or out.occurred_at, appt, out)
        for appt, out in outcomes.items()
        if out.kind != "cancelled" or out.cancelled_by == "client"
    ]
    if not candidates:
        return False
    _, _, last = max(candidates, key=lambda c: (c[0], c[1]))
    return last.kind == "missed" or (last.kind == "cancelled" and last.cancelled_by == "client")


def _outcome(measures: list[MeasureFact]) -> tuple[bool, bool, bool]:
    """(measured, improved, deteriorated) from the latest change flags per outcome instrument.

    improved: some instrument's latest score is a reliable improvement and none is a reliable
    deterioration; deteriorated: some instrument's latest score is a reliable deterioration.
    """
    latest: dict[str, MeasureFact] = {}
    for m in measures:
        if m.instrument not in OUTCOME_INSTRUMENTS or m.reliable_improvement is None:
            continue
        seen = latest.get(m.instrument)
        if seen is None or (m.session_at, m.occurred_at, m.fact_id) > (
            seen.session_at,
            seen.occurred_at,
            seen.fact_id,
        ):
            latest[m.instrument] = m
    worse = any(m.reliable_deterioration for m in latest.values())
    better = any(m.reliable_improvement for m in latest.values())
    return bool(latest), better and not worse, worse


def _latest(referrals: list[CareFact], name: str) -> object:
    """The attribute `name` of the latest referral that sent it (None when none did)."""
    sent = [f for f in referrals if getattr(f, name) is not None]
    return getattr(max(sent, key=_order), name) if sent else None


def summarize(
    episode_id: str,
    care: Iterable[CareFact],
    measures: Iterable[MeasureFact],
    alerts: Iterable[AlertFact] = (),
) -> EpisodeSummary | None:
    """The episode's summary from all of its facts; None when it has none."""
    care_list = sorted((f for f in care if f.episode_id == episode_id), key=_order)
    measure_list = sorted((m for m in measures if m.episode_id == episode_id), key=lambda m: m.fact_id)
    alert_list = sorted((a for a in alerts if a.episode_id == episode_id), key=lambda a: a.fact_id)
    anchor: CareFact | MeasureFact | AlertFact | None = None
    for found in (care_list, measure_list, alert_list):
        if found:
            anchor = found[0]
            break
    if anchor is None:
        return None
    referrals = [f for f in care_list if f.kind == "referred"]
    interpreter = _latest(referrals, "interpreter")
    opened = [f for f in care_list if f.kind == "opened" and f.day is not None]
    closed = [f for f in care_list if f.kind == "closed" and f.day is not None]
    first_close = min(closed, key=_order) if closed else None
    modality: dict[str, tuple[tuple[datetime, str], str]] = {}
    for f in care_list:
        if f.appointment_id and f.modality:
            seen = modality.get(f.appointment_id)
            if seen is None or _order(f) > seen[0]:
                modality[f.appointment_id] = (_order(f), f.modality)
    measured, improved, deteriorated = _outcome(measure_list)
    return EpisodeSummary(
        episode_id=episode_id,
        clinic_id=anchor.clinic_id,
        client_ref=anchor.client_ref,
        clinician_id=_clinician(care_list),
        opened_on=min(f.day for f in opened if f.day is not None) if opened else None,
        closed_on=first_close.day if first_close else None,
        close_reason=first_close.reason if first_close else None,
        attended=len({f.appointment_id or f.fact_id for f in care_list if f.kind == "attended"}),
        last_missed=_last_missed(care_list),
        outcome_measured=measured,
        improved=improved,
        deteriorated=deteriorated,
        appointments=tuple(sorted((appt, m) for appt, (_, m) in modality.items())),
        months=tuple(
            sorted(
                {f.month for f in care_list} | {m.month for m in measure_list} | {a.month for a in alert_list}
            )
        ),
        language=str(_latest(referrals, "language") or "") or None,
        interpreter=interpreter if isinstance(interpreter, bool) else None,
        age_band=str(_latest(referrals, "age_band") or "") or None,
        ruptured=any(a.rule_id == RUPTURE_RULE for a in alert_list),
        borrowers=tuple(
            sorted(
                {(f.appointment_id, f.month) for f in care_list if f.appointment_id and f.modality is None}
                | {(m.appointment_id, m.month) for m in measure_list if m.appointment_id}
            )
        ),
    )
