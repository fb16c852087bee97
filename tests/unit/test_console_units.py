"""The console's pure parts: sessions (idle timeout, peek does not extend) and the inbox order."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from attune_console.dashboard import cell
from attune_console.present import chart, explain, inbox_order, score, sla_due
from attune_console.sessions import SessionStore
from attune_console.settings import ConsoleSettings
from attune_shared.auth import Principal
from attune_shared.settings import ServiceSettings

LEAD = Principal("lead-north", "lead", frozenset({"north-01"}))


def test_idle_session_expires_and_polling_does_not_keep_it_alive() -> None:
    now = [0.0]
    store = SessionStore(idle_s=10, max_sessions=5, clock=lambda: now[0])
    s = store.create("dev-lead-north", LEAD)
    now[0] = 8
    assert store.peek(s.sid) == (s, False)
    now[0] = 11  # peeked at 8, used at 0: idle
    assert store.peek(s.sid) == (None, True)
    assert store.lookup(s.sid) == (None, True)
    assert store.lookup(s.sid) == (None, False)


def test_sessions_are_bounded_and_ids_random() -> None:
    store = SessionStore(idle_s=10, max_sessions=2)
    ids = {store.create("t", LEAD).sid for _ in range(3)}
    assert len(ids) == 3 and len(store) == 2


def test_open_first_then_severity_then_deadline() -> None:
    alerts = [
        {
            "alert_id": "a",
            "status": "acknowledged",
            "severity": "urgent",
            "raised_at": "2026-01-01T00:00:00Z",
        },
        {"alert_id": "b", "status": "open", "severity": "normal", "raised_at": "2026-01-01T00:00:00Z"},
        {"alert_id": "c", "status": "open", "severity": "high", "raised_at": "2026-01-02T00:00:00Z"},
        {"alert_id": "d", "status": "open", "severity": "high", "raised_at": "2026-01-01T00:00:00Z"},
    ]
    assert [a["alert_id"] for a in inbox_order(alerts)] == ["d", "c", "b", "a"]


def test_a_suppressed_cell_is_never_zero() -> None:
    row = {"improved_share": None, "suppressed_columns": ["improved_share"], "active_clients": 0}
    assert cell(row, "improved_share", "share").text == "suppressed"
    assert cell(row, "active_clients", "count").text == "0"


def _point(ref: str, day: int, score: float, **extra: object) -> dict[str, object]:
    return {"response_id": ref, "session_at": f"2026-03-{day:02d}T09:00:00+00:00", "score": score, **extra}


def test_chart_marks_a_ruptures_trigger_trough_and_repair() -> None:
    series = {
        "series": [
            {
                "instrument": "WAI-SR",
                "respondent": "client",
                "kind": "alliance",
                "score_name": "mean",
                "higher_is_better": True,
                "points": [
                    _point("rs_a", 1, 4.2),
                    _point("rs_b", 8, 4.1),
                    _point("rs_t", 15, 3.1),  # trigger
                    _point("rs_l", 22, 2.8),  # trough (lowest after the trigger)
                    _point("rs_r", 29, 4.0),  # repair
                ],
            },
            {
                "instrument": "PSQ",
                "respondent": "client",
                "kind": "rupture",
                "score_name": None,
                "higher_is_better": None,
                "points": [_point("rs_p", 15, None)],  # type: ignore[arg-type]
            },
            {
                "instrument": "ORS",
                "respondent": "client",
                "kind": "outcome",
                "score_name": "total",
                "higher_is_better": True,
                "points": [_point("rs_o", 1, 20.0), _point("rs_o2", 29, 25.0)],
            },
        ]
    }
    alert = {
        "rule_id": "alliance.rupture",
        "evidence": {"response_id": "rs_t", "trough": 2.8, "repair_response_id": "rs_r"},
    }
    got = chart(series, alert)
    assert set(got["panels"]) == {"alliance", "outcome"}  # PSQ has no score line
    alliance = got["panels"]["alliance"]
    assert [(m["mark"], m["y"]) for m in alliance["marks"]] == [
        ("trigger", 3.1),
        ("trough", 2.8),
        ("repair", 4.0),
    ]
    assert (alliance["y_min"], alliance["y_max"]) == (1, 5)  # the instrument's whole scale
    assert got["panels"]["outcome"]["marks"] == []
    assert [r["mark"] for r in got["rows"] if r["mark"]] == ["Trigger", "Trough", "Repair"]
    # The PSQ answer is a row of the table (no score to draw).
    assert len(got["rows"]) == 8 and got["rows"][0]["at"] <= got["rows"][-1]["at"]
    assert any(r["instrument"] == "PSQ" and r["score"] == "no rupture reported" for r in got["rows"])


def test_chart_marks_deteriorations_trigger_and_intake() -> None:
    series = {
        "series": [
            {
                "instrument": "PHQ-9",
                "respondent": "client",
                "kind": "outcome",
                "score_name": "total",
                "higher_is_better": False,
                "points": [
                    _point("rs_i", 1, 8.0),
                    _point("rs_x", 29, 16.0, change={"intake_response_id": "rs_i", "change": 8.0}),
                ],
            }
        ]
    }
    got = chart(series, {"rule_id": "outcome.deterioration", "evidence": {"response_id": "rs_x"}})
    assert [m["mark"] for m in got["panels"]["outcome"]["marks"]] == ["intake", "trigger"]
    assert got["panels"]["outcome"]["y_max"] == 27


def test_chart_marks_a_trigger_that_is_also_the_trough() -> None:
    points = [_point("rs_a", 1, 4.2), _point("rs_t", 8, 2.5), _point("rs_b", 15, 3.0)]
    series = {
        "series": [
            {
                "instrument": "WAI-SR",
                "respondent": "client",
                "kind": "alliance",
                "score_name": "mean",
                "points": points,
            }
        ]
    }
    got = chart(series, {"rule_id": "alliance.rupture", "evidence": {"response_id": "rs_t", "trough": 2.5}})
    assert [(m["mark"], m["x"][8:10]) for m in got["panels"]["alliance"]["marks"]] == [
        ("trigger", "08"),
        ("trough", "08"),
    ]
    assert [r["mark"] for r in got["rows"]] == ["", "Trigger, Trough", ""]


def test_chart_marks_a_psq_rupture_on_the_same_sessions_alliance_score() -> None:
    series = {
        "series": [
            {
                "instrument": "WAI-SR",
                "respondent": "client",
                "kind": "alliance",
                "score_name": "mean",
                "points": [_point("rs_a", 1, 4.2), _point("rs_w", 8, 4.0), _point("rs_b", 15, 4.6)],
            },
            {
                "instrument": "PSQ",
                "respondent": "client",
                "kind": "rupture",
                "score_name": None,
                "points": [
                    _point("rs_p", 8, None, scores={"rupture_reported": True, "tension": 5, "resolution": 1})  # type: ignore[arg-type]
                ],
            },
        ]
    }
    alert = {
        "rule_id": "alliance.rupture",
        "evidence": {
            "criterion": "psq",
            "response_id": "rs_p",
            "resolution_evidence": {"repair_response_id": "rs_b"},
        },
    }
    got = chart(series, alert)
    assert [(m["mark"], m["y"]) for m in got["panels"]["alliance"]["marks"]] == [
        ("trigger", 4.0),
        ("repair", 4.6),
    ]
    psq = next(r for r in got["rows"] if r["instrument"] == "PSQ")
    assert psq["score"] == "rupture reported, tension 5, resolution 1" and psq["mark"] == "Trigger"


NOT_ON_TRACK_ALERT = {
    "rule_id": "outcome.not-on-track",
    "evidence": {
        "instrument": "ORS",
        "instruments": ["ORS"],
        "score": 15.0,
        "response_id": "rs_3",
        "session_index": 3,
        "expected_median": 26.5,
        "expected_low": 20.25,
        "expected_high": 32.0,
        "quantiles": [0.1, 0.5, 0.9],
        "worse_side": "below",
        "model_version": "ors-2026-02-01",
        "model_fitted_at": "2026-02-01T03:00:00+00:00",
        "model_episodes": 64,
        "trigger_count": 1,
        "thresholds_used": {
            "not_on_track_min_session": 3,
            "band_low_quantile": 0.1,
            "band_high_quantile": 0.9,
        },
    },
}


def test_a_not_on_track_alert_says_the_score_against_its_expected_band() -> None:
    got = explain(NOT_ON_TRACK_ALERT)
    text = " ".join(got.sentences)
    assert (
        "ORS total 15 at session 3 is below the band expected for that session (20.25 to 32; median 26.5)"
        in text
    )
    assert "lower ORS totals mean" in text
    assert "from the 10th to the 90th percentile" in text
    assert "model ors-2026-02-01, fitted on 2026-02-01 from 64 closed episodes" in text
    assert "not recorded" not in text
    assert ("not on track min session", "3") in got.thresholds


def test_a_not_on_track_alert_on_two_instruments_names_each_band() -> None:
    ev = dict(NOT_ON_TRACK_ALERT["evidence"])  # type: ignore[arg-type]
    latest = {**ev, "instrument": "PHQ-9", "score": 16, "response_id": "rs_p", "worse_side": "above"}
    latest |= {"expected_low": 4.0, "expected_high": 12.5, "expected_median": 8.0}
    ev |= {"instruments": ["ORS", "PHQ-9"], "latest_trigger": latest, "trigger_count": 2}
    text = " ".join(explain({"rule_id": "outcome.not-on-track", "evidence": ev}).sentences)
    assert "ORS total 15 at session 3 is below" in text
    assert (
        "PHQ-9 total 16 at session 3 is above the band expected for that session (4 to 12.5; median 8)"
        in text
    )
    assert "Not on track on ORS, PHQ-9." in text


def test_chart_draws_the_expected_band_at_the_not_on_track_trigger() -> None:
    series = {
        "series": [
            {
                "instrument": "ORS",
                "respondent": "client",
                "kind": "outcome",
                "score_name": "total",
                "higher_is_better": True,
                "points": [_point("rs_1", 1, 22.0), _point("rs_2", 8, 19.0), _point("rs_3", 15, 15.0)],
            },
            {
                "instrument": "WAI-SR",
                "respondent": "client",
                "kind": "alliance",
                "score_name": "mean",
                "points": [_point("rs_w", 15, 4.0)],
            },
        ]
    }
    got = chart(series, NOT_ON_TRACK_ALERT)
    outcome = got["panels"]["outcome"]
    assert [(m["mark"], m["y"]) for m in outcome["marks"]] == [("trigger", 15.0)]
    assert outcome["bands"] == [
        {
            "x": "2026-03-15T09:00:00+00:00",
            "low": 20.25,
            "median": 26.5,
            "high": 32.0,
            "label": "Expected band",
            "line": "ORS",
        }
    ]
    assert got["panels"]["alliance"]["bands"] == []
    marked = [r["mark"] for r in got["rows"] if r["mark"]]
    assert marked == ["Trigger; expected 20.25 to 32 (median 26.5)"]
    # Another rule's alert draws no band, even with the same evidence keys.
    other = chart(series, {**NOT_ON_TRACK_ALERT, "rule_id": "outcome.deterioration"})
    assert other["panels"]["outcome"]["bands"] == []


def test_a_psq_rupture_is_explained_in_its_own_words() -> None:
    alert = {
        "rule_id": "alliance.rupture",
        "evidence": {
            "criterion": "psq",
            "instrument": "PSQ",
            "tension": 5,
            "resolution": 1,
            "baseline": 4.375,
            "thresholds": {"psq_tension_min": 3, "psq_repair_min": 4},
        },
    }
    text = " ".join(explain(alert).sentences)
    assert "tension 5 of 5 and resolution 1 of 5" in text and "at least 3" in text
    assert "not recorded" not in text and "standard deviations" not in text


def test_the_deadline_is_the_alerts_apis_under_the_clinics_own_sla() -> None:
    raised = {
        "status": "open",
        "severity": "urgent",
        "raised_at": "2026-01-01T00:00:00Z",
        "escalation_level": 0,
    }
    assert sla_due(raised) == datetime(2026, 1, 1, 1, tzinfo=UTC)  # the default: 1 h
    clinic = {**raised, "escalation_due_at": "2026-01-01T00:30:00Z"}  # a clinic with a 30-minute SLA
    assert sla_due(clinic) == datetime(2026, 1, 1, 0, 30, tzinfo=UTC)
    assert sla_due({**clinic, "status": "acknowledged", "escalation_due_at": None}) is None


def test_production_console_needs_no_pseudonym_key(tmp_path: Path) -> None:
    """The browser-facing process is never given the key; every other service still must be."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text('{"tokens": []}')
    ConsoleSettings(attune_env="production", attune_tokens_file=tokens)
    with pytest.raises(ValidationError, match="ATTUNE_PSEUDONYM_KEY"):
        ServiceSettings(attune_env="production", attune_tokens_file=tokens)


def test_scores_read_as_people_write_them() -> None:
    assert [score(v) for v in (4.083333333, 15.0, 3.5, 0, None, "rupture reported")] == [
        "4.08",
        "15",
        "3.5",
        "0",
        "",
        "rupture reported",
    ]


def test_path_values_stay_one_segment() -> None:
    """What the console puts in an API's path: never a dot segment (the HTTP client would resolve it
    and leave the segment), never a trailing newline that `$` would have let through."""
    from attune_console.app import CLINIC_ID, DOT_SEGMENTS

    assert CLINIC_ID.fullmatch("north-01") and CLINIC_ID.fullmatch("a.b")
    assert not any(CLINIC_ID.fullmatch(v) for v in (".", "..", "north-01\n", "north/01", ""))
    assert {".", ".."} == DOT_SEGMENTS
