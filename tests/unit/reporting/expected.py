"""Hand-computed figures of scenario.py, written out as literals (see the working in the comments)."""

from __future__ import annotations

from typing import Any

# Every figure column at "nothing happened": counts 0, rates, means and medians null.
ZERO: dict[str, Any] = {
    "sessions_attended": 0,
    "sessions_missed": 0,
    "sessions_missed_no_show": 0,
    "sessions_missed_late_cancel": 0,
    "sessions_cancelled_by_client": 0,
    "sessions_cancelled_by_clinician": 0,
    "sessions_cancelled_by_clinic": 0,
    "attendance_rate": None,
    "active_clients": 0,
    "episodes_opened": 0,
    "episodes_closed": 0,
    "outcome_measured": 0,
    "reliable_improvement": 0,
    "reliable_deterioration": 0,
    "improved_share": None,
    "dropout_unilateral": 0,
    "dropout_unilateral_rate": None,
    "dropout_last_missed": 0,
    "dropout_last_missed_rate": None,
    "dropout_low_dose": 0,
    "dropout_low_dose_rate": None,
    "wai_sr_responses": 0,
    "wai_sr_mean": None,
    "wai_sr_task_mean": None,
    "wai_sr_bond_mean": None,
    "wai_sr_goal_mean": None,
    "srs_responses": 0,
    "srs_total_mean": None,
    "srs_concern_share": None,
    "ruptures_raised": 0,
    "ruptures_repaired": 0,
    "ruptures_unrepaired": 0,
    "repair_rate": None,
    "median_sessions_to_repair": None,
    "alerts_raised": 0,
    "alerts_raised_safety_phq9_item9": 0,
    "alerts_raised_alliance_rupture": 0,
    "alerts_raised_outcome_deterioration": 0,
    "alerts_raised_engagement_dropout_risk": 0,
    "alerts_raised_outcome_not_on_track": 0,
    "alerts_raised_other_rules": 0,
    "alerts_raised_urgent": 0,
    "alerts_raised_high": 0,
    "alerts_raised_normal": 0,
    "alerts_open": 0,
    "alerts_acknowledged": 0,
    "median_hours_to_acknowledge": None,
    "acknowledged_within_sla_share": None,
    "alerts_escalated": 0,
    "escalations": 0,
}
# Columns that have no modality (null on by=modality rows).
NO_MODALITY = [k for k in ZERO if not k.startswith(("sessions_", "attendance", "active", "wai_sr", "srs_"))]


def dims(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "row_type": "row",
        "clinic_id": None,
        "month": None,
        "clinician_id": None,
        "modality": None,
        "period_from": "2026-01",
        "period_to": "2026-02",
        "suppressed": False,
        "suppressed_columns": [],
    }
    return base | kw


def full(dimensions: dict[str, Any], **figures: Any) -> dict[str, Any]:
    """A complete expected row: dimensions, ZERO, then the figures given."""
    unknown = set(figures) - set(ZERO)
    assert not unknown, unknown
    return dimensions | ZERO | figures


def modality(dimensions: dict[str, Any], **figures: Any) -> dict[str, Any]:
    """A by=modality row: episode, outcome and alert columns are null there."""
    return full(dimensions, **figures) | dict.fromkeys(NO_MODALITY)


# ----------------------------------------------------------------- north-01, January
# attended a1 a2 b1 c1 e1 e2 e3 e4 = 8; missed a3 (no-show) b2 (late cancel) = 2; a4 cancelled by the
# client; 8 / 10 = 0.8; active A B C E; opened epA epB epC epE.
# WAI-SR (client, current revisions): rA1 4.0/4.0/4.25/3.75, rA2 v2 3.5 x4, wB1 2.5/2.0/3.0/2.5:
#   mean 10/3, task 9.5/3, bond 10.75/3, goal 9.75/3. SRS 38, 30 (concern), 35.5 (concern): 103.5/3, 2/3.
# Ruptures al-1 (repaired in 2 sessions), al-2 (unrepaired): 1/2. Alerts: both high, acknowledged
# after 6 h (within 24 h) and 48 h (not): median 27, share 1/2; al-2 escalated once; both resolved.
NORTH_JAN = {
    "sessions_attended": 8,
    "sessions_missed": 2,
    "sessions_missed_no_show": 1,
    "sessions_missed_late_cancel": 1,
    "sessions_cancelled_by_client": 1,
    "attendance_rate": 0.8,
    "active_clients": 4,
    "episodes_opened": 4,
    "wai_sr_responses": 3,
    "wai_sr_mean": 3.3333,
    "wai_sr_task_mean": 3.1667,
    "wai_sr_bond_mean": 3.5833,
    "wai_sr_goal_mean": 3.25,
    "srs_responses": 3,
    "srs_total_mean": 34.5,
    "srs_concern_share": 0.6667,
    "ruptures_raised": 2,
    "ruptures_repaired": 1,
    "ruptures_unrepaired": 1,
    "repair_rate": 0.5,
    "median_sessions_to_repair": 2.0,
    "alerts_raised": 2,
    "alerts_raised_alliance_rupture": 2,
    "alerts_raised_high": 2,
    "alerts_acknowledged": 2,
    "median_hours_to_acknowledge": 27.0,
    "acknowledged_within_sla_share": 0.5,
    "alerts_escalated": 1,
    "escalations": 1,
}
# ----------------------------------------------------------------- north-01, February
# attended a5 b3 c2 d1 d3 d4 = 6; no-shows b4 d2 e5 = 3; d5 cancelled by the client, b5 by the
# clinician; 6 / 9; active A B C D; opened epD; closed epA (planned, 3 attended, PHQ-9 improved),
# epB (unilateral, last b4 missed, 2 attended, ORS deteriorated), epD (mutual, last d5 cancelled by
# the client: not a dropout, 3 attended), epE (other, last e5 missed, 4 attended, GAD-7 measured).
# WAI-SR rA5 4.5. Alerts: al-3 urgent acknowledged after 0.5 h (within 1 h), al-4 normal never
# acknowledged nor escalated (left out of the SLA share), al-5 high escalated twice, still open.
NORTH_FEB = {
    "sessions_attended": 6,
    "sessions_missed": 3,
    "sessions_missed_no_show": 3,
    "sessions_cancelled_by_client": 1,
    "sessions_cancelled_by_clinician": 1,
    "attendance_rate": 0.6667,
    "active_clients": 4,
    "episodes_opened": 1,
    "episodes_closed": 4,
    "outcome_measured": 3,
    "reliable_improvement": 1,
    "reliable_deterioration": 1,
    "improved_share": 0.25,
    "dropout_unilateral": 1,
    "dropout_unilateral_rate": 0.25,
    "dropout_last_missed": 2,
    "dropout_last_missed_rate": 0.5,
    "dropout_low_dose": 3,
    "dropout_low_dose_rate": 0.75,
    "wai_sr_responses": 1,
    "wai_sr_mean": 4.5,
    "wai_sr_task_mean": 4.5,
    "wai_sr_bond_mean": 4.5,
    "wai_sr_goal_mean": 4.5,
    "alerts_raised": 3,
    "alerts_raised_safety_phq9_item9": 1,
    "alerts_raised_outcome_deterioration": 1,
    "alerts_raised_engagement_dropout_risk": 1,
    "alerts_raised_urgent": 1,
    "alerts_raised_high": 1,
    "alerts_raised_normal": 1,
    "alerts_open": 2,
    "alerts_acknowledged": 1,
    "median_hours_to_acknowledge": 0.5,
    "acknowledged_within_sla_share": 0.5,
    "alerts_escalated": 1,
    "escalations": 2,
}
# ----------------------------------------------------------------- north-01, January-February
# 14 / 19 = 0.7368; active A B C D E. WAI-SR (4 + 3.5 + 2.5 + 4.5) / 4, task 14/4, bond 15.25/4,
# goal 14.25/4. Acknowledged after 6, 48, 0.5 h: median 6; within SLA 2 of 4 eligible.
NORTH_TOTAL = {
    "sessions_attended": 14,
    "sessions_missed": 5,
    "sessions_missed_no_show": 4,
    "sessions_missed_late_cancel": 1,
    "sessions_cancelled_by_client": 2,
    "sessions_cancelled_by_clinician": 1,
    "attendance_rate": 0.7368,
    "active_clients": 5,
    "episodes_opened": 5,
    "episodes_closed": 4,
    "outcome_measured": 3,
    "reliable_improvement": 1,
    "reliable_deterioration": 1,
    "improved_share": 0.25,
    "dropout_unilateral": 1,
    "dropout_unilateral_rate": 0.25,
    "dropout_last_missed": 2,
    "dropout_last_missed_rate": 0.5,
    "dropout_low_dose": 3,
    "dropout_low_dose_rate": 0.75,
    "wai_sr_responses": 4,
    "wai_sr_mean": 3.625,
    "wai_sr_task_mean": 3.5,
    "wai_sr_bond_mean": 3.8125,
    "wai_sr_goal_mean": 3.5625,
    "srs_responses": 3,
    "srs_total_mean": 34.5,
    "srs_concern_share": 0.6667,
    "ruptures_raised": 2,
    "ruptures_repaired": 1,
    "ruptures_unrepaired": 1,
    "repair_rate": 0.5,
    "median_sessions_to_repair": 2.0,
    "alerts_raised": 5,
    "alerts_raised_safety_phq9_item9": 1,
    "alerts_raised_alliance_rupture": 2,
    "alerts_raised_outcome_deterioration": 1,
    "alerts_raised_engagement_dropout_risk": 1,
    "alerts_raised_urgent": 1,
    "alerts_raised_high": 3,
    "alerts_raised_normal": 1,
    "alerts_open": 2,
    "alerts_acknowledged": 3,
    "median_hours_to_acknowledge": 6.0,
    "acknowledged_within_sla_share": 0.5,
    "alerts_escalated": 2,
    "escalations": 3,
}
# ----------------------------------------------------------------- by clinician (session facts by
# their clinician, episodes by the episode's current clinician: epC moved to c-2, measures and
# alerts by their own clinician; al-5 has none)
CLINICIAN_C1 = {
    # a1 a2 a5 c1 e1-e4; no-shows a3 e5; a4 by the client; clients A C E
    "sessions_attended": 8,
    "sessions_missed": 2,
    "sessions_missed_no_show": 2,
    "sessions_cancelled_by_client": 1,
    "attendance_rate": 0.8,
    "active_clients": 3,
    # epA, epE opened and closed
    "episodes_opened": 2,
    "episodes_closed": 2,
    "outcome_measured": 2,
    "reliable_improvement": 1,
    "improved_share": 0.5,
    "dropout_unilateral_rate": 0.0,
    "dropout_last_missed": 1,
    "dropout_last_missed_rate": 0.5,
    "dropout_low_dose": 1,
    "dropout_low_dose_rate": 0.5,
    # rA1 rA2 rA5: 12/3, task 12/3, bond 12.25/3, goal 11.75/3
    "wai_sr_responses": 3,
    "wai_sr_mean": 4.0,
    "wai_sr_task_mean": 4.0,
    "wai_sr_bond_mean": 4.0833,
    "wai_sr_goal_mean": 3.9167,
    "srs_responses": 3,
    "srs_total_mean": 34.5,
    "srs_concern_share": 0.6667,
    # al-2 (unrepaired rupture), al-3 (urgent), al-4 (normal)
    "ruptures_raised": 1,
    "ruptures_unrepaired": 1,
    "repair_rate": 0.0,
    "alerts_raised": 3,
    "alerts_raised_safety_phq9_item9": 1,
    "alerts_raised_alliance_rupture": 1,
    "alerts_raised_engagement_dropout_risk": 1,
    "alerts_raised_urgent": 1,
    "alerts_raised_high": 1,
    "alerts_raised_normal": 1,
    "alerts_open": 1,
    "alerts_acknowledged": 2,
    "median_hours_to_acknowledge": 24.25,
    "acknowledged_within_sla_share": 0.5,
    "alerts_escalated": 1,
    "escalations": 1,
}
CLINICIAN_C2 = {
    # b1 b3 c2 d1 d3 d4; no-shows b4 d2, late cancel b2; d5 by the client, b5 by the clinician
    "sessions_attended": 6,
    "sessions_missed": 3,
    "sessions_missed_no_show": 2,
    "sessions_missed_late_cancel": 1,
    "sessions_cancelled_by_client": 1,
    "sessions_cancelled_by_clinician": 1,
    "attendance_rate": 0.6667,
    "active_clients": 3,
    # epB epC epD opened; epB epD closed
    "episodes_opened": 3,
    "episodes_closed": 2,
    "outcome_measured": 1,
    "reliable_deterioration": 1,
    "improved_share": 0.0,
    "dropout_unilateral": 1,
    "dropout_unilateral_rate": 0.5,
    "dropout_last_missed": 1,
    "dropout_last_missed_rate": 0.5,
    "dropout_low_dose": 2,
    "dropout_low_dose_rate": 1.0,
    "wai_sr_responses": 1,
    "wai_sr_mean": 2.5,
    "wai_sr_task_mean": 2.0,
    "wai_sr_bond_mean": 3.0,
    "wai_sr_goal_mean": 2.5,
    # al-1
    "ruptures_raised": 1,
    "ruptures_repaired": 1,
    "repair_rate": 1.0,
    "median_sessions_to_repair": 2.0,
    "alerts_raised": 1,
    "alerts_raised_alliance_rupture": 1,
    "alerts_raised_high": 1,
    "alerts_acknowledged": 1,
    "median_hours_to_acknowledge": 6.0,
    "acknowledged_within_sla_share": 1.0,
}
CLINICIAN_UNASSIGNED = {
    # al-5 only: escalated twice, never acknowledged
    "alerts_raised": 1,
    "alerts_raised_outcome_deterioration": 1,
    "alerts_raised_high": 1,
    "alerts_open": 1,
    "acknowledged_within_sla_share": 0.0,
    "alerts_escalated": 1,
    "escalations": 2,
}
# ----------------------------------------------------------------- by modality (cancellations and
# measures borrow their appointment's modality: a4 video, b5 phone, d5 in_person)
MODALITY_VIDEO = {
    # a1 a2 a5 c1 c2 e1-e4; e5 no-show; a4 by the client; clients A C E
    "sessions_attended": 9,
    "sessions_missed": 1,
    "sessions_missed_no_show": 1,
    "sessions_cancelled_by_client": 1,
    "attendance_rate": 0.9,
    "active_clients": 3,
    "wai_sr_responses": 3,
    "wai_sr_mean": 4.0,
    "wai_sr_task_mean": 4.0,
    "wai_sr_bond_mean": 4.0833,
    "wai_sr_goal_mean": 3.9167,
    "srs_responses": 3,
    "srs_total_mean": 34.5,
    "srs_concern_share": 0.6667,
}
MODALITY_IN_PERSON = {
    # b1 d1 d3 d4; no-shows a3 d2; d5 by the client; active B D
    "sessions_attended": 4,
    "sessions_missed": 2,
    "sessions_missed_no_show": 2,
    "sessions_cancelled_by_client": 1,
    "attendance_rate": 0.6667,
    "active_clients": 2,
    "wai_sr_responses": 1,
    "wai_sr_mean": 2.5,
    "wai_sr_task_mean": 2.0,
    "wai_sr_bond_mean": 3.0,
    "wai_sr_goal_mean": 2.5,
}
MODALITY_PHONE = {
    # b3; no-show b4, late cancel b2; b5 by the clinician
    "sessions_attended": 1,
    "sessions_missed": 2,
    "sessions_missed_no_show": 1,
    "sessions_missed_late_cancel": 1,
    "sessions_cancelled_by_clinician": 1,
    "attendance_rate": 0.3333,
    "active_clients": 1,
}
# ----------------------------------------------------------------- south-01 and the network
SOUTH = {"sessions_attended": 1, "attendance_rate": 1.0, "active_clients": 1, "episodes_opened": 1}
NETWORK_TOTAL = NORTH_TOTAL | {
    "sessions_attended": 15,
    "attendance_rate": 0.75,  # 15 / 20
    "active_clients": 6,
    "episodes_opened": 6,
}
NETWORK_JAN = NORTH_JAN | {
    "sessions_attended": 9,
    "attendance_rate": 0.8182,  # 9 / 11
    "active_clients": 5,
    "episodes_opened": 5,
}
