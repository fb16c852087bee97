"""Each archetype's story as a plan: which appointments, on which day, attended or not, at what alliance.

Stories keep every rule decision far from its threshold (see the alliance levels in timeline.py):
ruptures drop >= 3 SD, stable sessions move <= 0.5 SD, repairs land clearly above the baseline within
two sessions, non-repairs stay clearly below it until the episode ends, and a missed session is always
followed by an attended one except where the story wants two misses in a row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from attune_cli.simulator.model import SimConfig
from attune_cli.simulator.network import ClientProfile

MISS_KINDS = ("no_show", "late_cancel", "client_cancel")
INACTIVITY_MARGIN_DAYS = 28  # a ghost's last session lies this far before the end (the rule says 21)


@dataclass(slots=True)
class Step:
    """One appointment: its day (from the start date), what happened, and the alliance it showed."""

    outcome: str = "attended"  # attended | no_show | late_cancel | client_cancel | clinician_cancel
    level: str = "base"  # alliance level of an attended session (timeline.py turns it into scores)
    gap_after: int = 7  # days to the next appointment
    psq: tuple[int, int, int] | None = None
    day: int = 0


@dataclass(slots=True)
class Story:
    """An archetype's shape before it is laid on the calendar."""

    core: list[Step]
    tail: str | None = "base"  # alliance level of the sessions after the core; None: no more sessions
    tail_min: int = 1
    tail_max: int | None = None  # None: until the simulation ends
    closure: str | None = None
    misses: bool = True  # single missed sessions may fall in the tail
    extras: bool = True  # routine PSQs, and keying slips in alliance responses fixed by an amendment
    ghost: bool = False
    returning: bool = False
    outcome_story: dict[int, str] = field(default_factory=dict)  # measurement index -> event


@dataclass(slots=True)
class EpisodePlan:
    """The appointments of one episode, how it opens and how it ends."""

    referral_day: int
    steps: list[Step]
    referred: bool = True
    closure: str | None = None
    closure_day: int | None = None


@dataclass(slots=True)
class ClientPlan:
    """A client's whole calendar."""

    episodes: list[EpisodePlan]
    story: Story


def _base(n: int) -> list[Step]:
    return [Step() for _ in range(n)]


def _miss(rng: Random, gap_after: int = 7) -> Step:
    return Step(outcome=rng.choice(MISS_KINDS), gap_after=gap_after)


def story_for(profile: ClientProfile, rng: Random) -> Story:
    """The archetype's story, with its random choices drawn from `rng`."""
    a, every = profile.archetype, profile.clinic.outcome_every
    if a == "rupture_repaired":
        middle = [Step(level="partial")] if rng.random() < 0.5 else []
        closure = "planned" if rng.random() < 0.3 else None
        core = [*_base(4), Step(level="trough"), *middle, Step(level="high")]
        return Story(core, closure=closure, tail_max=rng.randint(2, 4) if closure else None, extras=False)
    if a == "rupture_unrepaired":
        closure = "mutual" if rng.random() < 0.5 else None
        core = [*_base(4), Step(level="trough"), *[Step(level="low") for _ in range(4)]]
        tail_max = rng.randint(0, 2) if closure else None
        return Story(
            core, tail="low", tail_min=0, tail_max=tail_max, closure=closure, misses=False, extras=False
        )
    if a == "dropout_after_rupture":
        core = [*_base(4), Step(level="trough"), *[Step(level="low") for _ in range(3)]]
        core += [Step(outcome="no_show"), Step(outcome="no_show")]
        return Story(core, tail=None, tail_min=0, closure="unilateral", misses=False, extras=False)
    if a == "deterioration_recovery":
        story = {1: "deteriorate", 2: "recover"}
        return Story([], tail_min=2 * every + 2, misses=False, outcome_story=story)
    if a == "safety_item9":
        closure = "planned" if rng.random() < 0.3 else None
        tail_max = rng.randint(every + 3, every + 6) if closure else None
        story = {1: "item9"}
        return Story(
            [], tail_min=every + 2, tail_max=tail_max, closure=closure, misses=False, outcome_story=story
        )
    if a == "not_on_track":  # off the expected path from the 3rd measurement on, to the end
        closure = "mutual" if rng.random() < 0.3 else None
        tail_max = rng.randint(2 * every + 2, 2 * every + 5) if closure else None
        story = dict.fromkeys(range(2, 60), "miss")
        return Story(
            [], tail_min=2 * every + 2, tail_max=tail_max, closure=closure, misses=False, outcome_story=story
        )
    if a == "not_on_track_recovered":  # off it at the 3rd (and maybe the 4th), then back inside
        story = dict.fromkeys(range(2, rng.choice((3, 4))), "miss")
        return Story([], tail_min=(max(story) + 1) * every + 2, misses=False, outcome_story=story)
    if a == "missed_then_reengaged":
        return Story([*_base(rng.randint(3, 5)), _miss(rng), _miss(rng, gap_after=3), Step()])
    if a == "inactive_ghost":
        return Story([], misses=False, ghost=True)
    if a == "psq_rupture":
        psq = (1, rng.randint(3, 5), rng.randint(1, 2))
        return Story([*_base(5), Step(level="dip", psq=psq), Step(level="high")], extras=False)
    if a == "psq_below_threshold":
        return Story([*_base(rng.randint(3, 5)), Step(psq=(1, 2, rng.randint(2, 3)))])
    if a == "amended_false_positive":
        return Story([*_base(5), Step(level="error")], extras=False)
    if a == "early_mutual_ending":
        return Story(_base(rng.randint(2, 3)), tail=None, tail_min=0, closure="mutual")
    if a == "early_dropout":
        core = [*_base(2), Step(outcome="no_show"), Step(outcome=rng.choice(("no_show", "late_cancel")))]
        return Story(core, tail=None, tail_min=0, closure="unilateral", misses=False)
    if a == "returning_client":
        return Story(_base(rng.randint(4, 5)), tail=None, tail_min=0, closure="planned", returning=True)
    ending = rng.choices((None, "planned", "mutual"), weights=(65, 25, 10))[0]
    return Story(
        [], tail_max=rng.randint(6, 12) if ending else None, tail_min=6 if ending else 1, closure=ending
    )


def _span(steps: list[Step]) -> int:
    return sum(s.gap_after for s in steps[:-1]) if steps else 0


def _lay(
    story: Story, start_day: int, limit: int, rng: Random, tail: str | None, tail_max: int | None
) -> list[Step]:
    """Put the core and then the tail on the calendar from start_day, every appointment on or before limit."""
    steps: list[Step] = []
    day = start_day
    for step in story.core:
        step.day = day
        steps.append(step)
        day += step.gap_after
    if tail is None:
        return steps
    count = 0
    previous_missed = False
    while day <= limit and (tail_max is None or count < tail_max):
        room_after = day + 7 <= limit and (tail_max is None or count + 1 < tail_max)
        if story.misses and not previous_missed and room_after and steps and rng.random() < 0.08:
            kind = rng.choices((*MISS_KINDS, "clinician_cancel"), weights=(35, 20, 25, 20))[0]
            step = Step(outcome=kind, day=day)
            previous_missed = True
        else:
            step = Step(level=tail, day=day)
            previous_missed = False
        steps.append(step)
        day += 7
        count += 1
    return steps


def plan_client(profile: ClientProfile, cfg: SimConfig, rng: Random) -> ClientPlan:
    """Lay the client's story on the calendar, starting as late as the story still fits."""
    story = story_for(profile, rng)
    days = cfg.weeks * 7
    if profile.archetype == "stable" and story.closure is not None and cfg.weeks < 8:
        story = Story([])  # too short a simulation for a whole course of treatment: stays open
    closing = story.closure is not None
    limit = days - (5 if closing else 2)
    if story.ghost:
        limit = days - INACTIVITY_MARGIN_DAYS - 1
    lead = rng.randint(5, 9)  # referral to first appointment
    needed = _span(story.core) + (7 * story.tail_min if story.core else 7 * (story.tail_min - 1))
    needed += 7 * (4 if story.returning else 0) + (14 if story.ghost else 0)
    latest = limit - lead - needed
    if latest < 0:
        raise ValueError(f"{profile.archetype} does not fit in {cfg.weeks} weeks")
    stretch = days * (0.55 if profile.archetype == "stable" else 0.2)
    referral_day = rng.randint(0, max(0, min(latest, int(stretch))))
    first = referral_day + lead
    steps = _lay(story, first, limit, rng, story.tail, story.tail_max)
    episode = EpisodePlan(referral_day, steps, referred=rng.random() > 0.1 or profile.archetype != "stable")
    episodes = [episode]
    if closing:
        last = steps[-1]
        episode.closure = story.closure
        episode.closure_day = last.day + (
            rng.randint(2, 3) if last.outcome != "attended" else rng.randint(1, 3)
        )
    if story.returning:
        assert episode.closure_day is not None
        again = episode.closure_day + rng.randint(14, 21)
        second = Story([], misses=False)
        later = _lay(second, again + rng.randint(5, 8), days - 2, rng, "base", None)
        episodes.append(EpisodePlan(again, later))
    return ClientPlan(episodes, story)
