"""EpisodeState <-> JSON-compatible dict, so the service can persist it as one document."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from attune_alerts.domain.errors import InvalidStateDocument
from attune_alerts.domain.state import (
    AlliancePoint,
    EpisodeState,
    OpenAlert,
    RuptureClosure,
    RuptureTrack,
    SeriesBaseline,
    SessionOutcome,
    SrsSeen,
    TriggerMark,
)

T = TypeVar("T")

# Bumped when the document shape changes incompatibly; from_dict refuses other versions.
STATE_DOC_VERSION = 1


def _dt(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_dt(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _req_dt(value: Any) -> datetime:
    return datetime.fromisoformat(value)


def _track_to_dict(t: RuptureTrack) -> dict[str, Any]:
    return {
        "criteria": list(t.criteria),
        "trigger_session_at": _dt(t.trigger_session_at),
        "series_key": t.series_key,
        "mu": t.mu,
        "trough_score": t.trough_score,
        "trough_position": t.trough_position,
        "trough_response_id": t.trough_response_id,
        "sessions_since_trough": t.sessions_since_trough,
        "psq_session_at": _dt(t.psq_session_at),
    }


def _track_from_dict(d: Mapping[str, Any]) -> RuptureTrack:
    return RuptureTrack(
        criteria=tuple(d["criteria"]),
        trigger_session_at=_req_dt(d["trigger_session_at"]),
        series_key=d["series_key"],
        mu=d["mu"],
        trough_score=d["trough_score"],
        trough_position=d["trough_position"],
        trough_response_id=d["trough_response_id"],
        sessions_since_trough=d["sessions_since_trough"],
        psq_session_at=_parse_dt(d["psq_session_at"]),
    )


def _alert_to_dict(a: OpenAlert) -> dict[str, Any]:
    return {
        "rule_id": a.rule_id,
        "severity": a.severity,
        "evidence": dict(a.evidence),
        "trigger_response_ids": sorted(a.trigger_response_ids),
        "raised_at": _dt(a.raised_at),
        "unrepaired": a.unrepaired,
        "rupture": None if a.rupture is None else _track_to_dict(a.rupture),
        "marks": [
            {"response_id": m.response_id, "instrument": m.instrument, "session_at": _dt(m.session_at)}
            for m in a.marks
        ],
        "reengage_after": _dt(a.reengage_after),
    }


def _alert_from_dict(d: Mapping[str, Any]) -> OpenAlert:
    return OpenAlert(
        rule_id=d["rule_id"],
        severity=d["severity"],
        evidence=dict(d["evidence"]),
        trigger_response_ids=frozenset(d["trigger_response_ids"]),
        raised_at=_req_dt(d["raised_at"]),
        unrepaired=d["unrepaired"],
        rupture=None if d["rupture"] is None else _track_from_dict(d["rupture"]),
        marks=tuple(
            TriggerMark(m["response_id"], m["instrument"], _req_dt(m["session_at"])) for m in d["marks"]
        ),
        reengage_after=_parse_dt(d["reengage_after"]),
    )


def state_to_dict(s: EpisodeState) -> dict[str, Any]:
    """Encode an EpisodeState as a JSON-compatible dict."""
    return {
        "version": STATE_DOC_VERSION,
        "open_alerts": {k: _alert_to_dict(a) for k, a in s.open_alerts.items()},
        "sessions": [
            {"occurred_at": _dt(o.occurred_at), "appointment_id": o.appointment_id, "kind": o.kind}
            for o in s.sessions
        ],
        "last_attended_at": _dt(s.last_attended_at),
        "rupture_closures": [
            {"closed_at": _dt(c.closed_at), "repaired": c.repaired} for c in s.rupture_closures
        ],
        "applied": dict(s.applied),
        "baselines": {
            k: {"mu": b.mu, "session_at": _dt(b.session_at), "position": b.position}
            for k, b in s.baselines.items()
        },
        "srs_seen": {
            k: {"response_id": v.response_id, "concern": v.concern, "occurred_at": _dt(v.occurred_at)}
            for k, v in s.srs_seen.items()
        },
        "lenient_pending": {
            k: {
                "response_id": c.response_id,
                "instrument": c.instrument,
                "series_key": c.series_key,
                "score": c.score,
                "mu": c.mu,
                "sd_eff": c.sd_eff,
                "drop": c.drop,
                "position": c.position,
                "session_at": _dt(c.session_at),
                "occurred_at": _dt(c.occurred_at),
            }
            for k, c in s.lenient_pending.items()
        },
        "episode_open": s.episode_open,
        "outcome_seen": {k: _dt(v) for k, v in s.outcome_seen.items()},
    }


def _map(d: Mapping[str, Any], build: Callable[[Mapping[str, Any]], T]) -> dict[str, T]:
    return {k: build(v) for k, v in d.items()}


def state_from_dict(d: Mapping[str, Any]) -> EpisodeState:
    """Decode a dict written by state_to_dict; raise InvalidStateDocument when it is malformed."""
    if d.get("version") != STATE_DOC_VERSION:
        raise InvalidStateDocument(f"unsupported episode-state document version {d.get('version')!r}")
    try:
        return EpisodeState(
            open_alerts=_map(d["open_alerts"], _alert_from_dict),
            sessions=tuple(
                SessionOutcome(_req_dt(o["occurred_at"]), o["appointment_id"], o["kind"])
                for o in d["sessions"]
            ),
            last_attended_at=_parse_dt(d["last_attended_at"]),
            rupture_closures=tuple(
                RuptureClosure(_req_dt(c["closed_at"]), c["repaired"]) for c in d["rupture_closures"]
            ),
            applied={k: int(v) for k, v in d["applied"].items()},
            baselines=_map(
                d["baselines"], lambda b: SeriesBaseline(b["mu"], _req_dt(b["session_at"]), b["position"])
            ),
            # `occurred_at` is absent from documents written before it was kept: None.
            srs_seen=_map(
                d["srs_seen"],
                lambda v: SrsSeen(v["response_id"], v["concern"], _parse_dt(v.get("occurred_at"))),
            ),
            lenient_pending=_map(
                d["lenient_pending"],
                lambda c: AlliancePoint(
                    c["response_id"],
                    c["instrument"],
                    c["series_key"],
                    c["score"],
                    c["mu"],
                    c["sd_eff"],
                    c["drop"],
                    c["position"],
                    _req_dt(c["session_at"]),
                    _parse_dt(c.get("occurred_at")),
                ),
            ),
            episode_open=bool(d["episode_open"]),
            # Absent from documents written before outcome.not-on-track: nothing seen yet.
            outcome_seen={k: _req_dt(v) for k, v in d.get("outcome_seen", {}).items()},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidStateDocument(f"malformed episode-state document: {exc!r}") from exc
