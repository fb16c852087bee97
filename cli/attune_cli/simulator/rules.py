"""The rules of one episode: safety, outcome deterioration, not on track and dropout risk, on top of the
alliance rules."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from attune_cli.simulator.alliance import AllianceRules
from attune_cli.simulator.history import BAND_MARGIN, NOT_ON_TRACK_MIN_SESSION, Models, band
from attune_cli.simulator.ledger import (
    CHANGE_MARGIN,
    CONSECUTIVE_MISSES,
    DETERIORATION,
    DROPOUT,
    GAP_MARGIN,
    INACTIVITY,
    MISSES,
    NOT_ON_TRACK,
    RUPTURE,
    RUPTURE_RECENCY,
    SAFETY,
    Alert,
    Response,
    rounded,
)
from attune_cli.simulator.scoring import (
    HIGHER_IS_BETTER,
    RELIABLE_CHANGE,
    SD_FLOOR,
    MarginError,
    Score,
    score,
)


class EpisodeRules(AllianceRules):
    """Every alert rule over one episode, fed in the order things happened."""

    def __init__(self, episode: int, opened_on: date, models: Models | None = None) -> None:
        super().__init__(episode, opened_on)
        self.models: Models = models or {}
        self.intake: dict[str, float] = {}
        self.scored: dict[str, int] = {}  # outcome scores so far per instrument: the session index
        self.last_attended: tuple[datetime, str] | None = None
        self.miss_run: list[str] = []
        self.closed: tuple[date, str] | None = None
        self.counts: dict[str, int] = {}
        self.last_session: tuple[datetime, str] | None = None  # by appointment time

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def responses(self, group: list[Response]) -> None:
        """All client responses of one session (the lenient criterion needs that session's SRS)."""
        scored = [(r, score(r.instrument, r.items)) for r in group]
        concern = any(s.concern for r, s in scored if r.instrument == "SRS")
        for r, s in scored:
            self._count(f"questionnaire:{r.instrument}")
            if r.instrument == "PHQ-9" and s.item9 >= 1:
                self._safety(r, s)
            if r.instrument in RELIABLE_CHANGE:
                self._outcome(r, s)
        points = [(r, self._append(r, s, concern)) for r, s in scored if r.instrument in SD_FLOOR]
        self._alliance(points)
        for r, s in scored:
            if r.instrument == "PSQ":
                self._psq(r, s)

    def _safety(self, r: Response, s: Score) -> None:
        alert = self.open.get(SAFETY)
        if alert is not None:
            alert.triggers.append(r.response_id)
            return
        evidence = {"instrument": "PHQ-9", "item9": s.item9, "response_id": r.response_id}
        alert = Alert(SAFETY, "urgent", self.episode, r.response_id, "response", ["item9"], r.at, evidence)
        alert.triggers.append(r.response_id)
        self._raise(alert)

    def _outcome(self, r: Response, s: Score) -> None:
        name = r.instrument
        self.scored[name] = self.scored.get(name, 0) + 1
        if name not in self.intake:
            self.intake[name] = s.value  # the first scored response of the instrument in the episode
            return
        self._deterioration(r, s)
        self._not_on_track(r, s)

    def _deterioration(self, r: Response, s: Score) -> None:
        name = r.instrument
        threshold = RELIABLE_CHANGE[name]
        change = round(s.value - self.intake[name], 6)  # ORS totals have one decimal: no float dust
        worse = -change if name in HIGHER_IS_BETTER else change
        if worse >= threshold + CHANGE_MARGIN:
            deteriorated = True
        elif worse <= threshold - CHANGE_MARGIN:
            deteriorated = False
        else:
            raise MarginError(f"{name} change {worse} is near the reliable-change threshold {threshold}")
        alert = self.open.get(DETERIORATION)
        if deteriorated and alert is None:
            evidence = {
                "instrument": name,
                "intake_score": rounded(self.intake[name]),
                "score": rounded(s.value),
                "change": rounded(change),
                "reliable_change_threshold": threshold,
            }
            new = Alert(
                DETERIORATION, "high", self.episode, r.response_id, "response", [name], r.at, evidence
            )
            new.instruments, new.triggers = [name], [r.response_id]
            self._raise(new)
        elif deteriorated and alert is not None:
            if name not in alert.instruments:
                raise MarginError("a second instrument deteriorates while the first is still open")
            alert.triggers.append(r.response_id)
        elif alert is not None and name in alert.instruments:
            self._resolve(alert, "addressed", r.at, recovered_response_id=r.response_id, auto=True)

    def _not_on_track(self, r: Response, s: Score) -> None:
        """outcome.not-on-track: from session index 3 on, the instrument's latest score worse than its
        expected band (below it for ORS, above it for PHQ-9 and GAD-7; the edge is inside). One open
        alert per episode; a later score of every triggering instrument back inside (or better)
        resolves it `addressed` (auto); closure ends it (close)."""
        name, index = r.instrument, self.scored[r.instrument]
        model = self.models.get(name)
        if model is None or index < NOT_ON_TRACK_MIN_SESSION:
            return  # no band (no model, or the intake); session 2 has one but is never judged worse
        expected = band(model, self.intake[name], index)
        edge = expected.edge(name)
        if abs(s.value - edge) < BAND_MARGIN:
            raise MarginError(f"{name} {s.value} is within {BAND_MARGIN} of its expected band's edge {edge}")
        alert = self.open.get(NOT_ON_TRACK)
        if expected.worse(name, s.value):
            if alert is None:
                evidence = {
                    "instrument": name,
                    "score": rounded(s.value),
                    "session_index": index,
                    "expected_low": expected.low,
                    "expected_median": expected.median,
                    "expected_high": expected.high,
                    "model_episodes": model.episodes,
                }
                new = Alert(
                    NOT_ON_TRACK, "normal", self.episode, r.response_id, "response", [name], r.at, evidence
                )
                new.instruments, new.triggers = [name], [r.response_id]
                self._raise(new)
            else:
                alert.triggers.append(r.response_id)
                if name not in alert.instruments:
                    alert.instruments.append(name)
        elif alert is not None and name in alert.instruments:
            alert.instruments.remove(name)
            if not alert.instruments:
                self._resolve(alert, "addressed", r.at, recovered_response_id=r.response_id, auto=True)

    # ------------------------------------------------------------ sessions and closure

    def touch(self, at: datetime) -> None:
        """Any event: the inactivity sweep could have run before it."""
        self._inactivity(at)

    def session(self, at: datetime, kind: str, appointment_id: str, scheduled: datetime) -> None:
        """An attended, missed or cancelled appointment (`kind` is the outcome)."""
        self._inactivity(at)
        self._count(kind)
        if self.last_session is None or scheduled > self.last_session[0]:
            self.last_session = (scheduled, kind)
        if kind == "attended":
            alert = self.open.get(DROPOUT)
            if alert is not None:
                self._resolve(alert, "re_engaged", at, attended_appointment_id=appointment_id)
            self.last_attended = (at, appointment_id)
            self.miss_run = []
        elif kind in MISSES:
            self.miss_run.append(appointment_id)
            if len(self.miss_run) >= CONSECUTIVE_MISSES:
                self._dropout(at, appointment_id, "consecutive_misses", len(self.miss_run))
        elif self.miss_run:
            raise MarginError("a clinician's cancellation inside a run of misses")

    def _severity(self, at: datetime) -> str:
        if RUPTURE in self.open:
            return "high"
        if any(not repaired and at - end <= RUPTURE_RECENCY for end, repaired in self.rupture_ends):
            return "high"
        if self.rupture_ends:
            raise MarginError("dropout severity would hang on how long ago a rupture ended")
        return "normal"

    def _dropout(self, at: datetime, trigger: str, criterion: str, misses: int) -> None:
        alert = self.open.get(DROPOUT)
        if alert is not None:
            alert.triggers.append(trigger)
            return
        severity = self._severity(at)
        evidence: dict[str, Any] = {"trigger": criterion}
        if criterion == "consecutive_misses":
            evidence["consecutive_misses"] = misses
        else:
            evidence["last_attended_appointment_id"] = trigger
        self._raise(Alert(DROPOUT, severity, self.episode, trigger, "appointment", [criterion], at, evidence))

    def _inactivity(self, at: datetime) -> None:
        if self.closed is not None or self.last_attended is None or DROPOUT in self.open:
            return
        last_at, appointment_id = self.last_attended
        gap = at - last_at
        if gap >= INACTIVITY + GAP_MARGIN:
            self._dropout(last_at + INACTIVITY, appointment_id, "inactivity", 0)
        elif gap > INACTIVITY - GAP_MARGIN:
            raise MarginError(f"a gap of {gap} since the last attended session is near the 21-day rule")

    def close(self, at: datetime, closed_on: date, reason: str) -> None:
        """episode.closed: every open alert ends `episode_ended` (a rupture so ended is unrepaired)."""
        self._inactivity(at)
        for alert in list(self.open.values()):
            if alert.rule_id == RUPTURE:
                alert.unrepaired = True
                alert.evidence["unrepaired"] = True
            self._resolve(alert, "episode_ended", at)
        self.closed = (closed_on, reason)

    def finish(self, as_of: datetime) -> None:
        """The end of the simulation: the sweep runs once more; every rupture must be decided by now."""
        if self.closed is None:
            self._inactivity(as_of)
        rupture = self.open.get(RUPTURE)
        if rupture is not None and not rupture.unrepaired:
            raise MarginError("a rupture is still undecided (repaired or not) when the simulation ends")
