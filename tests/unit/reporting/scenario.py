"""A fixed two-month story of two clinics; test_fold_figures.py works out every figure of it by hand.

north-01, clinicians c-1 and c-2, January and February 2026:
  A  episode epA: opened Jan 5 (c-1); a1 Jan 5 video attended, a2 Jan 12 video attended,
     a3 Jan 19 in_person no-show, a4 Jan 26 (video) cancelled by the client, a5 Feb 2 video
     attended; closed Feb 10 planned. WAI-SR at a1 (4.0), a2 (3.0, amended to 3.5), a5 (4.5) and a
     clinician-rated WAI-SR at a1 (excluded); SRS 38 at a1, 30 at a2; PHQ-9 at a5 reliably improved.
  B  episode epB: opened Jan 6 (c-2); b1 Jan 6 in_person attended, b2 Jan 13 phone late cancel,
     b3 Feb 3 phone attended, b4 Feb 10 phone no-show, b5 Feb 15 (phone) cancelled by the
     clinician; closed Feb 20 unilateral. WAI-SR 2.5 at b1; ORS at b3 reliably deteriorated.
  C  episode epC: opened Jan 20 (c-1), reassigned to c-2 on Feb 1; c1 Jan 20 video attended (c-1),
     c2 Feb 17 video attended (c-2). SRS 35.5 at c1. Not closed.
  D  episode epD: opened Feb 1 (c-2); d1 Feb 1, d3 Feb 15, d4 Feb 22 in_person attended, d2 Feb 8
     no-show, d5 Feb 24 (in_person) cancelled by the client; closed Feb 25 mutual.
  E  episode epE: opened Jan 2 (c-1); e1..e4 Jan 2, 9, 16, 23 video attended, e5 Feb 6 video
     no-show; closed Feb 27 other. GAD-7 at e4 with no reliable change.
  Alerts: al-1 rupture (B, c-2, high) raised Jan 13 12:00, acknowledged 18:00, repaired Feb 3 after
  2 sessions; al-2 rupture (A, c-1, high) raised Jan 12 15:00, escalated Jan 13, acknowledged Jan 14
  15:00, marked unrepaired Jan 20, resolved episode_ended Feb 10; al-3 safety (C, c-1, urgent)
  raised Feb 17 10:00, acknowledged 10:30; al-4 dropout risk (E, c-1, normal) raised Feb 6,
  resolved episode_ended Feb 27; al-5 deterioration (B, no clinician, high) raised Feb 3 13:00,
  escalated twice, open.
south-01: F episode epF opened Jan 10 (s-1); f1 Jan 10 phone attended.
"""

from __future__ import annotations

from typing import Any

from tests.unit.reporting.builders import Stream

N, S = "north-01", "south-01"
WAI_A1 = {"total": 48.0, "mean": 4.0, "task": 4.0, "bond": 4.25, "goal": 3.75, "items_missing": 0}
WAI_A2_V1 = {"total": 36.0, "mean": 3.0, "task": 3.0, "bond": 3.0, "goal": 3.0, "items_missing": 0}
WAI_A2_V2 = {"total": 42.0, "mean": 3.5, "task": 3.5, "bond": 3.5, "goal": 3.5, "items_missing": 0}
WAI_A5 = {"total": 54.0, "mean": 4.5, "task": 4.5, "bond": 4.5, "goal": 4.5, "items_missing": 0}
WAI_B1 = {"total": 30.0, "mean": 2.5, "task": 2.0, "bond": 3.0, "goal": 2.5, "items_missing": 0}
WAI_CLINICIAN = {"total": 60.0, "mean": 5.0, "task": 5.0, "bond": 5.0, "goal": 5.0, "items_missing": 0}


def srs(total: float) -> dict[str, Any]:
    return {"total": total, "alliance_concern": total < 36, "item_concern": total < 36}


def build() -> list[Any]:
    """Every event of the story, each client's events in their own order."""
    s = Stream()
    # ---- A
    s.opened(N, "A", "epA", "2026-01-05", "c-1")
    for appt, start, modality in (
        ("a1", "2026-01-05 10:00", "video"),
        ("a2", "2026-01-12 10:00", "video"),
        ("a3", "2026-01-19 10:00", "in_person"),
        ("a4", "2026-01-26 10:00", "video"),
        ("a5", "2026-02-02 10:00", "video"),
    ):
        s.scheduled(N, "A", "epA", appt, start, modality, "c-1")
    s.attended(N, "A", "epA", "a1", "2026-01-05 10:00", "video", "c-1")
    s.measure(N, "A", "epA", "rA1", "WAI-SR", WAI_A1, "2026-01-05 10:00", clinician="c-1", appt="a1")
    s.measure(
        N,
        "A",
        "epA",
        "rA1c",
        "WAI-SR",
        WAI_CLINICIAN,
        "2026-01-05 10:00",
        clinician="c-1",
        appt="a1",
        respondent="clinician",
    )
    s.measure(N, "A", "epA", "sA1", "SRS", srs(38.0), "2026-01-05 10:00", clinician="c-1", appt="a1")
    s.measure(N, "A", "epA", "pA1", "PHQ-9", {"total": 14}, "2026-01-05 10:00", clinician="c-1", appt="a1")
    s.attended(N, "A", "epA", "a2", "2026-01-12 10:00", "video", "c-1")
    s.measure(N, "A", "epA", "rA2", "WAI-SR", WAI_A2_V1, "2026-01-12 10:00", clinician="c-1", appt="a2")
    s.measure(N, "A", "epA", "sA2", "SRS", srs(30.0), "2026-01-12 10:00", clinician="c-1", appt="a2")
    al2 = {"alert_id": "al-2", "clinic": N, "client": "A", "episode": "epA", "clinician": "c-1"}
    al2 |= {"rule": "alliance.rupture", "severity": "high", "raised": "2026-01-12 15:00"}
    s.alert("alert.raised", "2026-01-12 15:00", **al2)
    s.measure(
        N, "A", "epA", "rA2", "WAI-SR", WAI_A2_V2, "2026-01-12 10:00", clinician="c-1", appt="a2", revision=2
    )
    s.alert("alert.escalated", "2026-01-13 15:00", escalation=1, **al2)
    s.alert(
        "alert.acknowledged",
        "2026-01-14 15:00",
        status="acknowledged",
        acknowledged="2026-01-14 15:00",
        escalation=1,
        **al2,
    )
    s.missed(N, "A", "epA", "a3", "2026-01-19 10:00", "in_person", "c-1", "no_show")
    s.alert(
        "alert.updated",
        "2026-01-20 09:00",
        status="acknowledged",
        acknowledged="2026-01-14 15:00",
        escalation=1,
        evidence={"unrepaired": True},
        **al2,
    )
    s.cancelled(N, "A", "epA", "a4", "2026-01-26 08:00", "c-1", "client")
    s.attended(N, "A", "epA", "a5", "2026-02-02 10:00", "video", "c-1")
    s.measure(N, "A", "epA", "rA5", "WAI-SR", WAI_A5, "2026-02-02 10:00", clinician="c-1", appt="a5")
    s.measure(
        N,
        "A",
        "epA",
        "pA5",
        "PHQ-9",
        {"total": 7},
        "2026-02-02 10:00",
        clinician="c-1",
        appt="a5",
        change=(True, False),
    )
    s.closed(N, "A", "epA", "2026-02-10", "planned")
    s.alert(
        "alert.resolved",
        "2026-02-10 17:00",
        status="resolved",
        acknowledged="2026-01-14 15:00",
        resolved="2026-02-10 17:00",
        resolution="episode_ended",
        escalation=1,
        evidence={"close_reason": "planned", "unrepaired": True},
        **al2,
    )
    # ---- B
    s.opened(N, "B", "epB", "2026-01-06", "c-2")
    for appt, start, modality in (
        ("b1", "2026-01-06 11:00", "in_person"),
        ("b2", "2026-01-13 11:00", "phone"),
        ("b3", "2026-02-03 11:00", "phone"),
        ("b4", "2026-02-10 11:00", "phone"),
        ("b5", "2026-02-15 11:00", "phone"),
    ):
        s.scheduled(N, "B", "epB", appt, start, modality, "c-2")
    s.attended(N, "B", "epB", "b1", "2026-01-06 11:00", "in_person", "c-2")
    s.measure(N, "B", "epB", "wB1", "WAI-SR", WAI_B1, "2026-01-06 11:00", clinician="c-2", appt="b1")
    s.measure(N, "B", "epB", "oB1", "ORS", {"total": 30.0}, "2026-01-06 11:00", clinician="c-2", appt="b1")
    s.missed(N, "B", "epB", "b2", "2026-01-13 11:00", "phone", "c-2", "late_cancel")
    al1 = {"alert_id": "al-1", "clinic": N, "client": "B", "episode": "epB", "clinician": "c-2"}
    al1 |= {"rule": "alliance.rupture", "severity": "high", "raised": "2026-01-13 12:00"}
    s.alert("alert.raised", "2026-01-13 12:00", **al1)
    s.alert(
        "alert.acknowledged",
        "2026-01-13 18:00",
        status="acknowledged",
        acknowledged="2026-01-13 18:00",
        **al1,
    )
    s.attended(N, "B", "epB", "b3", "2026-02-03 11:00", "phone", "c-2")
    s.measure(
        N,
        "B",
        "epB",
        "oB3",
        "ORS",
        {"total": 24.0},
        "2026-02-03 11:00",
        clinician="c-2",
        appt="b3",
        change=(False, True),
    )
    s.alert(
        "alert.resolved",
        "2026-02-03 12:00",
        status="resolved",
        acknowledged="2026-01-13 18:00",
        resolved="2026-02-03 12:00",
        resolution="repaired",
        evidence={"sessions_to_repair": 2},
        **al1,
    )
    al5 = {"alert_id": "al-5", "clinic": N, "client": "B", "episode": "epB", "clinician": None}
    al5 |= {"rule": "outcome.deterioration", "severity": "high", "raised": "2026-02-03 13:00"}
    s.alert("alert.raised", "2026-02-03 13:00", **al5)
    s.alert("alert.escalated", "2026-02-04 13:00", escalation=1, **al5)
    s.alert("alert.escalated", "2026-02-05 13:00", escalation=2, **al5)
    s.missed(N, "B", "epB", "b4", "2026-02-10 11:00", "phone", "c-2", "no_show")
    s.cancelled(N, "B", "epB", "b5", "2026-02-14 09:00", "c-2", "clinician")
    s.closed(N, "B", "epB", "2026-02-20", "unilateral")
    # ---- C
    s.opened(N, "C", "epC", "2026-01-20", "c-1")
    s.scheduled(N, "C", "epC", "c1", "2026-01-20 14:00", "video", "c-1")
    s.attended(N, "C", "epC", "c1", "2026-01-20 14:00", "video", "c-1")
    s.measure(N, "C", "epC", "sC1", "SRS", srs(35.5), "2026-01-20 14:00", clinician="c-1", appt="c1")
    s.assigned(N, "C", "epC", "2026-02-01 09:00", "c-2")
    s.scheduled(N, "C", "epC", "c2", "2026-02-17 14:00", "video", "c-2")
    s.attended(N, "C", "epC", "c2", "2026-02-17 14:00", "video", "c-2")
    al3 = {"alert_id": "al-3", "clinic": N, "client": "C", "episode": "epC", "clinician": "c-1"}
    al3 |= {"rule": "safety.phq9-item9", "severity": "urgent", "raised": "2026-02-17 10:00"}
    s.alert("alert.raised", "2026-02-17 10:00", **al3)
    s.alert(
        "alert.acknowledged",
        "2026-02-17 10:30",
        status="acknowledged",
        acknowledged="2026-02-17 10:30",
        **al3,
    )
    # ---- D
    s.opened(N, "D", "epD", "2026-02-01", "c-2")
    for appt, start in (
        ("d1", "2026-02-01 09:00"),
        ("d2", "2026-02-08 09:00"),
        ("d3", "2026-02-15 09:00"),
        ("d4", "2026-02-22 09:00"),
        ("d5", "2026-02-24 09:00"),
    ):
        s.scheduled(N, "D", "epD", appt, start, "in_person", "c-2")
    s.attended(N, "D", "epD", "d1", "2026-02-01 09:00", "in_person", "c-2")
    s.missed(N, "D", "epD", "d2", "2026-02-08 09:00", "in_person", "c-2", "no_show")
    s.attended(N, "D", "epD", "d3", "2026-02-15 09:00", "in_person", "c-2")
    s.attended(N, "D", "epD", "d4", "2026-02-22 09:00", "in_person", "c-2")
    s.cancelled(N, "D", "epD", "d5", "2026-02-23 18:00", "c-2", "client")
    s.closed(N, "D", "epD", "2026-02-25", "mutual")
    # ---- E
    s.opened(N, "E", "epE", "2026-01-02", "c-1")
    for i, day in enumerate(("2026-01-02", "2026-01-09", "2026-01-16", "2026-01-23"), start=1):
        s.scheduled(N, "E", "epE", f"e{i}", f"{day} 15:00", "video", "c-1")
        s.attended(N, "E", "epE", f"e{i}", f"{day} 15:00", "video", "c-1")
    s.measure(
        N,
        "E",
        "epE",
        "gE4",
        "GAD-7",
        {"total": 9},
        "2026-01-23 15:00",
        clinician="c-1",
        appt="e4",
        change=(False, False),
    )
    s.scheduled(N, "E", "epE", "e5", "2026-02-06 15:00", "video", "c-1")
    s.missed(N, "E", "epE", "e5", "2026-02-06 15:00", "video", "c-1", "no_show")
    al4 = {"alert_id": "al-4", "clinic": N, "client": "E", "episode": "epE", "clinician": "c-1"}
    al4 |= {"rule": "engagement.dropout-risk", "severity": "normal", "raised": "2026-02-06 16:00"}
    s.alert("alert.raised", "2026-02-06 16:00", **al4)
    s.closed(N, "E", "epE", "2026-02-27", "other")
    s.alert(
        "alert.resolved",
        "2026-02-27 17:00",
        status="resolved",
        resolved="2026-02-27 17:00",
        resolution="episode_ended",
        **al4,
    )
    # ---- F (south-01)
    s.opened(S, "F", "epF", "2026-01-10", "s-1")
    s.scheduled(S, "F", "epF", "f1", "2026-01-10 09:00", "phone", "s-1")
    s.attended(S, "F", "epF", "f1", "2026-01-10 09:00", "phone", "s-1")
    return s.events
