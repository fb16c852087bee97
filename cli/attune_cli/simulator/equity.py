"""The equity view's figures (clinical-rules.md, "Equity view"; docs/equity.md) from the simulated events.

Computed here from the events and the truth's own episodes and alerts, never from the services: per
dimension (language, interpreter, age band, modality) and stratum, and for the whole network, over the
report's period (whole months, from the start's month to the last month that began before as_of).

- A fact counts under its episode's client attributes: the latest referral of the episode that sent
  each (language: primary subtag, lower case; interpreter: yes/no; age band: the referral year minus
  the birth year, <18, 18-25, 26-40, 41-64, 65+), `unknown` when none did.
- Modality: a session's own; an alliance response's appointment's; episode-wide figures (closures,
  dropout, outcome, ruptures) the modality most of the episode's appointments had (ties: in person,
  video, phone), `unknown` without one.
- Sessions count in the month they happened, responses in their session's month, closures in the
  month of closed_on, rupture alerts in the month they were raised (wall clock of the clinic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from attune_cli.simulator.ledger import RUPTURE
from attune_cli.simulator.model import ClientTruth, EpisodeTruth
from attune_cli.simulator.scoring import HIGHER_IS_BETTER, RELIABLE_CHANGE, score
from attune_cli.simulator.timeline import SimEvent

DIMENSIONS: Final = ("language", "interpreter", "age_band", "modality")
UNKNOWN: Final = "unknown"
AGE_BANDS: Final = ((65, "65+"), (41, "41-64"), (26, "26-40"), (18, "18-25"), (0, "<18"))
MODALITIES: Final = ("in_person", "video", "phone")
FIXED: Final = {
    "interpreter": ("yes", "no", UNKNOWN),
    "age_band": ("<18", "18-25", "26-40", "41-64", "65+", UNKNOWN),
    "modality": (*MODALITIES, UNKNOWN),
}
OUTCOMES: Final = ("ORS", "PHQ-9", "GAD-7")
DECIMALS: Final = 4  # reporting's rounding of rates and means
COUNTS: Final = (
    "sessions_attended",
    "sessions_missed",
    "wai_sr_responses",
    "srs_responses",
    "ruptures_raised",
    "ruptures_repaired",
    "ruptures_unrepaired",
    "episodes_closed",
    "episodes_ruptured",
    "dropout_unilateral",
    "dropout_last_missed",
    "dropout_low_dose",
    "outcome_measured",
    "reliable_improvement",
)
RATES: Final = (
    ("attendance_rate", "sessions_attended", ("sessions_attended", "sessions_missed")),
    ("repair_rate", "ruptures_repaired", ("ruptures_repaired", "ruptures_unrepaired")),
    ("rupture_rate", "episodes_ruptured", ("episodes_closed",)),
    ("dropout_unilateral_rate", "dropout_unilateral", ("episodes_closed",)),
    ("dropout_last_missed_rate", "dropout_last_missed", ("episodes_closed",)),
    ("dropout_low_dose_rate", "dropout_low_dose", ("episodes_closed",)),
    ("reliable_improvement_rate", "reliable_improvement", ("outcome_measured",)),
)
MEANS: Final = (
    ("wai_sr_mean", "wai_sr_responses", "wai_sum"),
    ("srs_total_mean", "srs_responses", "srs_sum"),
)
FIGURES: Final = (*COUNTS, *(r[0] for r in RATES), *(m[0] for m in MEANS))


def month(value: date | datetime) -> str:
    """YYYY-MM of a date, or of a datetime on its own (the clinic's) wall clock."""
    return f"{value.year:04d}-{value.month:02d}"


def age_band(birth_year: int | None, referred_on: date) -> str:
    """The band of the age reached in the referral's year; unknown without a year or with a later one."""
    if birth_year is None or birth_year > referred_on.year:
        return UNKNOWN
    age = referred_on.year - birth_year
    return next(name for floor, name in AGE_BANDS if age >= floor)


@dataclass
class Cell:
    """One stratum's counters and sums."""

    n: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    s: dict[str, float] = field(default_factory=lambda: {"wai_sum": 0.0, "srs_sum": 0.0})

    def figures(self) -> dict[str, Any]:
        """Counts, rates (rounded as reporting rounds them) and unrounded means."""
        out: dict[str, Any] = dict(self.n)
        for name, part, whole in RATES:
            n = sum(self.n[w] for w in whole)
            out[name] = round(self.n[part] / n, DECIMALS) + 0.0 if n else None
        for name, count, total in MEANS:
            out[name] = self.s[total] / self.n[count] if self.n[count] else None
        return out


@dataclass
class _Episode:
    attrs: tuple[str, str, str]  # language, interpreter, age band
    main_modality: str
    modality_of: dict[str, str]  # appointment_id -> modality
    measured: bool
    improved: bool


def _episode(events: list[SimEvent]) -> _Episode:
    referrals = sorted((e for e in events if e.event_type == "client.referred"), key=lambda e: e.at)

    def latest(name: str) -> Any:
        sent = [e.payload[name] for e in referrals if e.payload.get(name) is not None]
        return sent[-1] if sent else None

    language = latest("preferred_language")
    interpreter = latest("interpreter_needed")
    band = UNKNOWN
    with_year = [e for e in referrals if e.payload.get("birth_year") is not None]
    if with_year:
        last = with_year[-1].payload
        band = age_band(int(last["birth_year"]), date.fromisoformat(last["referred_on"]))
    attrs = (
        language.split("-", 1)[0].lower() if language else UNKNOWN,
        UNKNOWN if interpreter is None else ("yes" if interpreter else "no"),
        band,
    )
    modality_of: dict[str, str] = {}
    for e in sorted(events, key=lambda e: e.at):
        if e.event_type in ("appointment.scheduled", "session.attended", "session.missed"):
            modality_of[e.payload["appointment_id"]] = e.payload["modality"]
    counts = {m: list(modality_of.values()).count(m) for m in MODALITIES}
    main = max(MODALITIES, key=lambda m: (counts[m], -MODALITIES.index(m))) if modality_of else UNKNOWN
    measured, improved = _outcome(events)
    return _Episode(attrs, main, modality_of, measured, improved)


def _outcome(events: list[SimEvent]) -> tuple[bool, bool]:
    """(measured, improved): some outcome instrument was scored (the intake's own change from intake,
    0, counts, as measures sends one with every score); some instrument's latest change is a reliable
    improvement and none a reliable deterioration (the rules' thresholds, >=)."""
    starts = {
        e.payload["appointment_id"]: datetime.fromisoformat(e.payload["scheduled_start"])
        for e in events
        if e.event_type == "appointment.scheduled"
    }
    series: dict[str, list[tuple[datetime, float]]] = {}
    for e in events:
        p = e.payload
        if (
            e.event_type == "questionnaire.completed"
            and p["instrument"] in OUTCOMES
            and p["status"] == "completed"
        ):
            at = starts.get(p.get("appointment_id") or "", e.at)
            series.setdefault(p["instrument"], []).append(
                (at, score(p["instrument"], list(p["items"])).value)
            )
    better, worse = False, False
    measured = False
    for name, points in series.items():
        points.sort(key=lambda p: p[0])
        measured = True
        change = round(points[-1][1] - points[0][1], 6)
        gain = change if name in HIGHER_IS_BETTER else -change
        better |= gain >= RELIABLE_CHANGE[name]
        worse |= -gain >= RELIABLE_CHANGE[name]
    return measured, better and not worse


def period_months(start: date, as_of: datetime) -> tuple[str, str]:
    """The report's period: the start's month to the last month that began before as_of."""
    last = as_of.date()
    if last.day == 1:
        last = date(last.year - 1, 12, 1) if last.month == 1 else date(last.year, last.month - 1, 1)
    return month(start), month(last)


def equity(
    clients: Sequence[tuple[ClientTruth, list[SimEvent]]], start: date, as_of: datetime
) -> dict[str, Any]:
    """The equity view's figures per dimension and stratum, and the total, over the report's period."""
    first, last = period_months(start, as_of)
    cells: dict[tuple[str, str], Cell] = {}
    total = Cell()

    def add(attrs: tuple[str, str, str], modality: str) -> list[Cell]:
        keys = [*zip(DIMENSIONS, (*attrs, modality), strict=True)]
        return [total, *(cells.setdefault(k, Cell()) for k in keys)]

    def inside(value: date | datetime) -> bool:
        return first <= month(value) <= last

    for client, events in clients:
        amended = {
            e.payload["response_id"]: e.payload["items"]
            for e in events
            if e.event_type == "questionnaire.completed" and e.payload["status"] == "amended"
        }
        for ep in client.episodes:
            mine = [e for e in events if e.episode == ep.episode]
            info = _episode(mine)
            starts = {
                e.payload["appointment_id"]: datetime.fromisoformat(e.payload["scheduled_start"])
                for e in mine
                if e.event_type == "appointment.scheduled"
            }
            for e in mine:
                p = e.payload
                if e.event_type in ("session.attended", "session.missed") and inside(e.at):
                    name = "sessions_attended" if e.event_type == "session.attended" else "sessions_missed"
                    for c in add(info.attrs, p["modality"]):
                        c.n[name] += 1
                elif (
                    e.event_type == "questionnaire.completed"
                    and p["status"] == "completed"
                    and p["respondent"] == "client"
                    and p["instrument"] in ("WAI-SR", "SRS")
                ):
                    appointment = p.get("appointment_id")
                    session_at = starts.get(appointment or "", e.at)
                    if not inside(session_at):
                        continue
                    value = score(p["instrument"], list(amended.get(p["response_id"], p["items"]))).value
                    modality = info.modality_of.get(appointment or "", UNKNOWN)
                    count, total_name = ("wai_sr_responses", "wai_sum")
                    if p["instrument"] == "SRS":
                        count, total_name = ("srs_responses", "srs_sum")
                    for c in add(info.attrs, modality):
                        c.n[count] += 1
                        c.s[total_name] += value
            ruptures = [a for a in client.expected_alerts if a.episode == ep.episode and a.rule_id == RUPTURE]
            for a in ruptures:
                if not inside(datetime.fromisoformat(a.raised_at)):
                    continue
                for c in add(info.attrs, info.main_modality):
                    c.n["ruptures_raised"] += 1
                    if a.resolution == "repaired":
                        c.n["ruptures_repaired"] += 1
                    elif a.resolution != "false_positive":
                        c.n["ruptures_unrepaired"] += 1
            if ep.closed_on is not None and inside(date.fromisoformat(ep.closed_on)):
                _closed(add(info.attrs, info.main_modality), ep, info, ruptured=bool(ruptures))
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for dimension in DIMENSIONS:
        present = sorted(v for d, v in cells if d == dimension)
        values = FIXED.get(dimension) or (*(v for v in present if v != UNKNOWN), UNKNOWN)
        by[dimension] = {v: cells.get((dimension, v), Cell()).figures() for v in values}
    return {"from": first, "to": last, "figures": list(FIGURES), "by": by, "total": total.figures()}


def _closed(cells: list[Cell], ep: EpisodeTruth, info: _Episode, *, ruptured: bool) -> None:
    for c in cells:
        c.n["episodes_closed"] += 1
        c.n["episodes_ruptured"] += int(ruptured)
        for kind in ("unilateral", "last_missed", "low_dose"):
            c.n[f"dropout_{kind}"] += int(ep.dropout[kind])
        c.n["outcome_measured"] += int(info.measured)
        c.n["reliable_improvement"] += int(info.measured and info.improved)
