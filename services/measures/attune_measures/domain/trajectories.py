"""Expected trajectories (clinical-rules.md, "Not on track"): the network's own expected path. Pure.

Per instrument (ORS, PHQ-9, GAD-7) a linear quantile regression of the score at session `s` on the
intake score and `log(s)`:

    score_s = intercept + b_intake * intake + b_log_s * log(s)     for each quantile (0.10, 0.50, 0.90)

fitted on closed episodes with at least 3 scores of the instrument: every row `(intake, s, score_s)`
with `s >= 2` (`s` is the position in the episode's series of that instrument, 1 = the intake, the first
scored response). Below `n_min` such episodes there is no model (None), so nothing is expected.

Method: statsmodels' `QuantReg` (iteratively reweighted least squares towards the check-loss minimum;
on test data it agrees with the exact linear programme to about 1e-6), imported lazily inside `fit` so a
process that never fits does not load it. Each quantile is fitted on its own, so the lines may cross:
`expected` sorts the three values. Assumptions (docs/trajectories.md): change is linear in `log(s)`
(fast early change that levels off), the intake score is the only covariate (no clinic, modality or
clinician effects), every session row counts equally (a long episode weighs more than a short one),
and closed episodes stand for the clients being scored now.

Deterministic: rows are sorted before fitting and coefficients rounded to 6 decimals, so the same
episodes give the same coefficients and the same `version` (fit time, episodes used, and a digest of
the rounded coefficients).
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any, Final

TRAJECTORY_INSTRUMENTS: Final = ("ORS", "PHQ-9", "GAD-7")
QUANTILES: Final = (0.10, 0.50, 0.90)
N_MIN: Final = 50  # design default (clinical-rules.md)
MIN_SCORES: Final = 3  # an episode needs the intake and at least two later scores
# The total's range: a band is clipped to what the instrument can score.
SCORE_RANGE: Final[Mapping[str, tuple[float, float]]] = MappingProxyType(
    {"ORS": (0.0, 40.0), "PHQ-9": (0.0, 27.0), "GAD-7": (0.0, 21.0)}
)
_DECIMALS: Final = 6

Coefficients = tuple[float, float, float]  # (intercept, b_intake, b_log_s)


@dataclass(frozen=True, slots=True)
class EpisodeClosure:
    """An episode of care closed (from `episode.closed`): its series may now train a model."""

    episode_id: str
    clinic_id: str
    closed_on: date
    reason: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class EpisodeScores:
    """One closed episode's scores of one instrument in session order; scores[0] is the intake."""

    instrument: str
    scores: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Band:
    """The expected score at one session: the median path and the band around it."""

    low: float
    median: float
    high: float


@dataclass(frozen=True, slots=True)
class TrajectoryModel:
    """A fitted model of one instrument: one line per quantile, with what it was fitted on."""

    instrument: str
    coefficients: tuple[Coefficients, Coefficients, Coefficients]  # per quantile, as `quantiles`
    episodes: int
    rows: int
    fitted_at: datetime
    version: str
    quantiles: tuple[float, float, float] = QUANTILES

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form (fitted_at as RFC 3339 text; no dotted keys, so it stores as it is)."""
        return {
            "instrument": self.instrument,
            "quantiles": list(self.quantiles),
            "coefficients": [
                {"quantile": q, **dict(zip(("intercept", "b_intake", "b_log_s"), c, strict=True))}
                for q, c in zip(self.quantiles, self.coefficients, strict=True)
            ],
            "episodes": self.episodes,
            "rows": self.rows,
            "fitted_at": self.fitted_at.isoformat(),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrajectoryModel:
        """The model as_dict wrote (fitted_at may also be a datetime)."""
        quantiles = tuple(float(q) for q in data["quantiles"])
        lines = {float(c["quantile"]): c for c in data["coefficients"]}
        coefficients = tuple(
            (float(c["intercept"]), float(c["b_intake"]), float(c["b_log_s"]))
            for c in (lines[q] for q in quantiles)
        )
        at = data["fitted_at"]
        fitted_at = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        if fitted_at.tzinfo is None:  # a BSON date read without tz_aware
            fitted_at = fitted_at.replace(tzinfo=UTC)
        if len(quantiles) != 3:
            raise ValueError("a trajectory model has three quantiles")
        return cls(
            instrument=data["instrument"],
            coefficients=(coefficients[0], coefficients[1], coefficients[2]),
            episodes=int(data["episodes"]),
            rows=int(data["rows"]),
            fitted_at=fitted_at,
            version=data["version"],
            quantiles=(quantiles[0], quantiles[1], quantiles[2]),
        )


def usable(instrument: str, episodes: Iterable[EpisodeScores]) -> list[EpisodeScores]:
    """The episodes a fit of `instrument` uses: that instrument, at least MIN_SCORES scores."""
    return [e for e in episodes if e.instrument == instrument and len(e.scores) >= MIN_SCORES]


def rows_of(episodes: Iterable[EpisodeScores]) -> list[tuple[float, int, float]]:
    """Every `(intake, s, score_s)` with s >= 2, sorted (the fit's input does not depend on their order)."""
    return sorted((e.scores[0], s, e.scores[s - 1]) for e in episodes for s in range(2, len(e.scores) + 1))


def model_version(
    instrument: str,
    fitted_at: datetime,
    episodes: int,
    quantiles: Sequence[float],
    coefficients: Sequence[Coefficients],
) -> str:
    """`<fit time, UTC>-e<episodes>-<8 hex of the rounded coefficients' digest>`."""
    content = json.dumps([instrument, list(quantiles), [list(c) for c in coefficients]])
    digest = hashlib.sha256(content.encode()).hexdigest()[:8]
    return f"{fitted_at.astimezone(UTC):%Y%m%dT%H%M%SZ}-e{episodes}-{digest}"


def fit(
    instrument: str,
    episodes: Iterable[EpisodeScores],
    *,
    fitted_at: datetime,
    n_min: int = N_MIN,
    quantiles: tuple[float, float, float] = QUANTILES,
) -> TrajectoryModel | None:
    """The model of `instrument` from closed episodes; None below `n_min` usable episodes (or when the
    intake scores do not vary, so the lines cannot be told apart)."""
    if fitted_at.tzinfo is None:
        raise ValueError("fitted_at must be timezone-aware")
    used = usable(instrument, episodes)
    if len(used) < max(n_min, 1):
        return None
    rows = rows_of(used)
    if len({intake for intake, _, _ in rows}) < 2:
        return None
    coefficients = tuple(_quantreg(rows, q) for q in quantiles)
    return TrajectoryModel(
        instrument=instrument,
        coefficients=(coefficients[0], coefficients[1], coefficients[2]),
        episodes=len(used),
        rows=len(rows),
        fitted_at=fitted_at,
        version=model_version(instrument, fitted_at, len(used), quantiles, coefficients),
        quantiles=quantiles,
    )


def _quantreg(rows: Sequence[tuple[float, int, float]], q: float) -> Coefficients:
    # Lazy: statsmodels (with scipy and pandas) costs seconds and tens of MB to import.
    import numpy as np
    from statsmodels.regression.quantile_regression import QuantReg

    x = np.array([[1.0, intake, math.log(s)] for intake, s, _ in rows])
    y = np.array([score for _, _, score in rows])
    with warnings.catch_warnings():
        # An iteration-limit warning still leaves the best estimate found; the rounding absorbs it.
        warnings.simplefilter("ignore")
        params = QuantReg(y, x).fit(q=q, max_iter=5000, p_tol=1e-10).params
    a, b, c = (round(float(v), _DECIMALS) + 0.0 for v in params)  # + 0.0: no negative zero
    return (a, b, c)


def expected(model: TrajectoryModel, intake: float, session_index: int) -> Band:
    """The expected band at session `session_index` (1 = intake) for a client with this intake score,
    clipped to the instrument's range, rounded to 2 decimals; the lines sorted where they cross."""
    if session_index < 1:
        raise ValueError(f"session_index must be at least 1, got {session_index}")
    log_s = math.log(session_index)
    lo, hi = SCORE_RANGE.get(model.instrument, (-math.inf, math.inf))
    values = sorted(
        round(min(hi, max(lo, a + b * intake + c * log_s)), 2) + 0.0 for a, b, c in model.coefficients
    )
    return Band(low=values[0], median=values[1], high=values[2])


@dataclass(frozen=True, slots=True)
class ModelBook:
    """The models a batch scores against: the current one per instrument, and any older version a
    published measure was pinned to (by `(instrument, version)`)."""

    current: Mapping[str, TrajectoryModel] = field(default_factory=dict)
    known: Mapping[tuple[str, str], TrajectoryModel] = field(default_factory=dict)

    def version(self, instrument: str, version: str) -> TrajectoryModel | None:
        """That version of the instrument's model, if known."""
        model = self.known.get((instrument, version))
        if model is None:
            current = self.current.get(instrument)
            if current is not None and current.version == version:
                return current
        return model

    def with_models(self, models: Iterable[TrajectoryModel]) -> ModelBook:
        """This book also knowing `models`."""
        known = dict(self.known)
        known.update(((m.instrument, m.version), m) for m in models)
        return ModelBook(self.current, known)

    def model_for(self, instrument: str, *, revision: int, pinned: str | None) -> TrajectoryModel | None:
        """The model a member's expectation uses: the current one for a member never published
        (revision 0), else the version it was first published under (None: it had none, and keeps none)."""
        if revision == 0:
            return self.current.get(instrument)
        if pinned is None:
            return None
        return self.version(instrument, pinned)
