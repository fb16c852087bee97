"""A client's plan laid out as dated EHR events (payloads), with scores drawn for every response."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from random import Random
from typing import Any

from attune_cli.simulator import items as gen
from attune_cli.simulator.history import (
    NOT_ON_TRACK_MIN_SESSION,
    STEER,
    Models,
    band,
    draw_improvement,
    draw_intake,
    path_value,
)
from attune_cli.simulator.ledger import CHANGE_MARGIN
from attune_cli.simulator.model import SimConfig
from attune_cli.simulator.network import ClientProfile
from attune_cli.simulator.plans import ClientPlan, EpisodePlan, Step
from attune_cli.simulator.scoring import RELIABLE_CHANGE, MarginError

MODALITIES = ("in_person", "video", "phone")
LANGUAGES = ("en", "en-GB", "de", "fr", "es", "pl", "tr", "ar", "pt-BR")
REFERRAL_SOURCES = ("GP", "self", "school counsellor", "hospital discharge", "employer EAP")


@dataclass(slots=True)
class SimEvent:
    """One EHR event before it gets an event_id; `deliver_at` orders delivery (late ones come after)."""

    at: datetime
    event_type: str
    payload: dict[str, Any]
    episode: int
    deliver_at: datetime
    kind: str = "event"  # "late": deliberately delivered after later events of the same client


# Alliance levels as offsets from the client's own baseline. WAI-SR: item totals (mean = total / 12,
# sd_floor 0.30 = 3.6 points); SRS: tenths of a point (sd_floor 2.0 = 20 tenths). A stable session moves
# at most 1 WAI-SR point or 10 SRS tenths (<= 0.28 and 0.5 SD); a trough drops >= 15 points or 95 tenths
# (>= 4 SD); "partial" and "low" stay >= 0.5 point under the baseline, "high" lands >= 0.25 above it.
def wai_total(level: str, base: int, rng: Random) -> int:
    """A WAI-SR item total for an alliance level."""
    match level:
        case "base":
            return base + rng.randint(0, 1)
        case "dip":
            return base - 2
        case "trough":
            return base - 16 - rng.randint(0, 2)
        case "partial":
            return base - 6
        case "low":
            return base - 11 + rng.randint(0, 1)
        case "high":
            return base + 4 + rng.randint(0, 1)
        case "error":
            return 24 + rng.randint(0, 2)
    raise ValueError(level)


def srs_tenths(level: str, base: int, rng: Random) -> int:
    """An SRS total in tenths for an alliance level."""
    match level:
        case "base":
            return base + rng.randint(0, 10)
        case "dip":
            return base - 10
        case "trough":
            return base - 105 + rng.randint(0, 10)
        case "partial":
            return base - 40
        case "low":
            return base - 70 + rng.randint(0, 10)
        case "high":
            return min(400, base + 15 + rng.randint(0, 3))
        case "error":
            return 200 + rng.randint(0, 20)
    raise ValueError(level)


class ClientWriter:
    """Writes one client's events in time order."""

    def __init__(
        self,
        profile: ClientProfile,
        plan: ClientPlan,
        cfg: SimConfig,
        rng: Random,
        models: Models | None = None,
    ) -> None:
        self.p, self.plan, self.cfg, self.rng = profile, plan, cfg, rng
        self.models: Models = models or {}
        self.tz = profile.clinic.tz
        self.events: list[SimEvent] = []
        self.clinician = profile.clinician_id
        self.modality = rng.choices(MODALITIES, weights=(55, 35, 10))[0]
        self.hour = rng.choice((9, 10, 11, 13, 14, 15, 16))
        self.wai_base = rng.randint(46, 53)
        self.srs_base = rng.randint(375, 385)
        det_phq = profile.outcome_focus == "PHQ-9" and profile.archetype == "deterioration_recovery"
        self.intake = {
            "PHQ-9": rng.randint(8, 14) if det_phq else draw_intake("PHQ-9", rng),
            "GAD-7": draw_intake("GAD-7", rng),
            "ORS": draw_intake("ORS", rng),
        }
        self.improve = {i: draw_improvement(i, rng) for i in ("PHQ-9", "GAD-7", "ORS")}
        self.appointments = 0
        self.responses = 0
        self.measurements = 0  # outcome measurements so far in the episode (0 is the intake)

    # ------------------------------------------------------------ helpers

    def at(self, day: int, hour: int, minute: int = 0) -> datetime:
        """Local clinic time on a day counted from the start date."""
        return datetime.combine(self.cfg.start + timedelta(days=day), time(hour, minute), tzinfo=self.tz)

    def emit(self, at: datetime, event_type: str, payload: dict[str, Any], episode: int) -> SimEvent:
        """Append an event that is delivered when it happens."""
        if self.events and at <= self.events[-1].at:
            at = self.events[-1].at + timedelta(minutes=1)  # keep each client's events strictly ordered
        event = SimEvent(at, event_type, {"mrn": self.p.mrn, **payload}, episode, at)
        self.events.append(event)
        return event

    def _next_id(self, prefix: str) -> str:
        if prefix == "APT":
            self.appointments += 1
            return f"APT-{self.p.mrn}-{self.appointments:03d}"
        self.responses += 1
        return f"QR-{self.p.mrn}-{self.responses:04d}"

    # ------------------------------------------------------------ episodes

    def write(self) -> list[SimEvent]:
        """Every event of the client, in the order they happened."""
        for number, episode in enumerate(self.plan.episodes, start=1):
            self._episode(number, episode)
        return self.events

    def _episode(self, number: int, ep: EpisodePlan) -> None:
        opened = self.at(ep.referral_day, self.rng.randint(9, 11), self.rng.choice((0, 15, 30, 45)))
        with_clinician = self.rng.random() < 0.75
        if ep.referred:
            payload: dict[str, Any] = {"referred_on": opened.date().isoformat()}
            if with_clinician:
                payload["clinician_id"] = self.clinician
            if self.rng.random() < 0.8:
                payload["birth_year"] = self.rng.randint(1948, 2011)  # every age band, <18 included
            if self.rng.random() < 0.6:
                language = self.rng.choice(LANGUAGES)
                payload["preferred_language"] = language
                payload["interpreter_needed"] = not language.startswith("en") and self.rng.random() < 0.3
            if self.rng.random() < 0.7:
                payload["referral_source"] = self.rng.choice(REFERRAL_SOURCES)
            self.emit(opened, "client.referred", payload, number)
        if not ep.referred or not with_clinician:
            self.emit(
                opened + timedelta(hours=1), "clinician.assigned", {"clinician_id": self.clinician}, number
            )
        attended = 0
        self.measurements = 0
        reassign_after = self.rng.randint(4, 8) if self.rng.random() < 0.05 else None
        for index, step in enumerate(ep.steps):
            if (
                reassign_after is not None
                and attended == reassign_after
                and len(self.p.clinic.clinicians) > 1
            ):
                others = [c for c in self.p.clinic.clinicians if c != self.clinician]
                self.clinician = self.rng.choice(others)
                when = self.events[-1].at + timedelta(hours=2)
                self.emit(when, "clinician.assigned", {"clinician_id": self.clinician}, number)
                reassign_after = None
            attended += self._appointment(number, step, attended, first=index == 0)
        if ep.closure is not None and ep.closure_day is not None:
            closed = self.at(ep.closure_day, 10)
            payload = {"reason": ep.closure, "closed_on": closed.date().isoformat()}
            self.emit(closed, "episode.closed", payload, number)

    # ------------------------------------------------------------ appointments

    def _appointment(self, episode: int, step: Step, attended_before: int, *, first: bool) -> int:
        start = self.at(step.day, self.hour)
        appointment_id = self._next_id("APT")
        lead = self.at(step.day - self.rng.randint(3, 6), self.rng.randint(12, 16))
        booked_at = max(lead, self.events[-1].at + timedelta(hours=1))
        modality = self.modality if self.rng.random() < 0.85 else self.rng.choice(MODALITIES)
        base = {"appointment_id": appointment_id, "clinician_id": self.clinician}
        scheduled = self.emit(
            booked_at,
            "appointment.scheduled",
            {**base, "scheduled_start": start.isoformat(), "modality": modality},
            episode,
        )
        if step.outcome != "attended":
            self._not_attended(episode, step, start, booked_at, base, modality)
            return 0
        duration = self.rng.choice((45, 50, 50, 55, 60))
        session = self.emit(
            start + timedelta(minutes=duration),
            "session.attended",
            {**base, "modality": modality, "duration_minutes": duration},
            episode,
        )
        responses = self._questionnaires(episode, step, appointment_id, attended_before + 1)
        last = responses[-1] if responses else session
        roll = self.rng.random()
        if not first and responses and roll < 0.04:
            session.deliver_at, session.kind = last.at + timedelta(seconds=1), "late"
        elif not first and 0.04 <= roll < 0.07:
            scheduled.deliver_at, scheduled.kind = last.at + timedelta(seconds=2), "late"
        return 1

    def _not_attended(
        self,
        episode: int,
        step: Step,
        start: datetime,
        booked_at: datetime,
        base: dict[str, Any],
        modality: str,
    ) -> None:
        if step.outcome in ("no_show", "late_cancel"):
            at = start + timedelta(minutes=20) if step.outcome == "no_show" else start - timedelta(hours=2)
            self.emit(at, "session.missed", {**base, "modality": modality, "reason": step.outcome}, episode)
            return
        by = "client" if step.outcome == "client_cancel" else "clinician"
        room = (start - booked_at).total_seconds() / 3600 - 1
        notice = round(min(self.rng.uniform(24, 60), room), 1)
        payload = {**base, "cancelled_by": by, "hours_notice": notice}
        self.emit(start - timedelta(hours=notice), "session.cancelled", payload, episode)

    # ------------------------------------------------------------ questionnaires

    def _response(
        self, episode: int, appointment_id: str, instrument: str, values: list[Any], status: str = "completed"
    ) -> SimEvent:
        payload = {
            "response_id": self._next_id("QR"),
            "status": status,
            "instrument": instrument,
            "respondent": "client",
            "clinician_id": self.clinician,
            "appointment_id": appointment_id,
            "items": values,
        }
        return self.emit(
            self.events[-1].at + timedelta(minutes=3), "questionnaire.completed", payload, episode
        )

    def _questionnaires(self, episode: int, step: Step, appointment_id: str, nth: int) -> list[SimEvent]:
        clinic, story = self.p.clinic, self.plan.story
        out: list[SimEvent] = []
        amend: list[tuple[SimEvent, list[Any]]] = []
        for instrument in clinic.alliance:
            level = step.level
            if level == "error" and instrument != clinic.alliance[0]:
                level = "base"  # the keying slip hits one questionnaire only
            values = self._alliance_items(instrument, level)
            event = self._response(episode, appointment_id, instrument, values)
            out.append(event)
            if level == "error":
                amend.append((event, self._alliance_items(instrument, "base")))
            elif story.extras and level == "base" and self.rng.random() < 0.03:
                amend.append((event, gen.corrected(values, self.rng, 1 if instrument == "WAI-SR" else 0.1)))
        if (nth - 1) % clinic.outcome_every == 0:
            event_name = story.outcome_story.get(self.measurements)
            for instrument in clinic.outcomes:
                focus = instrument == self.p.outcome_focus
                out.append(self._outcome(episode, appointment_id, instrument, event_name if focus else None))
            self.measurements += 1
        psq = step.psq
        if psq is None and story.extras and self.rng.random() < 0.12:
            psq = (0, self.rng.randint(1, 2), self.rng.randint(4, 5))
        if psq is not None:
            out.append(self._response(episode, appointment_id, "PSQ", gen.psq(*psq)))
        for original, fixed in amend:  # the next morning, long before the next session
            payload = {**original.payload, "status": "amended", "items": fixed}
            payload.pop("mrn")
            self.emit(self.at(step.day + 1, 10), "questionnaire.completed", payload, episode)
        return out

    def _alliance_items(self, instrument: str, level: str) -> list[Any]:
        if instrument == "WAI-SR":
            return gen.wai_sr(wai_total(level, self.wai_base, self.rng), self.rng)
        quiet = level in ("base", "dip", "high")
        return gen.tenths(srs_tenths(level, self.srs_base, self.rng), self.rng, lo=90 if quiet else 0)

    def _steer(self, instrument: str, value: int, event: str | None) -> tuple[int, bool]:
        """With a model, from session NOT_ON_TRACK_MIN_SESSION on: a score inside the expected band
        (STEER clear of its worse edge), or, for a "miss", clearly worse than it. Returns the score
        and whether the band judged it (then no item may go missing: pro-rating could cross the edge)."""
        model, s = self.models.get(instrument), self.measurements + 1
        if model is None or s < NOT_ON_TRACK_MIN_SESSION:
            return value, False
        intake = self.intake[instrument]
        if instrument == "ORS":  # tenths
            low = band(model, intake / 10, s).low
            if event != "miss":
                return min(400, max(value, math.ceil(round((low + STEER) * 10, 6)))), True
            value = max(0, min(value, math.floor(round((low - STEER) * 10, 6)) - self.rng.randint(0, 8)))
            worse = (intake - value) / 10
        else:
            high = band(model, intake, s).high
            if event != "miss":
                return max(0, min(value, math.floor(high - STEER))), True
            top = 24 if instrument == "PHQ-9" else 21
            value = min(top, max(value, math.ceil(high + STEER) + self.rng.randint(0, 1)))
            worse = value - intake
        if worse > RELIABLE_CHANGE[instrument] - CHANGE_MARGIN:
            raise MarginError(f"missing the expected {instrument} path here is also a reliable deterioration")
        return value, True

    def _outcome(self, episode: int, appointment_id: str, instrument: str, event: str | None) -> SimEvent:
        m, intake, rng = self.measurements, self.intake[instrument], self.rng
        if instrument == "ORS":
            value = path_value("ORS", intake, m, self.improve["ORS"], rng)
            if event == "deteriorate":
                value = intake - 70 - rng.randint(0, 20)
            elif event == "recover":
                value = intake + rng.randint(-10, 20)
            if m and event != "deteriorate":
                value, _ = self._steer("ORS", value, event)
            return self._response(episode, appointment_id, "ORS", gen.tenths(value if m else intake, rng))
        total = path_value(instrument, intake, m, self.improve[instrument], rng)
        if m == 0:
            total = intake
        if event == "deteriorate":
            total = intake + (8 if instrument == "PHQ-9" else 6) + rng.randint(0, 1)
        elif event == "recover":
            total = max(0, intake - rng.randint(0, 3))
        judged = False
        if m and event not in ("deteriorate", "item9"):
            total, judged = self._steer(instrument, total, event)
        missing = event is None and m > 0 and not judged and rng.random() < 0.05
        if instrument == "GAD-7":
            return self._response(episode, appointment_id, "GAD-7", gen.gad7(total, rng, missing=missing)[0])
        item9 = rng.choice((1, 1, 2)) if event == "item9" else 0
        values, _ = gen.phq9(max(total, item9), item9, rng, difficulty=rng.random() < 0.4, missing=missing)
        return self._response(episode, appointment_id, "PHQ-9", values)
