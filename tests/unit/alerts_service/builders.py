"""Builders for the alerts service's tests: the shared events alerts consumes, as measures and intake
would publish them (alliance series statistics computed here, per clinical-rules.md)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from attune_shared.events import (
    ChangeFromIntake,
    EpisodeClosed,
    EpisodeOpened,
    InternalEvent,
    MeasureScored,
    SeriesContext,
    SessionAttended,
    SessionMissed,
)
from attune_shared.ids import (
    client_ref,
    derived_id,
)
from tests.support.ids import as_appointment, as_episode, as_response, ev, rs

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SD_FLOOR = {"WAI-SR": 0.30, "SRS": 2.0}
RULE_VERSIONS = {"score.wai-sr": 1, "score.srs": 1, "score.phq-9": 1, "score.ors": 1, "score.psq": 1}


def week(n: float) -> datetime:
    """Session n (weekly from T0)."""
    return T0 + timedelta(days=7 * n)


@dataclass
class Client:
    """One client's episode at a clinic; numbers its events so their ids are unique and stable.

    `episode` and the response and appointment ids given to the builders are test labels, carried as
    their pseudonyms: after `Client(episode="ep_2")`, `c.episode == ep("ep_2")`; response "w1" is
    `rs("w1")`, appointment "a1" `ap("a1")`.
    """

    clinic: str = "north-01"
    mrn: str = "MRN-1"
    episode: str = "ep_1"
    clinician: str = "c-1"
    counter: int = 0
    sent: list[InternalEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.episode = as_episode(self.episode)

    @property
    def ref(self) -> str:
        return client_ref(b"alerts-test-key", self.clinic, self.mrn)

    def _common(self, at: datetime, kind: str) -> dict[str, Any]:
        self.counter += 1
        source_event_id = f"{self.episode}:{kind}:{self.counter}"
        return {
            "event_id": derived_id("test", self.clinic, self.episode, source_event_id),
            "occurred_at": at,
            "source": "ehr-test",
            "source_event_id": ev(source_event_id),
            "clinic_id": self.clinic,
            "client_ref": self.ref,
            "episode_id": self.episode,
        }

    def _keep(self, ev: InternalEvent) -> Any:
        self.sent.append(ev)
        return ev

    def measure(
        self,
        rid: str,
        instrument: str,
        scores: dict[str, Any],
        *,
        at: datetime,
        revision: int = 1,
        status: str = "completed",
        series: SeriesContext | None = None,
        change: ChangeFromIntake | None = None,
        appointment_id: str | None = None,
        superseded: bool = False,
    ) -> MeasureScored:
        return self._keep(
            MeasureScored(
                **self._common(at + timedelta(hours=1), f"measure:{rid}:{revision}"),
                response_id=as_response(rid),
                revision=revision,
                status=status,  # type: ignore[arg-type]
                instrument=instrument,  # type: ignore[arg-type]
                respondent="client",
                clinician_id=self.clinician,
                appointment_id=None if appointment_id is None else as_appointment(appointment_id),
                session_at=at,
                scores=scores,
                change=change,
                series=series,
                rule_versions=RULE_VERSIONS,
                superseded=superseded,
            )
        )

    def phq9(
        self, rid: str, *, item9: int, total: int = 12, at: datetime = T0, revision: int = 1
    ) -> MeasureScored:
        scores = {"total": total, "band": "moderate", "item9": item9, "prorated": False}
        return self.measure(rid, "PHQ-9", scores, at=at, revision=revision, status="completed")

    def ors(
        self,
        rid: str,
        score: float,
        *,
        intake: float,
        at: datetime,
        revision: int = 1,
        superseded: bool = False,
    ) -> MeasureScored:
        change = score - intake
        ci = ChangeFromIntake(
            intake_response_id=rs("ors-intake"),
            intake_score=intake,
            change=change,
            reliable_improvement=change >= 5,
            reliable_deterioration=change <= -5,
            threshold=5.0,
        )
        return self.measure(
            rid,
            "ORS",
            {"total": score, "clinical_range": score <= 25},
            at=at,
            revision=revision,
            status="amended" if revision > 1 else "completed",
            change=ci,
            superseded=superseded,
        )

    def wai_series(self, scores: Sequence[float], *, prefix: str = "w") -> list[MeasureScored]:
        """Client-rated WAI-SR means at weekly sessions 1..n, with mu / sd_eff / drop like measures."""
        out = []
        for i, score in enumerate(scores):
            out.append(self.wai(f"{prefix}{i + 1}", scores[:i], score, position=i + 1))
        return out

    def wai(
        self,
        rid: str,
        earlier: Sequence[float],
        score: float,
        *,
        position: int,
        revision: int = 1,
        superseded: bool = False,
    ) -> MeasureScored:
        recent = list(earlier[-5:])
        mu = sd_eff = drop = None
        if len(earlier) >= 3:
            mu = statistics.fmean(recent)
            sd_eff = max(statistics.stdev(recent), SD_FLOOR["WAI-SR"])
            drop = (mu - score) / sd_eff
        series = SeriesContext(
            series_key=f"{self.episode}:WAI-SR",
            score=score,
            position=position,
            earlier_count=len(earlier),
            earlier_response_ids=[rs(f"w{i + 1}") for i in range(len(earlier))],
            mu=mu,
            sd_within=None if mu is None else statistics.stdev(recent),
            sd_eff=sd_eff,
            drop=drop,
        )
        return self.measure(
            rid,
            "WAI-SR",
            {"mean": score, "total": score * 12},
            at=week(position),
            revision=revision,
            status="amended" if revision > 1 else "completed",
            series=series,
            appointment_id=f"a{position}",
            superseded=superseded,
        )

    def opened(self, at: datetime = T0) -> EpisodeOpened:
        return self._keep(
            EpisodeOpened(**self._common(at, "opened"), opened_on=at.date(), clinician_id=self.clinician)
        )

    def attended(self, appt: str, at: datetime) -> SessionAttended:
        return self._keep(
            SessionAttended(
                **self._common(at, f"attended:{appt}"),
                appointment_id=as_appointment(appt),
                clinician_id=self.clinician,
                modality="video",
            )
        )

    def missed(self, appt: str, at: datetime) -> SessionMissed:
        return self._keep(
            SessionMissed(
                **self._common(at, f"missed:{appt}"),
                appointment_id=as_appointment(appt),
                clinician_id=self.clinician,
                modality="video",
                reason="no_show",
            )
        )

    def closed(self, at: datetime, reason: str = "unilateral") -> EpisodeClosed:
        return self._keep(
            EpisodeClosed(
                **self._common(at, "closed"), reason=reason, closed_on=date(at.year, at.month, at.day)
            )  # type: ignore[arg-type]
        )


def encode(ev: InternalEvent) -> tuple[bytes, bytes]:
    """(key, value) as the producers publish it."""
    return ev.client_ref.encode(), ev.model_dump_json().encode()
