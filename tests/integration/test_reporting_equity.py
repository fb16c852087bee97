"""The equity view on the real broker and store: test_reporting.py's seeded network with referral
attributes added (some referrals late, after the client's first session; some languages changed
by a second referral; some clients never referred), folded by reporting as a real process; the
strata's figures over HTTP equal the plan's (worked out here, per stratum, from the plan), ops
answers hide nothing that subtraction would reveal, and a rebuild from the topics reproduces every
answer exactly."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from typing import Any

import httpx

from attune_reporting.domain.equity import BY, FIGURE_COLUMNS
from attune_reporting.rebuild import rebuild
from attune_reporting.settings import ReportingSettings
from attune_shared.events import AlertEvent, ClientReferred
from attune_shared.topics import Topics
from tests.integration.test_reporting import (
    ADMIN,
    CLINICS,
    LEAD_NORTH,
    MONTHS,
    OPS,
    Client,
    events_of,
    expected,
    plan,
    wait_reports_current,
)
from tests.support.kafka_io import produce, wait_drained
from tests.support.procs import ServiceProcess
from tests.unit.reporting.builders import Stream, at, client_of, ref
from tests.unit.reporting.test_equity_suppression import check

LANGUAGES = ["en-GB", "en", "pt-BR", "so", "es", None]
# Figures the plan gives per group of clients (test_reporting.expected) that the equity view shows.
SHARED = [
    "sessions_attended",
    "sessions_missed",
    "attendance_rate",
    "wai_sr_responses",
    "wai_sr_mean",
    "srs_responses",
    "srs_total_mean",
    "episodes_closed",
    "dropout_unilateral",
    "dropout_low_dose",
    "dropout_last_missed",
    "ruptures_raised",
    "ruptures_repaired",
    "ruptures_unrepaired",
    "repair_rate",
]


def attributes(clients: list[Client], seed: int = 23) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """Each client's referrals: (hours after the episode opened, attributes); none for some."""
    rnd = random.Random(seed)
    out: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for c in clients:
        if rnd.random() < 0.15:
            continue  # never referred: unknown throughout
        first = {
            "preferred_language": rnd.choice(LANGUAGES),
            "interpreter_needed": rnd.choice([True, False, None]),
            "age_band": rnd.choice(["<18", "18-25", "26-40", "41-64", "65+", None]),
        }
        referrals = [(0, first)]
        if rnd.random() < 0.2:  # a second referral a week later changes the language only
            referrals.append((24 * 7, {"preferred_language": rnd.choice(["es", "so", "en"])}))
        out[c.name] = referrals
    return out


def strata(referrals: list[tuple[int, dict[str, Any]]]) -> dict[str, str]:
    """The strata the plan puts a client in: each attribute from the latest referral that sent it."""
    latest: dict[str, Any] = {}
    for _, attrs in sorted(referrals, key=lambda r: r[0]):
        latest |= {k: v for k, v in attrs.items() if v is not None}
    language = latest.get("preferred_language")
    interpreter = latest.get("interpreter_needed")
    return {
        "language": language.split("-")[0].lower() if language else "unknown",
        "interpreter": "unknown" if interpreter is None else ("yes" if interpreter else "no"),
        "age_band": latest.get("age_band") or "unknown",
    }


def with_referrals(
    clients: list[Client], referrals: dict[str, list[tuple[int, dict[str, Any]]]]
) -> list[Any]:
    """events_of(clients) with each client's referrals in its own sequence: every third client's after
    its first session (the EHR sent the referral late), the others' first."""
    events = events_of(clients)
    st = Stream(source="ehr-referrals")
    for i, c in enumerate(clients):
        if c.name not in referrals:
            continue
        made = []
        for hours, attrs in referrals[c.name]:
            when = at(f"{c.opened.isoformat()} 07:00") + timedelta(hours=hours)
            made.append(
                ClientReferred(
                    referred_on=when.date(),
                    **attrs,
                    **st._common(c.clinic, c.name, c.episode, when),
                )
            )
        mine = [k for k, e in enumerate(events) if client_of(e) == ref(c.name)]
        place = mine[0] if i % 3 else next(k for k in mine if e_kind(events[k]) == "session.attended") + 1
        events[place:place] = made
    return events


def e_kind(event: Any) -> str:
    return str(getattr(event, "event_type", ""))


async def _answers(url: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    rng = {"from": MONTHS[0], "to": MONTHS[-1]}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for by in BY:
            for who, headers in (("admin", ADMIN), ("ops", OPS)):
                for clinic in (None, *CLINICS):
                    params = {**rng, "by": by, **({"clinic_id": clinic} if clinic else {})}
                    r = await http.get("/v1/reports/equity", params=params, headers=headers)
                    assert r.status_code == 200, r.text
                    out[f"{who}/{clinic or 'network'}/{by}"] = r.json()["rows"]
        r = await http.get("/v1/reports/equity", params={**rng, "clinic_id": "south-01"}, headers=LEAD_NORTH)
        out["lead-other-clinic"] = r.status_code
        r = await http.get("/v1/reports/equity", params={**rng, "format": "csv"}, headers=OPS)
        out["csv-lines"] = r.text.count("\r\n")
    return out


async def test_equity_figures_per_stratum_and_a_rebuild_reproduces_them(namespace, mongo) -> None:
    clients = plan()
    referrals = attributes(clients)
    events = with_referrals(clients, referrals)
    topic_of = {
        "alerts": namespace.topic(Topics.ALERTS),
        "measures": namespace.topic(Topics.MEASURES),
        "care": namespace.topic(Topics.CARE),
    }
    records: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
    for e in events:
        kind = (
            "alerts"
            if isinstance(e, AlertEvent)
            else ("measures" if e_kind(e) == "measure.scored" else "care")
        )
        records[kind].append((client_of(e).encode(), e.model_dump_json().encode()))
    for kind in list(records):  # redeliveries: a tenth of every topic again
        records[kind] += random.Random(9).sample(records[kind], len(records[kind]) // 10)
    bootstrap = namespace.settings.kafka_bootstrap_servers
    reporting = ServiceProcess("reporting", namespace.env, namespace.logs / "reporting.log").start()
    try:
        reporting.wait_ready()
        for kind, recs in records.items():
            await produce(bootstrap, topic_of[kind], recs)
        await wait_drained(
            namespace.settings, namespace.settings.group("attune-reporting"), list(topic_of.values())
        )
        await wait_reports_current(reporting.url)
        before = await _answers(reporting.url)
        settings = ReportingSettings(
            attune_name_prefix=namespace.prefix,
            kafka_bootstrap_servers=bootstrap,
            attune_reporting_rebuild_grace_s=1.0,
        )
        await rebuild(settings, client=mongo)
        after = await _answers(reporting.url)
    finally:
        assert reporting.stop() == 0, reporting.tail()

    # --- every stratum of language, interpreter and age band, network and each clinic: the plan's figures
    of = {c.name: strata(referrals.get(c.name, [])) for c in clients}
    checked = 0
    for by in ("language", "interpreter", "age_band"):
        for clinic in (None, *CLINICS):
            scope = [c for c in clients if clinic is None or c.clinic == clinic]
            rows = before[f"admin/{clinic or 'network'}/{by}"]
            for row in rows:
                group = (
                    scope
                    if row["row_type"] == "total"
                    else [c for c in scope if of[c.name][by] == row["value"]]
                )
                want = {k: v for k, v in expected(group, MONTHS).items() if k in SHARED}
                got = {k: row[k] for k in want}
                assert got == want, (by, clinic, row["value"])
                checked += 1
            named = {r["value"] for r in rows[:-1] if r["sessions_attended"] or r["episodes_closed"]}
            assert named <= {of[c.name][by] for c in scope}, (by, clinic)
    assert checked > 60

    # --- modality: the strata partition the total; lead scope; ops: nothing recoverable; CSV
    additive = [c.name for c in FIGURE_COLUMNS if not c.name.endswith(("_rate", "_low", "_high", "_mean"))]
    for clinic in (None, *CLINICS):
        *parts, whole = before[f"admin/{clinic or 'network'}/modality"]
        assert all(sum(r[k] for r in parts) == whole[k] for k in additive), clinic
    assert before["lead-other-clinic"] == 403
    suppressed = 0
    for name, rows in before.items():
        if name.startswith("ops/"):
            check(rows, FIGURE_COLUMNS, None, 5)
            suppressed += sum(bool(r["suppressed_columns"]) for r in rows)
            assert not any(r["value"] in ("pt", "so", "es") and r["suppressed"] for r in rows)  # pooled
    assert suppressed > 0  # the small clinics make some
    assert before["csv-lines"] == len(before["ops/network/language"]) + 1

    # --- a rebuild from the topics gives every answer again, exactly
    assert after == before
