"""What the alerts service feeds the rules: scored measures and care events, as frozen values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

ALLIANCE_INSTRUMENTS = frozenset({"WAI-SR", "SRS"})
OUTCOME_INSTRUMENTS = frozenset({"ORS", "PHQ-9", "GAD-7"})

Score = float | int | bool


@dataclass(frozen=True, slots=True)
class ChangeFromIntake:
    """Reliable change from the episode's first scored response of the instrument (measures computes it)."""

    intake_score: float
    change: float
    reliable_deterioration: bool
    threshold: float


@dataclass(frozen=True, slots=True)
class ExpectedBand:
    """Where the network's model expects this score at this session (measures fits it on closed episodes).

    `session_index` is the score's session in its instrument's series (1 = intake); `low` and `high` are
    the band's edges (the 10th and 90th percentile paths by default, `quantiles` says which), `median`
    the expected score. The model is named by version, fit time and the episodes it was fitted on.
    """

    session_index: int
    median: float
    low: float
    high: float
    quantiles: tuple[float, float, float]
    model_version: str
    model_fitted_at: datetime
    model_episodes: int


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """This score's place in its alliance series; mu, sd_eff and drop are None with < 3 earlier scores."""

    series_key: str
    score: float
    position: int
    earlier_count: int
    mu: float | None = None
    sd_eff: float | None = None
    drop: float | None = None


@dataclass(frozen=True, slots=True)
class Measure:
    """One scored questionnaire response (one revision of it)."""

    response_id: str
    revision: int
    instrument: str
    respondent: str
    session_at: datetime
    occurred_at: datetime
    scores: Mapping[str, Score]
    appointment_id: str | None = None
    change: ChangeFromIntake | None = None
    series: SeriesPoint | None = None
    superseded: bool = False
    expected: ExpectedBand | None = None

    def score(self, name: str) -> float | None:
        """A numeric score by name, or None when absent."""
        value = self.scores.get(name)
        return None if value is None else float(value)

    def flag(self, name: str) -> bool:
        """A boolean score by name; absent counts as False."""
        return bool(self.scores.get(name, False))


@dataclass(frozen=True, slots=True)
class CareEvent:
    """A pseudonymised care event: attended, missed, cancelled, closed or opened."""

    kind: str
    occurred_at: datetime
    appointment_id: str | None = None
    missed_reason: str | None = None
    cancelled_by: str | None = None
    close_reason: str | None = None
