"""measures' read API on real intake and measures processes: EHR events go in through intake's HTTP
ingestion, and a lead reads the scored series and a clinician's caseload (clinic scope, 401/403/404,
the audit)."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from attune_shared.ids import EPISODE_REF_PATTERN, client_ref, pseudonym
from attune_shared.topics import Topics
from tests.support.ehr import BASE, Ehr
from tests.support.kafka_io import read_all, wait_drained
from tests.support.procs import ServiceProcess, start_stack, stop_stack

LEAD_NORTH = {"Authorization": "Bearer dev-lead-north"}
LEAD_SOUTH = {"Authorization": "Bearer dev-lead-south"}
ADMIN = {"Authorization": "Bearer dev-admin"}
OPS = {"Authorization": "Bearer dev-ops"}
EHR_NORTH = {"Authorization": "Bearer dev-ehr-north"}
EHR_SOUTH = {"Authorization": "Bearer dev-ehr-south"}

# Client A (north-01, clinician c-1): four sessions a week apart; WAI-SR and ORS each session, a PHQ-9
# at the second, a PSQ at the third. Its first WAI-SR is amended later (4s -> 5s).
WAI = [[4] * 12, [5, 5, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5], [3] * 12, [4] * 12]
WAI_AMENDED = [5] * 12
ORS = [[5, 5, 5, 5], [6, 6, 6, 6], [5.5, 6, 6, 7.5], [7, 7, 6.5, 5]]
PHQ9 = [1, 1, 1, 1, 1, 1, 1, 1, 0]
PSQ = [1, 3, 4]


@pytest.fixture
async def stack(namespace) -> AsyncIterator[dict[str, ServiceProcess]]:
    procs = await asyncio.to_thread(
        start_stack, namespace.env, namespace.logs, services=("intake", "measures")
    )
    try:
        yield procs
    finally:
        codes = stop_stack(procs)
        assert set(codes.values()) == {0}, {n: p.tail() for n, p in procs.items()}


def _client_a(ehr: Ehr) -> list[dict[str, Any]]:
    mrn, clinic = "MRN-MA-1", "north-01"
    events = [ehr.referred(clinic, mrn, BASE - timedelta(days=7))]
    sessions = [BASE + timedelta(days=7 * s) for s in range(4)]
    for s, at in enumerate(sessions):
        events.append(ehr.scheduled(clinic, mrn, at, appt=f"APT-A-{s}"))
    for s, at in enumerate(sessions):
        events.append(ehr.attended(clinic, mrn, at, appt=f"APT-A-{s}"))
    done = [at + timedelta(minutes=55) for at in sessions]
    answers = []
    for s in (3, 1, 0, 2):  # sent out of session order: the series is still in session order
        answers.append(
            ehr.questionnaire(clinic, mrn, done[s], f"RESP-A-WAI-{s}", "WAI-SR", WAI[s], appt=f"APT-A-{s}")
        )
        answers.append(
            ehr.questionnaire(clinic, mrn, done[s], f"RESP-A-ORS-{s}", "ORS", ORS[s], appt=f"APT-A-{s}")
        )
    answers.append(ehr.questionnaire(clinic, mrn, done[1], "RESP-A-PHQ-1", "PHQ-9", PHQ9, appt="APT-A-1"))
    answers.append(ehr.questionnaire(clinic, mrn, done[2], "RESP-A-PSQ-2", "PSQ", PSQ, appt="APT-A-2"))
    amended = ehr.questionnaire(
        clinic,
        mrn,
        done[3] + timedelta(days=1),
        "RESP-A-WAI-0",
        "WAI-SR",
        WAI_AMENDED,
        appt="APT-A-0",
        status="amended",
    )
    return events + answers + [amended]


def _others(north: Ehr) -> list[dict[str, Any]]:
    """B: c-1, SRS twice and a GAD-7; C: c-2; D: c-1 then transferred to c-2 (north-01)."""
    out = [north.referred("north-01", "MRN-MA-2", BASE)]
    for s, items in enumerate(([9, 9, 9, 9], [8, 8.5, 9, 9])):
        at = BASE + timedelta(days=1 + 7 * s)
        out.append(north.questionnaire("north-01", "MRN-MA-2", at, f"RESP-B-SRS-{s}", "SRS", items))
    out.append(
        north.questionnaire(
            "north-01", "MRN-MA-2", BASE + timedelta(days=1), "RESP-B-GAD-0", "GAD-7", [1] * 7
        )
    )
    out.append(north.referred("north-01", "MRN-MA-3", BASE, clinician="c-2"))
    out.append(
        north.questionnaire(
            "north-01",
            "MRN-MA-3",
            BASE + timedelta(days=3),
            "RESP-C-WAI-0",
            "WAI-SR",
            [4] * 12,
            clinician="c-2",
        )
    )
    out.append(north.referred("north-01", "MRN-MA-4", BASE))
    out.append(
        north.questionnaire("north-01", "MRN-MA-4", BASE + timedelta(days=4), "RESP-D-ORS-0", "ORS", [5] * 4)
    )
    out.append(
        north.envelope(
            "clinician.assigned",
            "north-01",
            BASE + timedelta(days=5),
            {"mrn": "MRN-MA-4", "clinician_id": "c-2"},
        )
    )
    out.append(
        north.questionnaire(
            "north-01", "MRN-MA-4", BASE + timedelta(days=11), "RESP-D-ORS-1", "ORS", [6] * 4, clinician="c-2"
        )
    )
    return out


async def _feed(stack: dict[str, ServiceProcess], namespace) -> None:
    north, south = Ehr(source="ehr-north"), Ehr(source="ehr-south")
    url = f"{stack['intake'].url}/v1/ehr/events"
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(url, json={"events": _client_a(north) + _others(north)}, headers=EHR_NORTH)
        assert r.status_code == 202 and r.json()["rejected"] == [], r.text
        south_events = [
            south.referred("south-01", "MRN-MA-S", BASE),
            south.questionnaire(
                "south-01", "MRN-MA-S", BASE + timedelta(days=2), "RESP-S-SRS-0", "SRS", [9] * 4
            ),
        ]
        r = await http.post(url, json={"events": south_events}, headers=EHR_SOUTH)
        assert r.status_code == 202 and r.json()["rejected"] == [], r.text
    s = namespace.settings
    await wait_drained(s, s.group("attune-intake"), [s.topic(Topics.EHR_EVENTS)])
    await wait_drained(s, s.group("attune-measures"), [s.topic(Topics.CARE)])


def _wai(items: list[int]) -> dict[str, float]:
    def mean(idx: tuple[int, ...]) -> float:
        return sum(items[i] for i in idx) / len(idx)

    return {
        "total": float(sum(items)),
        "mean": sum(items) / 12,
        "task": mean((0, 1, 9, 11)),
        "bond": mean((2, 4, 6, 8)),
        "goal": mean((3, 5, 7, 10)),
    }


async def test_a_lead_reads_an_episodes_series_and_a_clinicians_caseload(stack, namespace, mongo) -> None:
    await _feed(stack, namespace)
    key = namespace.settings.pseudonym_key

    def rs(clinic: str, source: str, label: str) -> str:
        return pseudonym(key, "response", clinic_id=clinic, source=source, value=label)

    calls: list[tuple[str | None, str, str]] = []  # (who, action, outcome) expected in the audit
    async with httpx.AsyncClient(base_url=stack["measures"].url, timeout=20) as http:

        async def get(path: str, headers: dict[str, str] | None, who: str | None, outcome: str, **kw: Any):
            calls.append((who, "series" if path.endswith("/series") else "caseload", outcome))
            return await http.get(path, headers=headers, **kw)

        # The caseload of c-1 for lead-north: A (latest session first), then B; not D (transferred),
        # not C (c-2), not the south-01 client.
        r = await get("/v1/clinicians/c-1/caseload", LEAD_NORTH, "lead-north", "ok")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["clinician_id"] == "c-1" and body["clinic_id"] is None
        assert body["truncated"] is False and body["limit"] == 100
        refs = [e["client_ref"] for e in body["items"]]
        assert refs == [client_ref(key, "north-01", "MRN-MA-1"), client_ref(key, "north-01", "MRN-MA-2")]
        a, b = body["items"]
        assert all(re.fullmatch(EPISODE_REF_PATTERN, e["episode_id"]) for e in body["items"])
        assert a["clinic_id"] == "north-01" and a["responses"] == 10
        assert a["last_session_at"] == (BASE + timedelta(days=21)).isoformat()
        assert a["latest_alliance"]["instrument"] == "WAI-SR" and a["latest_alliance"]["score"] == 4.0
        assert a["latest_alliance"]["session_at"] == (BASE + timedelta(days=21)).isoformat()
        assert a["latest_alliance"]["response_id"] == rs("north-01", "ehr-north", "RESP-A-WAI-3")
        assert a["latest_outcome"]["instrument"] == "ORS" and a["latest_outcome"]["score"] == 25.5
        assert a["latest_outcome"]["change"]["reliable_improvement"] is True
        assert [s["instrument"] for s in a["latest_by_instrument"]] == ["WAI-SR", "ORS", "PHQ-9"]
        assert b["latest_alliance"]["instrument"] == "SRS" and b["latest_alliance"]["score"] == 34.5
        assert b["latest_outcome"]["instrument"] == "GAD-7" and b["latest_outcome"]["score"] == 7.0
        assert b["latest_outcome"]["session_at"] == (BASE + timedelta(days=1)).isoformat()
        assert "MRN" not in r.text

        # Paging: a limit says when it cut the list short.
        r = await get("/v1/clinicians/c-1/caseload", LEAD_NORTH, "lead-north", "ok", params={"limit": 1})
        assert [e["client_ref"] for e in r.json()["items"]] == refs[:1] and r.json()["truncated"] is True
        # The transferred client is c-2's now, with C.
        r = await get("/v1/clinicians/c-2/caseload", LEAD_NORTH, "lead-north", "ok")
        assert [e["client_ref"] for e in r.json()["items"]] == [
            client_ref(key, "north-01", "MRN-MA-4"),
            client_ref(key, "north-01", "MRN-MA-3"),
        ]
        # An admin sees every clinic; a clinic narrows it; a lead may not name another clinic (403).
        r = await get("/v1/clinicians/c-1/caseload", ADMIN, "admin", "ok")
        south_ref = client_ref(key, "south-01", "MRN-MA-S")
        assert [e["client_ref"] for e in r.json()["items"]] == [*refs, south_ref]
        r = await get("/v1/clinicians/c-1/caseload", ADMIN, "admin", "ok", params={"clinic_id": "south-01"})
        assert [e["client_ref"] for e in r.json()["items"]] == [south_ref]
        south_episode = r.json()["items"][0]["episode_id"]
        r = await get(
            "/v1/clinicians/c-1/caseload",
            LEAD_NORTH,
            "lead-north",
            "forbidden",
            params={"clinic_id": "south-01"},
        )
        assert r.status_code == 403

        # A's series: every instrument in session order, with the scores measures computed.
        r = await get(f"/v1/episodes/{a['episode_id']}/series", LEAD_NORTH, "lead-north", "ok")
        assert r.status_code == 200, r.text
        series = r.json()
        assert "MRN" not in r.text and "RESP-" not in r.text and "APT-" not in r.text
        assert series["episode_id"] == a["episode_id"] and series["client_ref"] == refs[0]
        assert series["clinic_id"] == "north-01" and series["clinician_id"] == "c-1"
        assert [(s["instrument"], s["respondent"], s["kind"]) for s in series["series"]] == [
            ("WAI-SR", "client", "alliance"),
            ("ORS", "client", "outcome"),
            ("PHQ-9", "client", "outcome"),
            ("PSQ", "client", "rupture"),
        ]
        wai, ors, phq, psq = series["series"]
        sessions = [(BASE + timedelta(days=7 * s)).isoformat() for s in range(4)]
        assert [p["session_at"] for p in wai["points"]] == sessions
        assert [p["response_id"] for p in wai["points"]] == [
            rs("north-01", "ehr-north", f"RESP-A-WAI-{s}") for s in range(4)
        ]
        assert wai["score_name"] == "mean" and wai["higher_is_better"] is True
        items = [WAI_AMENDED, *WAI[1:]]
        for point, answered in zip(wai["points"], items, strict=True):
            expected = _wai(answered)
            assert point["score"] == pytest.approx(expected["mean"])
            for name, value in expected.items():
                assert point["scores"][name] == pytest.approx(value), name
        assert [p["status"] for p in wai["points"]] == ["amended", "completed", "completed", "completed"]
        # The fourth alliance point has three earlier ones: its baseline and drop, as the rules say.
        means = [_wai(i)["mean"] for i in items]
        ctx = wai["points"][3]["alliance"]
        assert ctx["position"] == 4 and ctx["earlier_count"] == 3
        assert ctx["mu"] == pytest.approx(statistics.mean(means[:3]))
        sd_eff = max(statistics.stdev(means[:3]), 0.30)
        assert ctx["sd_eff"] == pytest.approx(sd_eff)
        assert ctx["drop"] == pytest.approx((statistics.mean(means[:3]) - means[3]) / sd_eff)
        assert wai["points"][0]["alliance"]["mu"] is None
        # ORS totals and the change from intake (the first ORS, 20).
        assert [p["score"] for p in ors["points"]] == [20.0, 24.0, 25.0, 25.5]
        assert [p["change"]["change"] for p in ors["points"]] == [0.0, 4.0, 5.0, 5.5]
        assert [p["change"]["reliable_improvement"] for p in ors["points"]] == [False, False, True, True]
        assert {p["change"]["intake_response_id"] for p in ors["points"]} == {ors["points"][0]["response_id"]}
        assert phq["points"][0]["score"] == 8.0 and phq["points"][0]["scores"]["band"] == "mild"
        assert phq["higher_is_better"] is False
        assert psq["points"][0]["score"] is None and psq["score_name"] is None
        assert psq["points"][0]["scores"]["rupture_reported"] is True
        assert psq["points"][0]["scores"]["in_session_repair"] is True

        # Each point says what measures last published for the response (its highest revision).
        published: dict[str, dict[str, Any]] = {}
        for record in await read_all(
            namespace.settings.kafka_bootstrap_servers, namespace.topic(Topics.MEASURES)
        ):
            event = json.loads(record.value)
            mine = event["event_type"] == "measure.scored" and event["episode_id"] == a["episode_id"]
            if mine and event["revision"] > published.get(event["response_id"], {"revision": 0})["revision"]:
                published[event["response_id"]] = event
        points = [p for s in series["series"] for p in s["points"]]
        assert {p["response_id"] for p in points} == set(published)
        for point in points:
            event = published[point["response_id"]]
            assert (point["revision"], point["scores"], point["change"], point["alliance"]) == (
                event["revision"],
                event["scores"],
                event["change"],
                event["series"],
            )

        # Another clinic's episode is 404 for this lead, like an unknown one; its own lead reads it.
        r = await get(f"/v1/episodes/{south_episode}/series", LEAD_NORTH, "lead-north", "not_found")
        assert r.status_code == 404 and "south" not in r.text
        unknown = pseudonym(key, "episode", clinic_id="north-01", source="ehr-north", value="never")
        r = await get(f"/v1/episodes/{unknown}/series", LEAD_NORTH, "lead-north", "not_found")
        assert r.status_code == 404
        r = await get(f"/v1/episodes/{south_episode}/series", LEAD_SOUTH, "lead-south", "ok")
        assert r.status_code == 200 and r.json()["client_ref"] == south_ref
        # A malformed episode id is refused by validation (422, before the endpoint: not audited).
        assert (await http.get("/v1/episodes/MRN-MA-1/series", headers=LEAD_NORTH)).status_code == 422

        # Other roles 403, no token or a bad one 401: refused by the guard, audited all the same.
        for path in (f"/v1/episodes/{a['episode_id']}/series", "/v1/clinicians/c-1/caseload"):
            assert (await get(path, OPS, "ops", "forbidden")).status_code == 403
            assert (await get(path, EHR_NORTH, "ehr-north", "forbidden")).status_code == 403
            assert (await get(path, None, None, "unauthorized")).status_code == 401
            r = await get(path, {"Authorization": "Bearer not-a-token"}, None, "unauthorized")
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"

    # Every call is in measures' audit (who, what, when, outcome), and nothing else is.
    db = mongo[namespace.db("measures")]
    rows = [d async for d in db["audit"].find({})]
    assert Counter((d["who"], d["action"], d["outcome"]) for d in rows) == Counter(calls), rows
    assert all(d["at"] is not None for d in rows)
    series_ok = [d for d in rows if d["action"] == "series" and d["outcome"] == "ok"]
    assert {d["episode_id"] for d in series_ok} == {a["episode_id"], south_episode}
    forbidden = next(d for d in rows if d["outcome"] == "forbidden" and d["who"] == "lead-north")
    assert forbidden["clinician_id"] == "c-1" and forbidden["query"]["clinic_id"] == "south-01"
