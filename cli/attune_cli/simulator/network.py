"""The simulated network: clinics, their clinicians and instruments, and which client follows which story."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone
from random import Random

from attune_cli.simulator.model import SimConfig

REGIONS = ("north", "south", "east", "west", "central")
UTC_OFFSET_HOURS = {"north": 1, "south": 0, "east": 2, "west": -5, "central": 1}

# (alliance instruments, outcome instruments); clinic i uses profile i % 3.
PROFILES: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("WAI-SR",), ("PHQ-9", "GAD-7")),
    (("SRS",), ("ORS",)),
    (("WAI-SR", "SRS"), ("ORS", "PHQ-9")),
)

# Share of clients per trajectory archetype (percent); the rest of the roster is "stable".
WEIGHTS: dict[str, float] = {
    "rupture_repaired": 9,
    "rupture_unrepaired": 6,
    "deterioration_recovery": 8,
    "dropout_after_rupture": 5,
    "missed_then_reengaged": 6,
    "inactive_ghost": 4,
    "safety_item9": 3,
    "psq_rupture": 4,
    "psq_below_threshold": 4,
    "amended_false_positive": 1,
    "early_mutual_ending": 4,
    "early_dropout": 3,
    "returning_client": 3,
}
# Only with SimConfig.history (a model of the expected path exists): clients who miss it at session 3
# and stay off it, and clients who miss it and come back inside the band.
HISTORY_WEIGHTS: dict[str, float] = {"not_on_track": 5, "not_on_track_recovered": 4}
ARCHETYPES: tuple[str, ...] = ("stable", *WEIGHTS, *HISTORY_WEIGHTS)

# The fewest simulated weeks in which an archetype's whole story fits (else the client is "stable").
MIN_WEEKS: dict[str, int] = {
    "stable": 2,
    "rupture_repaired": 10,
    "rupture_unrepaired": 11,
    "deterioration_recovery": 10,
    "dropout_after_rupture": 12,
    "missed_then_reengaged": 9,
    "inactive_ghost": 9,
    "safety_item9": 7,
    "psq_rupture": 10,
    "psq_below_threshold": 8,
    "amended_false_positive": 9,
    "early_mutual_ending": 5,
    "early_dropout": 6,
    "returning_client": 12,
    "not_on_track": 10,
    "not_on_track_recovered": 15,
}


@dataclass(frozen=True, slots=True)
class Clinic:
    """One clinic: its clinicians, its UTC offset, the instruments it uses and how often it measures outcome."""

    clinic_id: str
    index: int
    tz: timezone
    clinicians: tuple[str, ...]
    alliance: tuple[str, ...]
    outcomes: tuple[str, ...]
    outcome_every: int  # outcome measures at attended sessions 1, 1+k, 1+2k, ...

    def describe(self) -> dict[str, object]:
        """The clinic as written in truth.json."""
        offset = self.tz.utcoffset(None) or timedelta(0)
        return {
            "clinic_id": self.clinic_id,
            "utc_offset_hours": offset.total_seconds() / 3600,
            "clinicians": list(self.clinicians),
            "alliance_instruments": list(self.alliance),
            "outcome_instruments": list(self.outcomes),
            "outcome_every_sessions": self.outcome_every,
        }


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """Who a client is and which story they follow."""

    index: int
    mrn: str
    clinic: Clinic
    clinician_id: str
    archetype: str
    outcome_focus: str | None  # the instrument that deteriorates or misses its path; PHQ-9 for item 9


def build_clinics(cfg: SimConfig, rng: Random) -> list[Clinic]:
    """north-01, south-01, east-01, west-01, central-01, north-02, ... with 2-4 clinicians each."""
    clinics = []
    for i in range(cfg.clinics):
        region = REGIONS[i % len(REGIONS)]
        clinic_id = f"{region}-{i // len(REGIONS) + 1:02d}"
        alliance, outcomes = PROFILES[i % len(PROFILES)]
        clinicians = tuple(f"c-{clinic_id}-{n}" for n in range(1, rng.randint(2, 4) + 1))
        tz = timezone(timedelta(hours=UTC_OFFSET_HOURS[region]))
        clinics.append(Clinic(clinic_id, i, tz, clinicians, alliance, outcomes, rng.choice((2, 3))))
    return clinics


# The instruments a not-on-track story misses its path on: GAD-7's reliable-change threshold (4) is
# too close to its band for a miss that is not also a reliable deterioration.
OFF_TRACK_INSTRUMENTS = ("ORS", "PHQ-9")


def _eligible(archetype: str, clinics: list[Clinic]) -> list[Clinic]:
    if archetype == "safety_item9":
        return [c for c in clinics if "PHQ-9" in c.outcomes]
    if archetype in HISTORY_WEIGHTS:
        return [c for c in clinics if any(i in c.outcomes for i in OFF_TRACK_INSTRUMENTS)]
    return clinics


def _weights(cfg: SimConfig) -> dict[str, float]:
    return {**WEIGHTS, **HISTORY_WEIGHTS} if cfg.history else WEIGHTS


def _counts(cfg: SimConfig, clinics: list[Clinic]) -> dict[str, int]:
    """How many clients follow each archetype: the weights, at least one of each when the roster allows."""
    weights = _weights(cfg)
    feasible = [a for a in weights if cfg.weeks >= MIN_WEEKS[a] and _eligible(a, clinics)]
    exact = {a: cfg.clients * weights[a] / 100 for a in feasible}
    counts = {a: int(v) for a, v in exact.items()}
    if cfg.clients >= 2 * len(feasible):
        counts = {a: max(1, n) for a, n in counts.items()}
    spare = cfg.clients - sum(counts.values())  # the remainders all go to "stable"
    return {"stable": max(0, spare), **counts}


def allocate(cfg: SimConfig, clinics: list[Clinic], rng: Random) -> list[ClientProfile]:
    """Give every client an archetype (shuffled by the seed), a clinic, a clinician and an MRN."""
    roster = [a for a, n in _counts(cfg, clinics).items() for _ in range(n)][: cfg.clients]
    rng.shuffle(roster)
    seen: dict[str, int] = {}
    focus_turn: dict[str, int] = {}
    per_clinic: dict[str, int] = {}
    profiles = []
    for index, archetype in enumerate(roster):
        eligible = _eligible(archetype, clinics)
        nth = seen.get(archetype, 0)
        seen[archetype] = nth + 1
        clinic = eligible[(nth + ARCHETYPES.index(archetype)) % len(eligible)]
        slot = per_clinic.get(clinic.clinic_id, 0)
        per_clinic[clinic.clinic_id] = slot + 1
        focus: str | None = None
        if archetype == "deterioration_recovery":
            turn = focus_turn.get(clinic.clinic_id, 0)
            focus_turn[clinic.clinic_id] = turn + 1
            focus = clinic.outcomes[turn % len(clinic.outcomes)]
        elif archetype == "safety_item9":
            focus = "PHQ-9"
        elif archetype in HISTORY_WEIGHTS:
            turn = focus_turn.get(f"off:{clinic.clinic_id}", 0)
            focus_turn[f"off:{clinic.clinic_id}"] = turn + 1
            options = [i for i in clinic.outcomes if i in OFF_TRACK_INSTRUMENTS]
            focus = options[turn % len(options)]
        clinician = clinic.clinicians[slot % len(clinic.clinicians)]
        profiles.append(ClientProfile(index, f"MRN{100001 + index}", clinic, clinician, archetype, focus))
    return profiles
