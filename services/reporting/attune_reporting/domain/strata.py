"""The equity view's strata: which language, interpreter, age band and modality a fact counts under.

A fact counts under its episode's client attributes (episodes.py: the latest referral that sent
each) and, for modality, under its session's modality (measures borrow their appointment's), or
for episode-wide figures (closures, outcome, dropout, ruptures) the episode's main modality. What
is not known counts under `unknown`, so the strata of one dimension partition the whole.
"""

from __future__ import annotations

from typing import Final

from attune_reporting.domain.episodes import EpisodeSummary

UNKNOWN: Final = "unknown"
DIMENSIONS: Final = ("language", "interpreter", "age_band", "modality")
AGE_BANDS: Final = ("<18", "18-25", "26-40", "41-64", "65+")
# The values every answer lists, in order (language lists the languages present instead).
FIXED_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "interpreter": ("yes", "no", UNKNOWN),
    "age_band": (*AGE_BANDS, UNKNOWN),
    "modality": ("in_person", "video", "phone", UNKNOWN),
}
PREFIX: Final = "eq:"
# What an equity part keeps: the headline figures' counters and sums, and the client sets they are
# suppressed by; the rest of a cell's figures are not broken down this way.
NAMES: Final = frozenset(
    {
        "attended",
        "missed_no_show",
        "missed_late_cancel",
        "wai_n",
        "wai_mean",
        "wai_mean_sq",
        "srs_n",
        "srs_total",
        "srs_total_sq",
        "ruptures_raised",
        "ruptures_repaired",
        "ruptures_unrepaired",
        "closed",
        "closed_ruptured",
        "outcome_measured",
        "improved",
        "dropout_unilateral",
        "dropout_last_missed",
        "dropout_low_dose",
    }
)
GROUPS: Final = frozenset({"sessions", "wai_sr", "srs", "ruptures", "closed"})


def key(dimension: str, value: str) -> str:
    """Part key of one stratum."""
    return f"{PREFIX}{dimension}:{value}"


def split(part_key: str) -> tuple[str, str] | None:
    """(dimension, value) of a stratum's part key; None for any other part."""
    if not part_key.startswith(PREFIX):
        return None
    dimension, _, value = part_key[len(PREFIX) :].partition(":")
    return dimension, value


def _yes_no(value: bool | None) -> str:
    return UNKNOWN if value is None else ("yes" if value else "no")


def keys(episode: EpisodeSummary | None, modality: str | None) -> list[str]:
    """The strata one fact of this episode counts under; `modality` is the fact's own (a session's,
    or the episode's main modality for episode-wide figures)."""
    if episode is None:
        attrs = (UNKNOWN, UNKNOWN, UNKNOWN)
    else:
        band = episode.age_band if episode.age_band in AGE_BANDS else UNKNOWN
        attrs = (episode.language or UNKNOWN, _yes_no(episode.interpreter), band)
    values = (*attrs, modality if modality in FIXED_VALUES["modality"] else UNKNOWN)
    return [key(d, v) for d, v in zip(DIMENSIONS, values, strict=True)]
