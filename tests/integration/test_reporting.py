"""reporting as a real process on the real broker and store: a seeded stream of care events, scored
measures and alert events in; reports over HTTP equal to the figures the seed implies (worked out
here from the seed's plan, not by reporting's code); then a rebuild reproduces them exactly."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from attune_reporting.adapters.codec import ClientIndex, encode_parts
from attune_reporting.adapters.store import ReportingStore
from attune_reporting.domain.cells import Part
from attune_reporting.domain.figures import FIGURES
from attune_reporting.domain.months import month_of, month_range
from attune_reporting.rebuild import RebuildProgress, rebuild
from attune_reporting.settings import ReportingSettings
from attune_shared.events import AlertEvent
from attune_shared.topics import Topics
from tests.support.kafka_io import produce, wait_drained
from tests.support.procs import ServiceProcess
from tests.unit.reporting.builders import Stream, client_of, ref
from tests.unit.reporting.test_equity_suppression import check

CLINICS = {"north-01": ["c-1", "c-2"], "north-02": ["c-3"], "south-01": ["s-1", "s-2"]}
CLIENTS = {"north-01": 9, "north-02": 4, "south-01": 7}
MONTHS = month_range("2026-01", "2026-04")
ADMIN = {"Authorization": "Bearer dev-admin"}
OPS = {"Authorization": "Bearer dev-ops"}
LEAD_NORTH = {"Authorization": "Bearer dev-lead-north"}
OUTCOMES = ["attended", "no_show", "late_cancel", "cancel_client", "cancel_clinician"]
CLIENT_SIDE = {"attended", "no_show", "late_cancel", "cancel_client"}


@dataclass
class Session:
    appt: str
    start: datetime
    modality: str
    outcome: str
    wai: float | None = None  # the final revision's mean
    wai_first: float | None = None  # the first revision's mean, when amended
    srs: float | None = None


@dataclass
class Rupture:
    alert_id: str
    raised: datetime
    fate: str  # repaired | unrepaired | open
    repair_sessions: int = 0
    acknowledged_after_h: float | None = None


@dataclass
class Client:
    clinic: str
    name: str
    clinician: str
    opened: date
    sessions: list[Session]
    closed: tuple[date, str] | None = None
    ruptures: list[Rupture] = field(default_factory=list)
    safety: list[datetime] = field(default_factory=list)

    @property
    def episode(self) -> str:
        return f"ep-{self.name}"

    def unrepaired(self, r: Rupture) -> bool:
        # flagged unrepaired, or still open when the episode closed (resolved episode_ended)
        return r.fate == "unrepaired" or (r.fate == "open" and self.closed is not None)


def plan(seed: int = 11) -> list[Client]:
    """What happens to every client; the test's expectations come from this, not from events."""
    rnd = random.Random(seed)
    clients = []
    for clinic, clinicians in CLINICS.items():
        for i in range(CLIENTS[clinic]):
            opened = date(2026, 1, 1) + timedelta(days=rnd.randrange(0, 50))
            sessions = []
            for k in range(rnd.randint(2, 8)):
                start = datetime(opened.year, opened.month, opened.day, 9 + k % 6, tzinfo=UTC) + timedelta(
                    days=7 * k
                )
                outcome = rnd.choices(OUTCOMES, [70, 10, 5, 10, 5])[0]
                s = Session(f"{clinic}-{i}-{k}", start, rnd.choice(["in_person", "video", "phone"]), outcome)
                if outcome == "attended" and rnd.random() < 0.8:
                    s.wai = rnd.choice([2.5, 3.0, 3.25, 3.5, 3.75, 4.0, 4.25, 4.5, 5.0])
                    if rnd.random() < 0.2:
                        s.wai_first, s.wai = s.wai, rnd.choice([3.0, 4.0])
                if outcome == "attended" and rnd.random() < 0.5:
                    s.srs = rnd.choice([28.0, 32.5, 35.0, 36.0, 38.5, 40.0])
                sessions.append(s)
            c = Client(clinic, f"{clinic}-cl{i}", rnd.choice(clinicians), opened, sessions)
            if rnd.random() < 0.6:
                end = sessions[-1].start.date() + timedelta(days=rnd.randint(1, 10))
                c.closed = (end, rnd.choice(["planned", "mutual", "unilateral", "transferred", "other"]))
            scored = [s for s in sessions if s.wai is not None]
            if len(scored) >= 2 and rnd.random() < 0.45:
                fate = rnd.choice(["repaired", "unrepaired", "open"])
                ack = rnd.choice([None, 0.5, 6.0, 30.0])
                r = Rupture(
                    f"rupture-{c.name}", scored[1].start + timedelta(hours=3), fate, rnd.randint(1, 3), ack
                )
                c.ruptures.append(r)
            if rnd.random() < 0.15:
                c.safety.append(sessions[0].start + timedelta(hours=2))
            clients.append(c)
    return clients


def events_of(clients: list[Client]) -> list[Any]:
    """The internal events a running system would have published for the plan."""
    st = Stream(source="ehr-seed")
    for c in clients:
        k = (c.clinic, c.name, c.episode)
        st.opened(*k, c.opened.isoformat(), c.clinician)
        for s in c.sessions:
            when = s.start.strftime("%Y-%m-%d %H:%M")
            st.scheduled(*k, s.appt, when, s.modality, c.clinician)
            if s.outcome == "attended":
                st.attended(*k, s.appt, when, s.modality, c.clinician)
            elif s.outcome in ("no_show", "late_cancel"):
                st.missed(*k, s.appt, when, s.modality, c.clinician, s.outcome)
            else:
                earlier = (s.start - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
                st.cancelled(*k, s.appt, earlier, c.clinician, s.outcome.removeprefix("cancel_"))
            for revision, mean in enumerate([m for m in (s.wai_first, s.wai) if m is not None], start=1):
                scores = {"total": mean * 12, "mean": mean, "task": mean, "bond": mean, "goal": mean}
                st.measure(
                    *k,
                    f"w-{s.appt}",
                    "WAI-SR",
                    scores,
                    when,
                    clinician=c.clinician,
                    appt=s.appt,
                    revision=revision,
                )
            if s.srs is not None:
                scores = {"total": s.srs, "alliance_concern": s.srs < 36, "item_concern": False}
                st.measure(*k, f"s-{s.appt}", "SRS", scores, when, clinician=c.clinician, appt=s.appt)
        for r in c.ruptures:
            _rupture_events(st, c, r)
        for i, raised in enumerate(c.safety):
            a = _alert_args(c, f"safety-{c.name}-{i}", "safety.phq9-item9", "urgent", raised)
            st.alert("alert.raised", a["raised"], **a)
        if c.closed:
            st.closed(*k, c.closed[0].isoformat(), c.closed[1])
    return st.events


def _alert_args(c: Client, alert_id: str, rule: str, severity: str, raised: datetime) -> dict[str, Any]:
    return {
        "alert_id": alert_id,
        "clinic": c.clinic,
        "client": c.name,
        "episode": c.episode,
        "clinician": c.clinician,
        "rule": rule,
        "severity": severity,
        "raised": raised.strftime("%Y-%m-%d %H:%M"),
    }


def _rupture_events(st: Stream, c: Client, r: Rupture) -> None:
    a = _alert_args(c, r.alert_id, "alliance.rupture", "high", r.raised)
    fmt = "%Y-%m-%d %H:%M"
    st.alert("alert.raised", a["raised"], **a)
    ack: dict[str, Any] = {}
    if r.acknowledged_after_h is not None:
        acked = (r.raised + timedelta(hours=r.acknowledged_after_h)).strftime(fmt)
        ack = {"status": "acknowledged", "acknowledged": acked}
        st.alert("alert.acknowledged", acked, **a, **ack)
    later = (r.raised + timedelta(days=8)).strftime(fmt)
    if r.fate == "repaired":
        done = {"status": "resolved", "resolved": later, "resolution": "repaired"}
        evidence = {"sessions_to_repair": r.repair_sessions}
        st.alert("alert.resolved", later, **a, **{**ack, **done}, evidence=evidence)
        return
    if r.fate == "unrepaired":
        st.alert("alert.updated", later, **a, **ack, evidence={"unrepaired": True})
    if c.closed:
        ended = f"{c.closed[0].isoformat()} 18:00"
        done = {"status": "resolved", "resolved": ended, "resolution": "episode_ended"}
        st.alert("alert.resolved", ended, **a, **{**ack, **done}, evidence={"unrepaired": True})


# ----------------------------------------------------------------------------- expected figures


def _rate(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def expected(clients: list[Client], months: list[str], key: Any = None) -> dict[str, Any]:
    """The figures of the sessions, episodes, alliance and ruptures the plan puts in these months;
    key(client, session) -> bool narrows sessions and responses (a clinician, a modality)."""
    months_set = set(months)
    f: dict[str, Any] = defaultdict(int)
    active, wai, srs = set(), [], []
    for c in clients:
        for s in c.sessions:
            if key is not None and not key(c, s):
                continue
            month = month_of(s.start - timedelta(hours=2) if s.outcome.startswith("cancel") else s.start)
            if month not in months_set:
                continue
            if s.outcome == "attended":
                f["sessions_attended"] += 1
                active.add(c.name)
            elif s.outcome in ("no_show", "late_cancel"):
                f["sessions_missed"] += 1
            else:
                f[f"sessions_cancelled_by_{s.outcome.removeprefix('cancel_')}"] += 1
            if s.wai is not None:
                wai.append(s.wai)
            if s.srs is not None:
                srs.append(s.srs)
        if key is not None:
            continue
        f["episodes_opened"] += month_of(c.opened) in months_set
        if c.closed and month_of(c.closed[0]) in months_set:
            f["episodes_closed"] += 1
            reason = c.closed[1]
            attended = sum(s.outcome == "attended" for s in c.sessions)
            last = [s for s in c.sessions if s.outcome in CLIENT_SIDE][-1:]
            f["dropout_unilateral"] += reason == "unilateral"
            f["dropout_low_dose"] += attended < 4
            f["dropout_last_missed"] += bool(
                last and last[0].outcome != "attended" and reason not in ("planned", "mutual")
            )
        for r in c.ruptures:
            if month_of(r.raised) in months_set:
                f["ruptures_raised"] += 1
                f["ruptures_repaired"] += r.fate == "repaired"
                f["ruptures_unrepaired"] += c.unrepaired(r)
        f["alerts_raised"] += sum(month_of(r.raised) in months_set for r in c.ruptures)
        f["alerts_raised"] += sum(month_of(t) in months_set for t in c.safety)
    out = {k: f[k] for k in SESSION_KEYS}
    out["attendance_rate"] = _rate(f["sessions_attended"], f["sessions_attended"] + f["sessions_missed"])
    out["active_clients"] = len(active)
    out["wai_sr_responses"] = len(wai)
    out["wai_sr_mean"] = round(statistics.fmean(wai), 4) if wai else None
    out["srs_responses"] = len(srs)
    out["srs_total_mean"] = round(statistics.fmean(srs), 4) if srs else None
    if key is None:
        out |= {k: f[k] for k in EPISODE_KEYS}
        out["repair_rate"] = _rate(f["ruptures_repaired"], f["ruptures_repaired"] + f["ruptures_unrepaired"])
    return out


SESSION_KEYS = [
    "sessions_attended",
    "sessions_missed",
    "sessions_cancelled_by_client",
    "sessions_cancelled_by_clinician",
]
EPISODE_KEYS = [
    "episodes_opened",
    "episodes_closed",
    "dropout_unilateral",
    "dropout_low_dose",
    "dropout_last_missed",
    "ruptures_raised",
    "ruptures_repaired",
    "ruptures_unrepaired",
    "alerts_raised",
]


def pick(row: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in like}


# ----------------------------------------------------------------------------- the test


async def wait_reports_current(url: str, timeout: float = 60) -> None:
    """Until the reporting instance says its reports show everything it consumed: drained means
    committed, but a drained batch's materialization can wait out the throttle's pause (/readyz
    `details.materializer.reports_pending`)."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while time.monotonic() < deadline:
            body = (await http.get("/readyz")).json()
            if body.get("details", {}).get("materializer", {}).get("reports_pending") is False:
                return
            await asyncio.sleep(0.25)
    raise AssertionError(f"the reports were still behind after {timeout}s: {body.get('details')}")


async def _wait_materialized(url: str, want: dict[str, Any], timeout: float = 60) -> None:
    """The reports current, and the network total showing `want`."""
    await wait_reports_current(url, timeout)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=10) as http:
        while time.monotonic() < deadline:
            total = (
                await http.get("/v1/reports/network", params={"from": MONTHS[0], "to": MONTHS[-1]})
            ).json()
            if pick(total["rows"][-1], want) == want:
                return
            await asyncio.sleep(0.5)


async def _reports(url: str, clinics: list[str]) -> dict[str, Any]:
    """Every report the test checks, by name, as returned over HTTP."""
    out: dict[str, Any] = {}
    rng = {"from": MONTHS[0], "to": MONTHS[-1]}
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        for clinic in clinics:
            for by in ("month", "clinician", "modality"):
                r = await http.get(f"/v1/reports/clinics/{clinic}", params={**rng, "by": by}, headers=ADMIN)
                assert r.status_code == 200, r.text
                out[f"{clinic}/{by}"] = r.json()["rows"]
        for by in ("clinic", "modality", "month"):
            for who, headers in (("admin", ADMIN), ("ops", OPS)):
                started = time.perf_counter()
                r = await http.get("/v1/reports/network", params={**rng, "by": by}, headers=headers)
                out[f"network-time/{who}/{by}"] = time.perf_counter() - started
                assert r.status_code == 200, r.text
                out[f"network/{who}/{by}"] = r.json()["rows"]
        out["csv"] = (
            await http.get("/v1/reports/network", params={**rng, "format": "csv"}, headers=OPS)
        ).text
    return out


def _print_clinic(rows: list[dict[str, Any]]) -> None:
    cols = [
        ("month", 8),
        ("sessions_attended", 8),
        ("sessions_missed", 6),
        ("attendance_rate", 8),
        ("active_clients", 7),
        ("episodes_opened", 7),
        ("episodes_closed", 7),
        ("wai_sr_mean", 8),
        ("srs_total_mean", 8),
        ("ruptures_raised", 8),
        ("repair_rate", 7),
        ("dropout_low_dose_rate", 9),
    ]
    print("\n" + " ".join(name[:w].rjust(w) for name, w in cols))
    for r in rows:
        cells = [str(r["month"] or "total" if k == "month" else r[k]) for k, _ in cols]
        print(" ".join(v.rjust(w) for v, (_, w) in zip(cells, cols, strict=True)))


async def test_seeded_stream_gives_the_planned_figures_and_a_rebuild_reproduces_them(
    namespace, mongo
) -> None:
    clients = plan()
    events = events_of(clients)
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
            else ("measures" if e.event_type == "measure.scored" else "care")
        )
        records[kind].append((client_of(e).encode(), e.model_dump_json().encode()))
    rnd = random.Random(5)
    duplicates = 0
    for kind in list(records):  # redeliveries: a tenth of every topic again, after the originals
        again = rnd.sample(records[kind], len(records[kind]) // 10)
        records[kind] += again
        duplicates += len(again)
    bootstrap = namespace.settings.kafka_bootstrap_servers
    reporting = ServiceProcess("reporting", namespace.env, namespace.logs / "reporting.log").start()
    try:
        reporting.wait_ready()
        for kind, recs in records.items():
            await produce(bootstrap, topic_of[kind], recs)
        await wait_drained(
            namespace.settings, namespace.settings.group("attune-reporting"), list(topic_of.values())
        )
        network_total = expected(clients, MONTHS)
        await _wait_materialized(reporting.url, pick(network_total, {"sessions_attended": 0}))
        before = await _reports(reporting.url, list(CLINICS))

        # --- every clinic, every month and the total: the figures the plan implies
        for clinic in CLINICS:
            mine = [c for c in clients if c.clinic == clinic]
            rows = before[f"{clinic}/month"]
            for month, row in zip(MONTHS, rows[:-1], strict=True):
                want = expected(mine, [month])
                assert pick(row, want) == want, (clinic, month)
            want = expected(mine, MONTHS)
            assert pick(rows[-1], want) == want, clinic
            for row in before[f"{clinic}/clinician"][:-1]:
                want = expected(mine, MONTHS, key=lambda c, s, who=row["clinician_id"]: c.clinician == who)
                assert pick(row, want) == want, (clinic, row["clinician_id"])
            for row in before[f"{clinic}/modality"][:-1]:
                want = expected(mine, MONTHS, key=lambda c, s, m=row["modality"]: s.modality == m)
                assert pick(row, want) == want, (clinic, row["modality"])
        network = before["network/admin/clinic"]
        assert [r["clinic_id"] for r in network] == [*sorted(CLINICS), None]
        assert pick(network[-1], network_total) == network_total

        # --- ops: any figure group from 1-4 distinct clients is withheld, and one more cell where the
        # total minus the others would give it away (complementary suppression): nothing recoverable
        small = 0
        for row in before["network/ops/clinic"][:-1]:
            mine = [c for c in clients if c.clinic == row["clinic_id"]]
            with_sessions = {c.name for c in mine for s in c.sessions if month_of(s.start) in MONTHS}
            if 0 < len(with_sessions) < 5:
                small += 1
                assert "sessions_attended" in row["suppressed_columns"] and row["sessions_attended"] is None
        withheld = [
            r for r in before["network/ops/clinic"][:-1] if "sessions_attended" in r["suppressed_columns"]
        ]
        assert small >= 1 and len(withheld) == max(small, 2)
        check(before["network/ops/clinic"], FIGURES, None, 5)
        assert before["csv"].count("\r\n") == len(before["network/ops/clinic"]) + 1

        # --- roles over HTTP
        async with httpx.AsyncClient(base_url=reporting.url) as http:
            assert (await http.get("/v1/reports/network")).status_code == 401
            assert (await http.get("/v1/reports/clinics/south-01", headers=LEAD_NORTH)).status_code == 403
            by_clinician = {"by": "clinician"}
            assert (
                await http.get("/v1/reports/clinics/north-01", params=by_clinician, headers=OPS)
            ).status_code == 403
            metrics = (await http.get("/metrics")).text
        assert 'attune_reporting_open_alerts{clinic="north-01"}' in metrics

        # --- rebuild: replay everything into a fresh database, swap it in, same figures
        phases: list[RebuildProgress] = []
        settings = ReportingSettings(
            attune_name_prefix=namespace.prefix,
            kafka_bootstrap_servers=bootstrap,
            attune_reporting_rebuild_grace_s=1.0,
        )
        result = await rebuild(settings, phases.append, client=mongo)
        after = await _reports(reporting.url, list(CLINICS))
        control = mongo[namespace.db("reporting")]
        pointer = await control["pointer"].find_one({"_id": "active"})
    finally:
        assert reporting.stop() == 0, reporting.tail()

    assert result.database == f"{namespace.db('reporting')}_r1" == pointer["database"]
    assert result.records == sum(len(r) for r in records.values())
    assert {p.phase for p in phases} >= {"replay", "materialize", "swap", "catch_up", "retire", "done"}
    replay = [p for p in phases if p.phase == "replay"]
    assert replay[-1].done == replay[-1].total == result.records
    assert [k for k in await control.list_collection_names()] == ["pointer"]  # the old data is gone
    for name, rows in before.items():
        if not name.startswith("network-time"):
            assert after[name] == rows, name

    _print_clinic(before["north-01/month"])
    times = {
        k.split("/", 1)[1]: round(v * 1000, 1) for k, v in before.items() if k.startswith("network-time")
    }
    print(
        f"{len(events)} events (+{duplicates} redelivered) for {len(clients)} clients in {len(CLINICS)} clinics; "
        f"network report times (ms): {times}; rebuild: {result.records} records in {result.seconds:.1f} s"
    )


@pytest.mark.parametrize("clinics,months", [(50, 24)])
async def test_network_report_over_50_clinics_and_24_months_answers_well_under_a_second(
    namespace, mongo, clinics: int, months: int
) -> None:
    """The read path at the target size: the read model as the materializer writes it (cells with
    ~40 active clients a month, 3 clinicians, 3 modalities), then the network report over HTTP."""
    rnd = random.Random(3)
    store = ReportingStore(mongo[namespace.db("reporting")])
    span = month_range("2024-03", "2026-02")[:months]
    for ci in range(clinics):
        clinic = f"clinic-{ci:02d}"
        index = ClientIndex()
        pool = [ref(f"{clinic}-{i}") for i in range(400)]
        for mi, month in enumerate(span):
            here = frozenset(pool[mi * 12 : mi * 12 + rnd.randint(30, 60)])
            parts = {key: _synthetic_part(rnd, here) for key in _KEYS}
            index.add(sorted(here))
            network = {k: p for k, p in parts.items() if not k.startswith("clinician:")}
            await store.write_cell(
                clinic_id=clinic,
                month=month,
                body=encode_parts(parts, index),
                network_body=encode_parts(network, index),
            )
    reporting = ServiceProcess("reporting", namespace.env, namespace.logs / "reporting.log").start()
    try:
        reporting.wait_ready()
        timings = []
        async with httpx.AsyncClient(base_url=reporting.url, timeout=30) as http:
            for by in ("clinic", "modality", "month", "clinic", "clinic"):
                for headers in (ADMIN, OPS):
                    started = time.perf_counter()
                    r = await http.get(
                        "/v1/reports/network",
                        params={"from": span[0], "to": span[-1], "by": by},
                        headers=headers,
                    )
                    timings.append(time.perf_counter() - started)
                    assert r.status_code == 200
            rows = r.json()["rows"]
            started = time.perf_counter()
            one = await http.get(
                "/v1/reports/clinics/clinic-07", params={"from": span[0], "to": span[-1]}, headers=ADMIN
            )
            clinic_s = time.perf_counter() - started
    finally:
        reporting.stop()
    assert len(rows) == clinics + 1 and rows[-1]["sessions_attended"] > 0
    assert one.status_code == 200 and len(one.json()["rows"]) == months + 1
    median = statistics.median(timings)
    print(
        f"\nnetwork report over {clinics} clinics x {months} months: median {median * 1000:.0f} ms, "
        f"max {max(timings) * 1000:.0f} ms ({len(timings)} requests); one clinic's report {clinic_s * 1000:.0f} ms"
    )
    assert median < 1.0


_KEYS = [
    "all",
    "clinician:c-1",
    "clinician:c-2",
    "clinician:c-3",
    "modality:in_person",
    "modality:video",
    "modality:phone",
]


def _synthetic_part(rnd: random.Random, clients: frozenset[str]) -> Part[frozenset[str]]:
    attended = rnd.randint(40, 120)
    return Part(
        n={
            "attended": attended,
            "missed_no_show": rnd.randint(0, 15),
            "missed_late_cancel": rnd.randint(0, 5),
            "cancelled_client": rnd.randint(0, 10),
            "opened": rnd.randint(0, 8),
            "closed": rnd.randint(0, 8),
            "dropout_low_dose": rnd.randint(0, 3),
            "wai_n": rnd.randint(20, 80),
            "srs_n": rnd.randint(10, 40),
            "srs_concern": rnd.randint(0, 10),
            "alerts_raised": rnd.randint(0, 6),
            "ruptures_raised": rnd.randint(0, 3),
            "ruptures_repaired": rnd.randint(0, 2),
        },
        s={"wai_mean": 200.0, "wai_task": 195.0, "wai_bond": 210.0, "wai_goal": 190.0, "srs_total": 700.0},
        v={"ack_hours": [rnd.random() * 30 for _ in range(rnd.randint(0, 5))], "repair_sessions": [1.0, 2.0]},
        c={
            g: frozenset(rnd.sample(sorted(clients), len(clients) * 3 // 4))
            for g in ("sessions", "active", "episodes", "closed", "wai_sr", "srs", "ruptures", "alerts")
        },
    )


async def test_the_materializer_lease_is_exclusive_and_its_owner_takes_its_own_back(fresh_db: Any) -> None:
    # A run whose unlock was lost (the store went away first) must not wait out its own lease.
    store = ReportingStore(fresh_db)
    assert await store.try_lock(owner="a", lease_s=60)
    assert not await store.try_lock(owner="b", lease_s=60)
    assert await store.try_lock(owner="a", lease_s=60)
    assert not await store.try_lock(owner="b", lease_s=60)
    await store.unlock(owner="a")
    assert await store.try_lock(owner="b", lease_s=0.2)
    await asyncio.sleep(0.4)
    # An expired lease is broken by the next try, and taken by the one after it.
    assert not await store.try_lock(owner="a", lease_s=60)
    assert await store.try_lock(owner="a", lease_s=60)
    with pytest.raises(Exception, match="lease expired"):
        await store.renew_lock(owner="b", lease_s=60)
