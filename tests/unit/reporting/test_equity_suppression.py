"""Property: in any answer a suppressed cell cannot be derived from the rows and the total of the
same answer, for the equity view and for every existing report with a total row.

Hypothesis builds random cells (clinics x months, clients with random attributes and figures),
cuts them for `ops` with a random minimum cell size, and checks each figure group of each answer:
small groups (1..min-1 distinct clients) are withheld with every column of the group (intervals
too), and no group is withheld in exactly one row while the total and every other row show it
(the subtraction `total - the others` would give it away). Before complementary suppression the
second check failed (test_api.py shows one such leak in the fixed scenario)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from attune_reporting.domain import strata
from attune_reporting.domain.access import Audience
from attune_reporting.domain.cells import ALL, Cell, _Builder, clinician_key, modality_key
from attune_reporting.domain.equity import BY, FIGURE_COLUMNS, equity_rows
from attune_reporting.domain.figures import FIGURES, Column, Totals, total
from attune_reporting.domain.report import clinic_rows, network_rows

CLINICS = ("k-0", "k-1", "k-2")
MONTHS = ("2026-01", "2026-02", "2026-03")
LANGUAGES = ("en", "pt", "so", strata.UNKNOWN)
INTERPRETER = ("yes", "no", strata.UNKNOWN)
MODALITIES = ("in_person", "video", "phone", strata.UNKNOWN)

client = st.fixed_dictionaries(
    {
        "n": st.integers(0, 11),  # which client of the clinic (so clients recur across months)
        "clinician": st.sampled_from(("c-1", "c-2")),
        "language": st.sampled_from(LANGUAGES),
        "interpreter": st.sampled_from(INTERPRETER),
        "age_band": st.sampled_from((*strata.AGE_BANDS, strata.UNKNOWN)),
        "modality": st.sampled_from(MODALITIES),
        "attended": st.integers(0, 4),
        "missed": st.integers(0, 2),
        "wai": st.lists(st.sampled_from((2.5, 3.0, 4.0, 4.5)), max_size=3),
        "srs": st.lists(st.sampled_from((28.0, 35.0, 38.0)), max_size=2),
        "rupture": st.sampled_from((None, "repaired", "unrepaired")),
        "closed": st.booleans(),
        "flags": st.lists(st.booleans(), min_size=4, max_size=4),
    }
)
world = st.dictionaries(
    st.tuples(st.sampled_from(CLINICS), st.sampled_from(MONTHS)), st.lists(client, max_size=8), max_size=6
)


def _cell(clinic_id: str, month: str, clients: list[dict[str, Any]]) -> Cell[frozenset[str]]:
    """One cell's parts, built the way build_cell does: each figure under `all`, the client's
    clinician, its modality (modality groups only) and its four strata."""
    b = _Builder()
    for c in clients:
        ref = f"cr_{clinic_id}_{c['n']}"
        eq = [
            strata.key("language", c["language"]),
            strata.key("interpreter", c["interpreter"]),
            strata.key("age_band", c["age_band"]),
            strata.key("modality", c["modality"]),
        ]
        keys = [ALL, clinician_key(c["clinician"])]
        if c["modality"] != strata.UNKNOWN:
            keys.append(modality_key(c["modality"]))
        keys += eq
        if c["attended"] or c["missed"]:
            b.count(keys, "attended", c["attended"])
            b.count(keys, "missed_no_show", c["missed"])
            b.client(keys, "sessions", ref)
            if c["attended"]:
                b.client(keys, "active", ref)
        for score in c["wai"]:
            b.count(keys, "wai_n")
            b.total(keys, "wai_mean", score)
            b.total(keys, "wai_mean_sq", score * score)
            b.client(keys, "wai_sr", ref)
        for score in c["srs"]:
            b.count(keys, "srs_n")
            b.total(keys, "srs_total", score)
            b.total(keys, "srs_total_sq", score * score)
            b.client(keys, "srs", ref)
        episode_keys = [k for k in keys if not k.startswith("modality:")]
        if c["rupture"]:
            b.count(episode_keys, "ruptures_raised")
            b.count(episode_keys, f"ruptures_{c['rupture']}")
            b.count(episode_keys, "alerts_raised")
            b.count(episode_keys, "rule:alliance.rupture")
            b.client(episode_keys, "ruptures", ref)
            b.client(episode_keys, "alerts", ref)
        if c["closed"]:
            b.count(episode_keys, "closed")
            b.count(episode_keys, "outcome_measured")
            for flag, name in zip(
                c["flags"],
                ("improved", "dropout_unilateral", "dropout_low_dose", "closed_ruptured"),
                strict=True,
            ):
                b.count(episode_keys, name, 1 if flag else 0)
            b.client(episode_keys, "closed", ref)
            b.client(episode_keys, "episodes", ref)
    return Cell(clinic_id, month, b.frozen())


def _groups(columns: Sequence[Column]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in columns:
        if c.group is not None:
            out.setdefault(c.group, []).append(c.name)
    return out


def check(rows: list[dict[str, Any]], columns: Sequence[Column], sums: list[Totals] | None, cut: int) -> None:
    *parts, whole = rows
    assert whole["row_type"] == "total"
    for group, names in _groups(columns).items():
        for i, r in enumerate(rows):
            withheld = [n for n in names if n in r["suppressed_columns"]]
            # a group is withheld whole (counts, rates, means and intervals alike), and withheld is null
            assert withheld in ([], names), (group, r)
            assert all(r[n] is None for n in withheld)
            if sums is not None and 0 < sums[i].distinct.get(group, 0) < cut:
                assert withheld == names, ("small cell shown", group, r)

        first = names[0]
        hidden = [r for r in parts if first in r["suppressed_columns"]]
        others = [r for r in parts if r not in hidden]
        recoverable = (
            len(hidden) == 1 and whole[first] is not None and all(r[first] is not None for r in others)
        )
        assert not recoverable, ("a withheld cell is total - the others", group, hidden[0])


def _equity_sums(
    cells: list[Cell[Any]], by: str, rows: list[dict[str, Any]], clinic: str | None
) -> list[Totals]:
    """Each row's summed parts, recomputed independently of equity_rows (for the small-cell check)."""
    mine = [c for c in cells if clinic is None or c.clinic_id == clinic]
    out = []
    for r in rows:
        if r["row_type"] == "total":
            out.append(total((c.clinic_id, c.parts[ALL]) for c in mine if ALL in c.parts))
            continue
        values = {r["value"]}
        if r["value"] == "other":  # the languages pooled for ops: those not named in the answer
            named = {x["value"] for x in rows}
            values = {v for v in LANGUAGES if v not in named}
        keys = {strata.key(by, v) for v in values}
        out.append(total((c.clinic_id, p) for c in mine for k, p in c.parts.items() if k in keys))
    return out


@settings(max_examples=150, deadline=None)
@given(world, st.integers(2, 6))
def test_no_suppressed_cell_can_be_derived_from_its_answer(
    data: dict[tuple[str, str], list[dict[str, Any]]], cut: int
) -> None:
    cells = [_cell(clinic, month, clients) for (clinic, month), clients in sorted(data.items())]
    ops = Audience(cut, None)
    months = list(MONTHS)
    for by in BY:
        for clinic in (None, *CLINICS):
            rows = equity_rows(cells, months=months, by=by, audience=ops, clinic_id=clinic)
            check(rows, FIGURE_COLUMNS, _equity_sums(cells, by, rows, clinic), cut)
    for clinic in CLINICS:
        for by in ("month", "clinician", "modality"):
            check(
                clinic_rows(cells, clinic_id=clinic, months=months, by=by, audience=ops), FIGURES, None, cut
            )
    for by in ("clinic", "modality", "month"):
        check(network_rows(cells, months=months, by=by, audience=ops), FIGURES, None, cut)


def test_the_check_finds_a_leak_without_complementary_suppression() -> None:
    """The check is not vacuous: one small row next to a big one, and the total shown."""
    big = [{"n": i, "language": "en"} for i in range(6)]
    small = [{"n": 9, "language": "so"}]
    base = {
        "clinician": "c-1",
        "interpreter": "no",
        "age_band": "18-25",
        "modality": "video",
        "attended": 1,
        "missed": 0,
        "wai": [],
        "srs": [],
        "rupture": None,
        "closed": False,
        "flags": [False] * 4,
    }
    cells = [_cell("k-0", "2026-01", [{**base, **c} for c in big + small])]
    ops = Audience(5, None)
    rows = equity_rows(cells, months=["2026-01"], by="interpreter", audience=ops, clinic_id="k-0")
    check(rows, FIGURE_COLUMNS, None, 5)  # 7 clients all "no": nothing small
    by_language = equity_rows(cells, months=["2026-01"], by="language", audience=Audience(None, None))
    assert [r["value"] for r in by_language] == ["en", "so", "unknown", None]
    leaky = [dict(r) for r in by_language]
    leaky[1] |= {"sessions_attended": None, "suppressed_columns": ["sessions_attended"]}
    for name in ("sessions_missed", "attendance_rate", "attendance_rate_low", "attendance_rate_high"):
        leaky[1][name] = None
        leaky[1]["suppressed_columns"].append(name)
    try:
        check(leaky, FIGURE_COLUMNS, None, 5)
    except AssertionError as exc:
        assert "total - the others" in str(exc)
    else:
        raise AssertionError("the check missed a recoverable cell")
