"""The history behind the expected trajectories (SimConfig.history), and the bands the truth judges by.

`outcome.not-on-track` needs a model per instrument, which measures fits on closed episodes with at
least 3 scores (n_min = 50 of them; clinical-rules.md, "Not on track"). The simulator therefore
writes, before the simulated period, as few events as such a model needs: per clinic enough closed
episodes that every outcome instrument the network uses has n_min of them, each a referral, 4
outcome measurements a week apart (the clinic's instruments only, no appointments) and a planned
closure. Their scores follow the same expected path the period's clients follow (`path_value`), and
none deteriorates reliably, so the history raises no alert.

The demo publishes these records first, lets them drain, asks measures to refit, and only then
publishes the period. The truth fits its models with measures' own `fit` on the same scores, so the
service and the truth agree by construction of the data, not by copying results; the band at a
session is then computed here from the model's coefficients (`band`), independently of measures'.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from random import Random
from typing import Any, Final

from attune_cli.simulator import items as gen
from attune_cli.simulator.model import SimConfig
from attune_cli.simulator.network import ClientProfile, Clinic
from attune_cli.simulator.scoring import score
from attune_measures.domain.trajectories import (
    N_MIN,
    TRAJECTORY_INSTRUMENTS,
    EpisodeScores,
    TrajectoryModel,
    fit,
)

Models = Mapping[str, TrajectoryModel]

HISTORY_SCORES: Final = 4  # per history episode and instrument (a model needs episodes with >= 3)
NOT_ON_TRACK_MIN_SESSION: Final = 3  # alerts' not_on_track_min_session (design default)
# No score the not-on-track rule judges sits within this of the band edge it is judged by, so the
# truth never hangs on the last digit of a fit; the generator steers STEER clear of the edge.
BAND_MARGIN: Final = 0.1
STEER: Final = 0.2
SCORE_RANGE: Final = {"ORS": (0.0, 40.0), "PHQ-9": (0.0, 27.0), "GAD-7": (0.0, 21.0)}
HIGHER_IS_BETTER: Final = frozenset({"ORS"})
HISTORY_MRN_BASE: Final = 900001  # history clients' MRNs (the period's start at MRN100001)


@dataclass(frozen=True, slots=True)
class Band:
    """The expected score at one session: the 10th, 50th and 90th percentile paths."""

    low: float
    median: float
    high: float

    def edge(self, instrument: str) -> float:
        """The edge a worse score crosses: the low one for ORS (higher is better), else the high one."""
        return self.low if instrument in HIGHER_IS_BETTER else self.high

    def worse(self, instrument: str, value: float) -> bool:
        """The score is outside the band on the worse side (the edge itself is inside)."""
        edge = self.edge(instrument)
        return value < edge if instrument in HIGHER_IS_BETTER else value > edge


def band(model: TrajectoryModel, intake: float, session_index: int) -> Band:
    """The band at `session_index` (1 = intake) from the model's lines, as clinical-rules.md states the
    model: score = intercept + b_intake * intake + b_log_s * log(s) per quantile, clipped to the
    instrument's range, two decimals, sorted where the lines cross."""
    lo, hi = SCORE_RANGE[model.instrument]
    log_s = math.log(session_index)
    values = sorted(
        round(min(hi, max(lo, a + b * intake + c * log_s)), 2) + 0.0 for a, b, c in model.coefficients
    )
    return Band(values[0], values[1], values[2])


def path_value(instrument: str, intake: int, m: int, improve: float, rng: Random) -> int:
    """A score on the network's usual path at outcome measurement `m` (0 = intake): ORS in tenths,
    PHQ-9 and GAD-7 totals. Never reliably worse than intake (ORS at most 1.5 points, the others 2)."""
    if instrument == "ORS":
        return min(400, max(intake - 15, intake + round(m * improve) + rng.randint(-15, 15)))
    top = 24 if instrument == "PHQ-9" else 21
    return min(top, max(0, intake - round(m * improve) + rng.randint(-1, 2)))


def draw_intake(instrument: str, rng: Random) -> int:
    """An intake score (ORS in tenths)."""
    if instrument == "ORS":
        return rng.randint(160, 250)
    return rng.randint(6, 18) if instrument == "PHQ-9" else rng.randint(6, 13)


def draw_improvement(instrument: str, rng: Random) -> float:
    """How fast a client improves per outcome measurement (ORS in tenths)."""
    return {"PHQ-9": rng.uniform(0, 1.5), "GAD-7": rng.uniform(0, 1.0), "ORS": rng.uniform(0, 25)}[instrument]


def outcome_items(instrument: str, value: int, rng: Random) -> list[Any]:
    """Items scoring exactly `value` (ORS: tenths), nothing missing, PHQ-9 item 9 at 0."""
    if instrument == "ORS":
        return gen.tenths(value, rng)
    if instrument == "PHQ-9":
        return gen.phq9(value, 0, rng, difficulty=False, missing=False)[0]
    return gen.gad7(value, rng, missing=False)[0]


def history_counts(clinics: Sequence[Clinic], n_min: int = N_MIN) -> dict[str, int]:
    """Closed history episodes per clinic: enough that each instrument in use has n_min in all."""
    offering = {i: sum(i in c.outcomes for c in clinics) for i in TRAJECTORY_INSTRUMENTS}
    return {
        c.clinic_id: max((math.ceil(n_min / offering[i]) for i in c.outcomes if i in offering), default=0)
        for c in clinics
    }


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One history event (the generator encodes it like any other)."""

    at: datetime
    event_type: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class History:
    """The closed episodes before the period, their series and the models fitted on them."""

    clients: list[tuple[ClientProfile, list[HistoryEvent]]]
    series: list[EpisodeScores]
    models: dict[str, TrajectoryModel]
    first: date
    last: date

    def describe(self) -> dict[str, Any]:
        """What truth.json says of the history and the models."""
        episodes = {i: sum(s.instrument == i for s in self.series) for i in TRAJECTORY_INSTRUMENTS}
        return {
            "n_min": N_MIN,
            "not_on_track_min_session": NOT_ON_TRACK_MIN_SESSION,
            "band_margin": BAND_MARGIN,
            "history": {
                "clients": len(self.clients),
                "events": sum(len(events) for _, events in self.clients),
                "scores_per_episode": HISTORY_SCORES,
                "episodes_by_instrument": episodes,
                "from": self.first.isoformat(),
                "to": self.last.isoformat(),
            },
            "models": {i: m.as_dict() for i, m in sorted(self.models.items())},
        }


def _history_client(
    clinic: Clinic, index: int, number: int, first_day: date, rng: Random
) -> tuple[ClientProfile, list[HistoryEvent], list[EpisodeScores]]:
    mrn = f"MRN{HISTORY_MRN_BASE + index}"
    clinician = clinic.clinicians[number % len(clinic.clinicians)]
    profile = ClientProfile(HISTORY_MRN_BASE + index, mrn, clinic, clinician, "history", None)

    def at(day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), tzinfo=clinic.tz)

    events = [
        HistoryEvent(
            at(first_day, 9, rng.choice((0, 15, 30, 45))),
            "client.referred",
            {"mrn": mrn, "referred_on": first_day.isoformat(), "clinician_id": clinician},
        )
    ]
    start = first_day + timedelta(days=rng.randint(5, 9))
    hour = rng.choice((9, 10, 11, 13, 14, 15, 16))
    paths = {i: (draw_intake(i, rng), draw_improvement(i, rng)) for i in clinic.outcomes}
    scores: dict[str, list[float]] = {i: [] for i in clinic.outcomes}
    responses = 0
    for m in range(HISTORY_SCORES):
        when = at(start + timedelta(days=7 * m), hour)
        for instrument in clinic.outcomes:
            intake, improve = paths[instrument]
            value = intake if m == 0 else path_value(instrument, intake, m, improve, rng)
            values = outcome_items(instrument, value, rng)
            scores[instrument].append(score(instrument, values).value)
            responses += 1
            payload = {
                "mrn": mrn,
                "response_id": f"QR-{mrn}-{responses:04d}",
                "status": "completed",
                "instrument": instrument,
                "respondent": "client",
                "clinician_id": clinician,
                "items": values,
            }
            events.append(
                HistoryEvent(when + timedelta(minutes=3 * responses), "questionnaire.completed", payload)
            )
    closed = start + timedelta(days=7 * (HISTORY_SCORES - 1) + rng.randint(1, 3))
    payload = {"mrn": mrn, "reason": "planned", "closed_on": closed.isoformat()}
    events.append(HistoryEvent(at(closed, 10), "episode.closed", payload))
    series = [EpisodeScores(i, tuple(s)) for i, s in scores.items()]
    return profile, events, series


def build_history(cfg: SimConfig, clinics: Sequence[Clinic]) -> History:
    """The history of every clinic, ending before the period's first month, and the models on it."""
    rng = Random(f"attune-sim:{cfg.seed}:history")
    month_start = cfg.start.replace(day=1)
    last_closure = month_start - timedelta(days=3)
    span = 9 + 7 * (HISTORY_SCORES - 1) + 3  # referral lead, the measurements, closure
    earliest, latest = month_start - timedelta(days=94), last_closure - timedelta(days=span)
    clients: list[tuple[ClientProfile, list[HistoryEvent]]] = []
    series: list[EpisodeScores] = []
    index = 0
    for clinic in clinics:
        for number in range(history_counts(clinics)[clinic.clinic_id]):
            first_day = earliest + timedelta(days=rng.randint(0, (latest - earliest).days))
            profile, events, found = _history_client(clinic, index, number, first_day, rng)
            clients.append((profile, events))
            series.extend(found)
            index += 1
    fitted_at = datetime.combine(month_start, time(0, 0), tzinfo=cfg.as_of.tzinfo)
    models = {i: m for i in TRAJECTORY_INSTRUMENTS if (m := fit(i, series, fitted_at=fitted_at)) is not None}
    first = min((e.at.date() for _, events in clients for e in events), default=month_start)
    last = max((e.at.date() for _, events in clients for e in events), default=month_start)
    return History(clients, series, models, first, last)
