"""generate(config): the whole scenario, pure and deterministic (same config, same bytes)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from random import Random

from attune_cli.simulator.equity import equity
from attune_cli.simulator.history import History, HistoryEvent, Models, build_history
from attune_cli.simulator.model import (
    ClientTruth,
    DeadLetterTruth,
    OutboundRecord,
    Scenario,
    SimConfig,
    Truth,
)
from attune_cli.simulator.network import ClientProfile, allocate, build_clinics
from attune_cli.simulator.noise import poison_specs, resends
from attune_cli.simulator.plans import plan_client
from attune_cli.simulator.scoring import MarginError
from attune_cli.simulator.timeline import ClientWriter, SimEvent
from attune_cli.simulator.truth import check_story, episode_truth, evaluate, reporting
from attune_shared.ids import client_ref
from attune_shared.settings import DEV_PSEUDONYM_KEY

MAX_ATTEMPTS = 60

# Readings of clinical-rules.md the truth depends on; the services must read the rules the same way.
INTERPRETATIONS = [
    "The truth holds at as_of (the simulation's end, 00:00 UTC): the inactivity sweep is evaluated with "
    "now = as_of. A sweep run on the wall clock long after as_of would flag every episode still open.",
    "An inactivity alert is raised at last attended + 21 days; its trigger is the last attended appointment.",
    "A consecutive-misses alert is triggered by the second missed appointment (session.missed of either "
    "reason, or session.cancelled by the client); a clinician's cancellation never counts as a miss.",
    "Dropout-risk resolves re_engaged at the next attended session after it was raised.",
    "Rupture drop uses the sample standard deviation (n - 1) of the up to 5 scores before the new one.",
    "A rupture alert's trigger is the response that fired it; when WAI-SR and SRS fire in the same session "
    "the alert is one, triggered by the WAI-SR response (both are listed in the evidence).",
    "Repair: a score of the alerting series >= the baseline mu at the 1st, 2nd or 3rd scored session after "
    "the trough; the trough is the firing score (later scores of an open rupture stay above it).",
    "A rupture whose 3 post-trough sessions all stay below mu is unrepaired; the simulator never lets such a "
    "series recover later, so no reading of a late recovery is needed.",
    "A PSQ-triggered rupture is repaired by the next session's alliance score, clearly above every baseline "
    "a reader could pick (the simulator keeps it above all of them).",
    "Reporting counts a rupture as raised once per alert; repaired / false_positive by resolution; every "
    "other rupture (episode_ended, or open and past the repair window) counts as unrepaired.",
    "An amendment that removes the only trigger of an open rupture resolves it false_positive.",
    "Deterioration auto-resolves 'addressed' at the next score of the same instrument that is no longer "
    "reliably worse than intake; intake is the first scored response of the instrument in the episode.",
    "PHQ-9 / GAD-7 with one missing item: round(sum of the answered items * n / (n - 1)); the simulator "
    "never sends a sum where that lands on .5.",
    "last_missed counts every episode (open or closed) whose latest appointment by scheduled time was missed "
    "or cancelled by the client, without a planned or mutual closure; open episodes end attended.",
    "low_dose counts closed episodes with fewer than 4 attended sessions. Figures cover the whole "
    "simulation; duplicates, amendments and poison records add nothing to them.",
    "An episode opens with the client's first event (a referral when there is one) and a referral after a "
    "closure opens a new episode.",
    "outcome.not-on-track (with the history): the session index of an ORS, PHQ-9 or GAD-7 score is its place "
    "among the episode's scored responses of that instrument in session order (1 = the intake); from index 3 "
    "on, a score below the band's low edge (ORS) or above its high edge (PHQ-9, GAD-7) fires, the edge being "
    "inside; the band is the model's three lines at log(index) from the intake score, clipped to the "
    "instrument's range, rounded to 2 decimals and sorted. No judged score lies within 0.1 of its edge.",
    "outcome.not-on-track is one open alert per episode; it resolves 'addressed' (auto) when every instrument "
    "that triggered it has a later score no longer worse than its band, and 'episode_ended' at closure.",
    "The models are fitted on the history alone (measures refits once the history has drained, before the "
    "period is published), with measures' own fit function on the same scores.",
    "Equity view: the report's period is whole months from the start's month to the last month that began "
    "before as_of; an episode measured outcome when any ORS, PHQ-9 or GAD-7 response was scored in it (the "
    "intake carries a change from intake of 0); improved when some instrument's latest score is reliably "
    "better than its intake and none reliably worse.",
]


@dataclass(slots=True)
class BuiltClient:
    """One client's events and what they must lead to."""

    profile: ClientProfile
    events: list[SimEvent]
    truth: ClientTruth


def build_client(profile: ClientProfile, cfg: SimConfig, models: Models | None = None) -> BuiltClient:
    """Draw the client's story until every decision in it sits clearly away from its threshold."""
    key = DEV_PSEUDONYM_KEY.encode()
    reasons: list[str] = []
    for attempt in range(MAX_ATTEMPTS):
        rng = Random(f"attune-sim:{cfg.seed}:client:{profile.index}:{attempt}")
        plan = plan_client(profile, cfg, rng)
        try:
            events = ClientWriter(profile, plan, cfg, rng, models).write()
            episodes = evaluate(events, cfg.as_of, models)
        except MarginError as exc:
            reasons.append(str(exc))
            continue
        check_story(profile.archetype, episodes)
        truth = ClientTruth(
            clinic_id=profile.clinic.clinic_id,
            mrn=profile.mrn,
            client_ref=client_ref(key, profile.clinic.clinic_id, profile.mrn),
            clinician_id=profile.clinician_id,
            archetype=profile.archetype,
            episodes=[episode_truth(ep) for ep in episodes],
            expected_alerts=[a.truth() for ep in episodes for a in ep.alerts],
        )
        return BuiltClient(profile, events, truth)
    common = max(set(reasons), key=reasons.count)
    raise RuntimeError(f"no clear-cut story for client {profile.index} ({profile.archetype}): {common}")


def _encode(cfg: SimConfig, profile: ClientProfile, event: SimEvent | HistoryEvent, event_id: str) -> bytes:
    envelope = {
        "event_id": event_id,
        "event_type": event.event_type,
        "schema_version": 1,
        "source": cfg.source,
        "clinic_id": profile.clinic.clinic_id,
        "occurred_at": event.at.isoformat(),
        "payload": event.payload,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _stream(
    cfg: SimConfig, built: list[BuiltClient], rng: Random
) -> tuple[list[OutboundRecord], list[DeadLetterTruth]]:
    """Every client's events interleaved by delivery time, poison spread through, event_ids in send order."""
    queue = sorted(
        ((e.deliver_at, b.profile.index, seq, e, b.profile) for b in built for seq, e in enumerate(b.events)),
        key=lambda item: item[:3],
    )
    specs = poison_specs(cfg, [b.profile for b in built], rng)
    slots = sorted(rng.randint(0, len(queue)) for _ in specs)
    records: list[OutboundRecord] = []
    dead: list[DeadLetterTruth] = []
    counter = 0

    def next_id() -> str:
        nonlocal counter
        counter += 1
        return f"{cfg.source}:{counter:06d}"

    pending = list(zip(slots, specs, strict=True))
    for position in range(len(queue) + 1):
        while pending and pending[0][0] == position:
            _, spec = pending.pop(0)
            event_id = next_id()
            records.append(
                OutboundRecord(
                    spec.key, spec.make(event_id), "poison", None, None, None, spec.code, spec.json_ok
                )
            )
            key = None if spec.key is None else spec.key.decode()
            named = event_id if spec.names_event else None
            dead.append(
                DeadLetterTruth(
                    spec.code, named, spec.description, key, "any" if spec.json_ok else "kafka_only"
                )
            )
        if position == len(queue):
            break
        _, _, _, event, profile = queue[position]
        event_id = next_id()
        records.append(
            OutboundRecord(
                f"{profile.clinic.clinic_id}:{profile.mrn}".encode(),
                _encode(cfg, profile, event, event_id),
                "late" if event.kind == "late" else "event",
                event.event_type,
                event_id,
                event.at,
            )
        )
    return records, dead


def _history_stream(cfg: SimConfig, history: History) -> list[OutboundRecord]:
    """The history's records in time order (event ids `<source>:h000001`, ...; no noise, no poison)."""
    queue = sorted(
        ((e.at, p.index, seq, e, p) for p, events in history.clients for seq, e in enumerate(events)),
        key=lambda item: item[:3],
    )
    return [
        OutboundRecord(
            f"{profile.clinic.clinic_id}:{profile.mrn}".encode(),
            _encode(cfg, profile, event, f"{cfg.source}:h{n:06d}"),
            "event",
            event.event_type,
            f"{cfg.source}:h{n:06d}",
            event.at,
        )
        for n, (_, _, _, event, profile) in enumerate(queue, start=1)
    ]


def generate(config: SimConfig | None = None) -> Scenario:
    """The scenario of a seeded clinic network: outbound records in publish order, and the ground truth."""
    cfg = config or SimConfig()
    rng = Random(f"attune-sim:{cfg.seed}:network")
    clinics = build_clinics(cfg, rng)
    profiles = allocate(cfg, clinics, rng)
    history = build_history(cfg, clinics) if cfg.history else None
    models: Models = history.models if history is not None else {}
    built = [build_client(p, cfg, models) for p in profiles]
    first_sends, dead = _stream(cfg, built, Random(f"attune-sim:{cfg.seed}:delivery"))
    records = resends(first_sends, Random(f"attune-sim:{cfg.seed}:resends"))
    amendments = sum(
        1
        for b in built
        for e in b.events
        if e.event_type == "questionnaire.completed" and e.payload["status"] == "amended"
    )
    deliveries = {
        "records": len(records),
        "first_sends": sum(r.kind in ("event", "late") for r in records),
        "late": sum(r.kind == "late" for r in records),
        "duplicates": sum(r.kind == "duplicate" for r in records),
        "poison": sum(r.kind == "poison" for r in records),
        "amendments": amendments,
    }
    truth = Truth(
        config={
            "clinics": cfg.clinics,
            "clients": cfg.clients,
            "weeks": cfg.weeks,
            "seed": cfg.seed,
            "start": cfg.start.isoformat(),
            "source": cfg.source,
            "history": cfg.history,
        },
        as_of=cfg.as_of.isoformat(),
        interpretations=INTERPRETATIONS,
        clinics=[c.describe() for c in clinics],
        clients=[b.truth for b in built],
        dead_letters=dead,
        deliveries=deliveries,
        reporting=reporting([c.clinic_id for c in clinics], [(b.truth, b.events) for b in built]),
        trajectories=history.describe() if history is not None else {},
        equity=equity([(b.truth, b.events) for b in built], cfg.start, cfg.as_of),
    )
    past = tuple(_history_stream(cfg, history)) if history is not None else ()
    return Scenario(cfg, tuple(records), truth, past)
