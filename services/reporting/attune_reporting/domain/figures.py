"""Report columns, and the figures of one report row from summed parts (with small-cell suppression)."""

from __future__ import annotations

import functools
import operator
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from attune_reporting.domain.cells import GROUPS, Part

KNOWN_RULES: Final = (
    "safety.phq9-item9",
    "alliance.rupture",
    "outcome.deterioration",
    "engagement.dropout-risk",
    "outcome.not-on-track",
)
SEVERITIES: Final = ("urgent", "high", "normal")
DECIMALS: Final = 4


@dataclass(frozen=True, slots=True)
class Column:
    """One report column: its name (JSON key and CSV header), the client group it is computed from
    (None for dimensions) and what it means."""

    name: str
    group: str | None
    doc: str


def _rule_column(rule_id: str) -> str:
    return "alerts_raised_" + rule_id.replace(".", "_").replace("-", "_")


DIMENSIONS: Final = (
    Column("row_type", None, '"row", or "total" for the last row (the whole scope over the whole period)'),
    Column("clinic_id", None, "the clinic; null on network-wide rows"),
    Column("month", None, "YYYY-MM on by=month rows; null when the row spans the period"),
    Column("clinician_id", None, 'the clinician on by=clinician rows ("unassigned" for none); else null'),
    Column("modality", None, "in_person, video or phone on by=modality rows; else null"),
    Column("period_from", None, "first month the row covers (YYYY-MM)"),
    Column("period_to", None, "last month the row covers (YYYY-MM)"),
    Column("suppressed", None, "true when some figures of the row are withheld (ops, small cells)"),
    Column("suppressed_columns", None, "the withheld columns (JSON list; CSV: joined with ';')"),
)

FIGURES: Final = (
    Column("sessions_attended", "sessions", "session.attended events"),
    Column("sessions_missed", "sessions", "session.missed events (no_show + late_cancel)"),
    Column("sessions_missed_no_show", "sessions", "session.missed with reason no_show"),
    Column("sessions_missed_late_cancel", "sessions", "session.missed with reason late_cancel"),
    Column("sessions_cancelled_by_client", "sessions", "session.cancelled by the client"),
    Column("sessions_cancelled_by_clinician", "sessions", "session.cancelled by the clinician"),
    Column("sessions_cancelled_by_clinic", "sessions", "session.cancelled by the clinic"),
    Column("attendance_rate", "sessions", "attended / (attended + missed); null without sessions"),
    Column("active_clients", "active", "distinct clients with at least one attended session in the period"),
    Column("episodes_opened", "episodes", "episodes whose opened_on falls in the period"),
    Column("episodes_closed", "episodes", "episodes whose closed_on falls in the period"),
    Column("outcome_measured", "closed", "closed episodes with a change-from-intake on ORS, PHQ-9 or GAD-7"),
    Column(
        "reliable_improvement",
        "closed",
        "closed episodes whose latest ORS/PHQ-9/GAD-7 change shows reliable improvement on one "
        "instrument and reliable deterioration on none",
    ),
    Column(
        "reliable_deterioration",
        "closed",
        "closed episodes whose latest change on some ORS/PHQ-9/GAD-7 shows reliable deterioration",
    ),
    Column("improved_share", "closed", "reliable_improvement / episodes closed"),
    Column("dropout_unilateral", "closed", "closed episodes with reason unilateral"),
    Column("dropout_unilateral_rate", "closed", "dropout_unilateral / episodes closed"),
    Column(
        "dropout_last_missed",
        "closed",
        "closed episodes whose last session (attended, missed or cancelled by the client; by "
        "scheduled start) was missed or cancelled by the client, closed neither planned nor mutual",
    ),
    Column("dropout_last_missed_rate", "closed", "dropout_last_missed / episodes closed"),
    Column("dropout_low_dose", "closed", "closed episodes with fewer than 4 attended sessions"),
    Column("dropout_low_dose_rate", "closed", "dropout_low_dose / episodes closed"),
    Column("wai_sr_responses", "wai_sr", "client-rated WAI-SR responses (current revision)"),
    Column("wai_sr_mean", "wai_sr", "mean of the responses' WAI-SR mean score (1..5)"),
    Column("wai_sr_task_mean", "wai_sr", "mean WAI-SR Task subscale"),
    Column("wai_sr_bond_mean", "wai_sr", "mean WAI-SR Bond subscale"),
    Column("wai_sr_goal_mean", "wai_sr", "mean WAI-SR Goal subscale"),
    Column("srs_responses", "srs", "client-rated SRS responses (current revision)"),
    Column("srs_total_mean", "srs", "mean SRS total (0..40)"),
    Column("srs_concern_share", "srs", "share of SRS responses with alliance_concern"),
    Column("ruptures_raised", "ruptures", "alliance.rupture alerts raised in the period"),
    Column("ruptures_repaired", "ruptures", "of those, resolved repaired"),
    Column(
        "ruptures_unrepaired",
        "ruptures",
        'of those, not repaired and marked "unrepaired" in evidence or resolved episode_ended',
    ),
    Column("repair_rate", "ruptures", "repaired / (repaired + unrepaired)"),
    Column("median_sessions_to_repair", "ruptures", "median scored sessions from trough to repair"),
    Column("alerts_raised", "alerts", "alerts raised in the period (all rules)"),
    *(Column(_rule_column(r), "alerts", f"alerts raised by rule {r}") for r in KNOWN_RULES),
    Column("alerts_raised_other_rules", "alerts", "alerts raised by any other rule"),
    *(Column(f"alerts_raised_{s}", "alerts", f"alerts raised with severity {s}") for s in SEVERITIES),
    Column("alerts_open", "alerts", "of the alerts raised in the period, those not resolved yet"),
    Column("alerts_acknowledged", "alerts", "of those, acknowledged"),
    Column("median_hours_to_acknowledge", "alerts", "median hours from raised_at to acknowledged_at"),
    Column(
        "acknowledged_within_sla_share",
        "alerts",
        "acknowledged within the SLA (urgent 1 h, high 24 h, normal 72 h) / alerts that were "
        "acknowledged or escalated (auto-resolved alerts never needing an answer are left out)",
    ),
    Column("alerts_escalated", "alerts", "alerts escalated at least once"),
    Column("escalations", "alerts", "escalation steps (sum of escalation levels)"),
)
COLUMNS: Final = (*DIMENSIONS, *FIGURES)
COLUMN_NAMES: Final = tuple(c.name for c in COLUMNS)


@dataclass
class Totals:
    """Parts summed over a row's cells: counters, sums, values, and distinct clients per group."""

    n: Counter[str] = field(default_factory=Counter)
    s: Counter[str] = field(default_factory=Counter)
    v: dict[str, list[float]] = field(default_factory=dict)
    distinct: dict[str, int] = field(default_factory=dict)


def total(parts: Iterable[tuple[str, Part[Any]]]) -> Totals:
    """Sum (clinic_id, part) pairs. Client sets are unioned within a clinic and the distinct counts
    added across clinics: a client_ref is a pseudonym of (clinic, MRN), so no client spans clinics."""
    t = Totals()
    sets: dict[str, dict[str, list[Any]]] = {}
    for clinic_id, part in parts:
        t.n.update(part.n)
        t.s.update(part.s)
        for name, values in part.v.items():
            t.v.setdefault(name, []).extend(values)
        per_clinic = sets.setdefault(clinic_id, {})
        for group, members in part.c.items():
            per_clinic.setdefault(group, []).append(members)
    for group in GROUPS:
        t.distinct[group] = sum(
            len(functools.reduce(operator.or_, clinic[group]))
            for clinic in sets.values()
            if clinic.get(group)
        )
    return t


def rounded(value: float) -> float:
    return round(value, DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def _rate(part: int | float, whole: int | float) -> float | None:
    return rounded(part / whole) if whole else None


def _median(values: list[float] | None) -> float | None:
    return rounded(statistics.median(values)) if values else None


def figures(t: Totals) -> dict[str, Any]:
    """Every figure column of one row, unsuppressed."""
    n, s = t.n, t.s
    missed = n["missed_no_show"] + n["missed_late_cancel"]
    closed = n["closed"]
    repaired, unrepaired = n["ruptures_repaired"], n["ruptures_unrepaired"]
    out: dict[str, Any] = {
        "sessions_attended": n["attended"],
        "sessions_missed": missed,
        "sessions_missed_no_show": n["missed_no_show"],
        "sessions_missed_late_cancel": n["missed_late_cancel"],
        "sessions_cancelled_by_client": n["cancelled_client"],
        "sessions_cancelled_by_clinician": n["cancelled_clinician"],
        "sessions_cancelled_by_clinic": n["cancelled_clinic"],
        "attendance_rate": _rate(n["attended"], n["attended"] + missed),
        "active_clients": t.distinct.get("active", 0),
        "episodes_opened": n["opened"],
        "episodes_closed": closed,
        "outcome_measured": n["outcome_measured"],
        "reliable_improvement": n["improved"],
        "reliable_deterioration": n["deteriorated"],
        "improved_share": _rate(n["improved"], closed),
        "wai_sr_responses": n["wai_n"],
        "wai_sr_mean": _rate(s["wai_mean"], n["wai_n"]),
        "wai_sr_task_mean": _rate(s["wai_task"], n["wai_n"]),
        "wai_sr_bond_mean": _rate(s["wai_bond"], n["wai_n"]),
        "wai_sr_goal_mean": _rate(s["wai_goal"], n["wai_n"]),
        "srs_responses": n["srs_n"],
        "srs_total_mean": _rate(s["srs_total"], n["srs_n"]),
        "srs_concern_share": _rate(n["srs_concern"], n["srs_n"]),
        "ruptures_raised": n["ruptures_raised"],
        "ruptures_repaired": repaired,
        "ruptures_unrepaired": unrepaired,
        "repair_rate": _rate(repaired, repaired + unrepaired),
        "median_sessions_to_repair": _median(t.v.get("repair_sessions")),
        "alerts_raised": n["alerts_raised"],
        "alerts_raised_other_rules": n["alerts_raised"] - sum(n[f"rule:{r}"] for r in KNOWN_RULES),
        "alerts_open": n["alerts_open"],
        "alerts_acknowledged": n["alerts_acknowledged"],
        "median_hours_to_acknowledge": _median(t.v.get("ack_hours")),
        "acknowledged_within_sla_share": _rate(n["ack_within_sla"], n["ack_eligible"]),
        "alerts_escalated": n["alerts_escalated"],
        "escalations": n["escalations"],
    }
    for kind in ("unilateral", "last_missed", "low_dose"):
        out[f"dropout_{kind}"] = n[f"dropout_{kind}"]
        out[f"dropout_{kind}_rate"] = _rate(n[f"dropout_{kind}"], closed)
    for rule in KNOWN_RULES:
        out[_rule_column(rule)] = n[f"rule:{rule}"]
    for severity in SEVERITIES:
        out[f"alerts_raised_{severity}"] = n[f"severity:{severity}"]
    return out


def row(
    dims: Mapping[str, Any],
    totals: Totals,
    *,
    groups: Iterable[str] = GROUPS,
    suppress_below: int | None = None,
) -> dict[str, Any]:
    """One report row: dimensions, then figures. Figures of groups the row has no meaning for are
    null; with suppress_below, a group computed from 1..suppress_below-1 distinct clients is null
    and listed in suppressed_columns (a group with no client at all discloses nothing)."""
    applicable = set(groups)
    values = figures(totals)
    out: dict[str, Any] = {c.name: dims.get(c.name) for c in DIMENSIONS}
    withheld: list[str] = []
    for col in FIGURES:
        clients = totals.distinct.get(col.group or "", 0)
        if col.group not in applicable:
            out[col.name] = None
        elif suppress_below is not None and 0 < clients < suppress_below:
            out[col.name] = None
            withheld.append(col.name)
        else:
            out[col.name] = values[col.name]
    out["suppressed"] = bool(withheld)
    out["suppressed_columns"] = withheld
    return out


def _withhold(out: dict[str, Any], group: str, columns: Sequence[Column] = FIGURES) -> None:
    for col in columns:
        if col.group == group and col.name not in out["suppressed_columns"]:
            out[col.name] = None
            out["suppressed_columns"].append(col.name)
    out["suppressed"] = True


def _hidden(out: Mapping[str, Any], group: str, columns: Sequence[Column] = FIGURES) -> bool:
    """Whether the row's figures of `group` cannot be read (withheld, or not meaningful for the row)."""
    first = next(c.name for c in columns if c.group == group)
    return first in out["suppressed_columns"] or out[first] is None


def complement(
    rows: list[tuple[dict[str, Any], Totals]],
    total_row: tuple[dict[str, Any], Totals],
    columns: Sequence[Column] = FIGURES,
) -> None:
    """Complementary suppression, in place: where exactly one row of a partition has a group withheld
    and the total shows it, the row could be recovered by subtracting the others from the total, so
    one more cell is withheld: the row with the fewest (but some) clients in that group, or, when
    every other row has none, the total itself. Rows are the parts of `total_row` (months of the
    period, clinicians, modalities or clinics, or an equity view's strata), which is what makes the
    subtraction possible. `columns`: the answer's figure columns (the equity view has its own)."""
    total_out, total_t = total_row
    groups = GROUPS if columns is FIGURES else tuple(dict.fromkeys(c.group for c in columns if c.group))
    for group in groups:
        withheld = [out for out, _ in rows if group in _withheld_groups(out, columns)]
        if len(withheld) != 1 or _hidden(total_out, group, columns):
            continue
        shown = [
            (out, t) for out, t in rows if not _hidden(out, group, columns) and t.distinct.get(group, 0) > 0
        ]
        if shown:
            out, _ = min(shown, key=lambda ot: ot[1].distinct.get(group, 0))
            _withhold(out, group, columns)
        elif total_t.distinct.get(group, 0) > 0:
            _withhold(total_out, group, columns)


def _withheld_groups(out: Mapping[str, Any], columns: Sequence[Column] = FIGURES) -> set[str]:
    names = set(out["suppressed_columns"])
    return {c.group for c in columns if c.name in names and c.group is not None}
