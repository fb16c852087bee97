"""The equity view (clinical-rules.md, "Equity view"): the headline figures by preferred language,
interpreter need, age band or modality, for one clinic or the network, with 95% intervals.

Rows come from the cells' stratum parts (strata.py), summed like every other report row, so they
are as fold-safe and replay-safe as the rest. Suppression is the other reports': for `ops`, a figure
group computed from 1..min-1 distinct clients is withheld with its intervals, and complementary
suppression (figures.complement) withholds one more cell wherever subtraction from the total row
would give a withheld one away (the strata of one dimension partition the total, `unknown`
included). For `ops`, a language spoken by fewer than min clients in every figure group is not
named: it is counted under `other`, so that a row's label does not single out a client either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from attune_reporting.domain import strata
from attune_reporting.domain.access import Audience
from attune_reporting.domain.cells import ALL, Cell
from attune_reporting.domain.figures import Column, Totals, complement, rounded, total
from attune_reporting.domain.intervals import t_interval, wilson

BY: Final = strata.DIMENSIONS
OTHER: Final = "other"


def _rate(name: str, group: str, doc: str) -> tuple[Column, ...]:
    return (
        Column(name, group, doc),
        Column(f"{name}_low", group, f"lower end of {name}'s Wilson 95% interval"),
        Column(f"{name}_high", group, f"upper end of {name}'s Wilson 95% interval"),
    )


def _mean(name: str, group: str, doc: str) -> tuple[Column, ...]:
    return (
        Column(name, group, doc),
        Column(f"{name}_low", group, f"lower end of {name}'s t 95% interval (null below 2 responses)"),
        Column(f"{name}_high", group, f"upper end of {name}'s t 95% interval (null below 2 responses)"),
    )


DIMENSION_COLUMNS: Final = (
    Column("row_type", None, '"row", or "total" for the last row (every stratum together)'),
    Column("clinic_id", None, "the clinic; null on a network answer"),
    Column("dimension", None, "language, interpreter, age_band or modality (the answer's `by`)"),
    Column(
        "value",
        None,
        "the stratum: a primary language subtag (lower case; `other` for ops: languages too rare to "
        "name), yes/no, an age band, a modality; `unknown` when not sent; null on the total row",
    ),
    Column("period_from", None, "first month the row covers (YYYY-MM)"),
    Column("period_to", None, "last month the row covers (YYYY-MM)"),
    Column("suppressed", None, "true when some figures of the row are withheld (ops, small cells)"),
    Column("suppressed_columns", None, "the withheld columns (JSON list; CSV: joined with ';')"),
)
FIGURE_COLUMNS: Final = (
    Column("sessions_attended", "sessions", "session.attended events"),
    Column("sessions_missed", "sessions", "session.missed events (no_show + late_cancel)"),
    *_rate("attendance_rate", "sessions", "attended / (attended + missed)"),
    Column("wai_sr_responses", "wai_sr", "client-rated WAI-SR responses (current revision)"),
    *_mean("wai_sr_mean", "wai_sr", "mean of the responses' WAI-SR mean score (1..5)"),
    Column("srs_responses", "srs", "client-rated SRS responses (current revision)"),
    *_mean("srs_total_mean", "srs", "mean SRS total (0..40)"),
    Column("ruptures_raised", "ruptures", "alliance.rupture alerts raised in the period"),
    Column("ruptures_repaired", "ruptures", "of those, resolved repaired"),
    Column("ruptures_unrepaired", "ruptures", "of those, not repaired (unrepaired, or episode_ended)"),
    *_rate("repair_rate", "ruptures", "repaired / (repaired + unrepaired)"),
    Column("episodes_closed", "closed", "episodes whose closed_on falls in the period"),
    Column("episodes_ruptured", "closed", "of those, episodes with at least one alliance.rupture alert"),
    *_rate("rupture_rate", "closed", "episodes_ruptured / episodes_closed"),
    Column("dropout_unilateral", "closed", "closed episodes with reason unilateral"),
    *_rate("dropout_unilateral_rate", "closed", "dropout_unilateral / episodes_closed"),
    Column("dropout_last_missed", "closed", "closed episodes whose last session was missed (see reports)"),
    *_rate("dropout_last_missed_rate", "closed", "dropout_last_missed / episodes_closed"),
    Column("dropout_low_dose", "closed", "closed episodes with fewer than 4 attended sessions"),
    *_rate("dropout_low_dose_rate", "closed", "dropout_low_dose / episodes_closed"),
    Column("outcome_measured", "closed", "closed episodes with a change from intake on ORS, PHQ-9 or GAD-7"),
    Column("reliable_improvement", "closed", "of those, reliable improvement and no reliable deterioration"),
    *_rate("reliable_improvement_rate", "closed", "reliable_improvement / outcome_measured"),
)
COLUMNS: Final = (*DIMENSION_COLUMNS, *FIGURE_COLUMNS)
COLUMN_NAMES: Final = tuple(c.name for c in COLUMNS)


def _put_rate(out: dict[str, Any], name: str, k: int, n: int) -> None:
    interval = wilson(k, n)
    out[name] = rounded(k / n) if n else None
    out[f"{name}_low"], out[f"{name}_high"] = (
        (rounded(interval[0]), rounded(interval[1])) if interval else (None, None)
    )


def _put_mean(out: dict[str, Any], name: str, s: float, squares: float, n: int) -> None:
    interval = t_interval(s, squares, n)
    out[name] = rounded(s / n) if n else None
    out[f"{name}_low"], out[f"{name}_high"] = (
        (rounded(interval[0]), rounded(interval[1])) if interval else (None, None)
    )


def equity_figures(t: Totals) -> dict[str, Any]:
    """Every figure column of one row, unsuppressed."""
    n, s = t.n, t.s
    missed = n["missed_no_show"] + n["missed_late_cancel"]
    repaired, unrepaired, closed = n["ruptures_repaired"], n["ruptures_unrepaired"], n["closed"]
    out: dict[str, Any] = {
        "sessions_attended": n["attended"],
        "sessions_missed": missed,
        "wai_sr_responses": n["wai_n"],
        "srs_responses": n["srs_n"],
        "ruptures_raised": n["ruptures_raised"],
        "ruptures_repaired": repaired,
        "ruptures_unrepaired": unrepaired,
        "episodes_closed": closed,
        "episodes_ruptured": n["closed_ruptured"],
        "outcome_measured": n["outcome_measured"],
        "reliable_improvement": n["improved"],
    }
    _put_rate(out, "attendance_rate", n["attended"], n["attended"] + missed)
    _put_mean(out, "wai_sr_mean", s["wai_mean"], s["wai_mean_sq"], n["wai_n"])
    _put_mean(out, "srs_total_mean", s["srs_total"], s["srs_total_sq"], n["srs_n"])
    _put_rate(out, "repair_rate", repaired, repaired + unrepaired)
    _put_rate(out, "rupture_rate", n["closed_ruptured"], closed)
    for kind in ("unilateral", "last_missed", "low_dose"):
        out[f"dropout_{kind}"] = n[f"dropout_{kind}"]
        _put_rate(out, f"dropout_{kind}_rate", n[f"dropout_{kind}"], closed)
    _put_rate(out, "reliable_improvement_rate", n["improved"], n["outcome_measured"])
    return out


def equity_row(dims: dict[str, Any], t: Totals, suppress_below: int | None) -> dict[str, Any]:
    """One row: dimensions, then figures; with suppress_below, a group computed from
    1..suppress_below-1 distinct clients is null and listed in suppressed_columns."""
    values = equity_figures(t)
    out: dict[str, Any] = {c.name: dims.get(c.name) for c in DIMENSION_COLUMNS}
    withheld: list[str] = []
    for col in FIGURE_COLUMNS:
        clients = t.distinct.get(col.group or "", 0)
        if suppress_below is not None and 0 < clients < suppress_below:
            out[col.name] = None
            withheld.append(col.name)
        else:
            out[col.name] = values[col.name]
    out["suppressed"] = bool(withheld)
    out["suppressed_columns"] = withheld
    return out


def _strata_parts(cells: Iterable[Cell[Any]], dimension: str) -> dict[str, list[tuple[str, Any]]]:
    """(clinic_id, part) pairs of each stratum of one dimension."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for c in cells:
        for part_key, part in c.parts.items():
            found = strata.split(part_key)
            if found is not None and found[0] == dimension:
                out.setdefault(found[1], []).append((c.clinic_id, part))
    return out


def _values(dimension: str, present: Iterable[str]) -> list[str]:
    if dimension in strata.FIXED_VALUES:
        return list(strata.FIXED_VALUES[dimension])
    named = sorted(v for v in set(present) if v not in (strata.UNKNOWN, OTHER))
    return [*named, strata.UNKNOWN]


def _rare(t: Totals, cut: int) -> bool:
    """Fewer than `cut` distinct clients in every figure group (so naming the stratum singles them out)."""
    return all(t.distinct.get(g, 0) < cut for g in strata.GROUPS)


def equity_rows(
    cells: Iterable[Cell[Any]],
    *,
    months: Sequence[str],
    by: str,
    audience: Audience,
    clinic_id: str | None = None,
) -> list[dict[str, Any]]:
    """The strata rows of `by` (one clinic's, or the network's over the audience's clinics), then the
    total row; suppressed and complemented for an audience with a cut."""
    if by not in BY:
        raise ValueError(f"by must be one of {BY}")
    wanted = set(months)
    scope = audience.clinics
    mine = sorted(
        (
            c
            for c in cells
            if c.month in wanted
            and (c.clinic_id == clinic_id if clinic_id is not None else scope is None or c.clinic_id in scope)
        ),
        key=lambda c: (c.clinic_id, c.month),
    )
    cut = audience.suppress_below
    base = {"row_type": "row", "clinic_id": clinic_id, "dimension": by}
    base |= {"period_from": months[0], "period_to": months[-1]}
    parts = _strata_parts(mine, by)
    sums = {value: total(p) for value, p in parts.items()}
    values = _values(by, parts)
    if cut is not None and by == "language":
        rare = [v for v in values if v != strata.UNKNOWN and _rare(sums[v], cut)]
        if rare:
            pooled = [pair for v in rare for pair in parts[v]]
            sums[OTHER] = total(pooled)
            values = [v for v in values if v not in rare]
            values.insert(len(values) - 1, OTHER)  # before unknown
    built = []
    for v in values:
        t = sums[v] if v in sums else total(())  # a stratum no cell has: zeros
        built.append((equity_row({**base, "value": v}, t, cut), t))
    everything = total((c.clinic_id, c.parts[ALL]) for c in mine if ALL in c.parts)
    total_row = (equity_row({**base, "row_type": "total"}, everything, cut), everything)
    if cut is not None:
        complement(built, total_row, FIGURE_COLUMNS)
    return [out for out, _ in built] + [total_row[0]]
