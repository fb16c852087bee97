"""Series recomputation, revisions and amendment precedence, on the pure domain (no I/O)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from attune_measures.adapters.store import response_doc, tracked_from_doc
from attune_measures.domain.revisions import measure_event_id, run_batch
from attune_measures.domain.thresholds import DEFAULT, RULE_VERSIONS
from attune_measures.domain.versions import precedence
from attune_shared.ids import derived_id
from tests.support.ids import ep, rs
from tests.unit.measures_service.builders import SOURCE, Book, ors, revisions, session, srs, version

WAI_4 = [4] * 12


def approx(value: float) -> object:
    return pytest.approx(value, abs=5e-5)


def test_v_shaped_srs_series_publishes_the_hand_computed_drops() -> None:
    book = Book()
    totals = [36, 37, 38, 28, 33, 37]
    events = book.run(srs(f"s{i}", t, i) for i, t in enumerate(totals))
    assert [e.revision for e in events] == [1] * 6
    series = [e.series for e in events]
    assert all(s is not None for s in series)
    assert [s.position for s in series if s] == [1, 2, 3, 4, 5, 6]
    assert [s.score for s in series if s] == [36.0, 37.0, 38.0, 28.0, 33.0, 37.0]
    # Fewer than 3 earlier scores: no statistics.
    for s in series[:3]:
        assert s is not None and (s.mu, s.sd_within, s.sd_eff, s.drop) == (None, None, None, None)
    s4, s5, s6 = series[3], series[4], series[5]
    assert s4 is not None and s5 is not None and s6 is not None
    # 28 after [36, 37, 38]: mu 37, deviations -1, 0, 1, ss 2, var 1, sd 1; sd_eff max(1, 2.0) = 2;
    # drop (37 - 28) / 2 = 4.5.
    assert (s4.mu, s4.sd_within, s4.sd_eff, s4.drop) == (approx(37), approx(1), approx(2), approx(4.5))
    assert s4.earlier_response_ids == [rs("s0"), rs("s1"), rs("s2")]
    # 33 after [36, 37, 38, 28]: mu 139 / 4 = 34.75; deviations 1.25, 2.25, 3.25, -6.75;
    # ss 1.5625 + 5.0625 + 10.5625 + 45.5625 = 62.75; var 20.916667; sd 4.573474;
    # drop 1.75 / 4.573474 = 0.382641.
    assert (s5.mu, s5.sd_within, s5.sd_eff, s5.drop) == (
        approx(34.75),
        approx(4.573474),
        approx(4.573474),
        approx(0.382641),
    )
    # 37 after [36, 37, 38, 28, 33]: mu 172 / 5 = 34.4; deviations 1.6, 2.6, 3.6, -6.4, -1.4;
    # ss 2.56 + 6.76 + 12.96 + 40.96 + 1.96 = 65.2; var 16.3; sd 4.037326; drop -2.6 / 4.037326 = -0.643990.
    assert (s6.mu, s6.sd_within, s6.sd_eff, s6.drop) == (
        approx(34.4),
        approx(4.037326),
        approx(4.037326),
        approx(-0.643990),
    )
    assert s6.earlier_response_ids == [rs(f"s{i}") for i in range(5)]
    assert all(s.series_key == f"{ep('ep_1')}:SRS" for s in series if s)


def test_event_ids_rule_versions_and_superseded_flag() -> None:
    book = Book()
    [first] = book.run([srs("s1", 36, 0)])
    assert first.event_id == derived_id("measure.scored", SOURCE, rs("s1"), "1")
    assert first.event_id == measure_event_id(SOURCE, rs("s1"), 1)
    assert first.superseded is False and first.revision == 1
    assert first.rule_versions == {"score.srs": RULE_VERSIONS["score.srs"]}
    assert first.kafka_key == first.client_ref
    [amended] = book.run([srs("s1", 30 + 4, 0, status="amended", occurred=session(1))])
    assert amended.revision == 2 and amended.superseded is True and amended.status == "amended"
    assert amended.event_id == derived_id("measure.scored", SOURCE, rs("s1"), "2")
    [o] = book.run([ors("o1", 20, 0)])
    assert o.rule_versions == {"score.ors": 1, "reliable-change": 1}


def test_a_late_response_lands_in_order_and_bumps_the_later_points() -> None:
    book = Book()
    on_time = [srs("s0", 36, 0), srs("s1", 37, 1), srs("s3", 28, 3), srs("s4", 33, 4), srs("s5", 37, 5)]
    book.run(on_time)
    assert revisions(book.published) == {rs("s0"): 1, rs("s1"): 1, rs("s3"): 1, rs("s4"): 1, rs("s5"): 1}
    late = book.run([srs("s2", 38, 2)])
    # The late point is new; every point after it moves one place (and its window changes); earlier
    # points keep their content and are not republished.
    assert revisions(late) == {rs("s2"): 1, rs("s3"): 2, rs("s4"): 2, rs("s5"): 2}
    assert [e.superseded for e in late] == [False, True, True, True]
    latest = book.latest()
    assert [latest[rs(r)].series.position for r in ("s0", "s1", "s2", "s3", "s4", "s5")] == [1, 2, 3, 4, 5, 6]  # type: ignore[union-attr]
    # The final revisions equal what an in-order arrival publishes (the V-shaped series above).
    in_order = Book()
    in_order.run([srs("s0", 36, 0), srs("s1", 37, 1), srs("s2", 38, 2), *on_time[2:]])
    for rid, event in in_order.latest().items():
        assert latest[rid].series == event.series
        assert latest[rid].scores == event.scores


def test_an_amendment_recomputes_only_the_later_contexts_that_depend_on_it() -> None:
    book = Book()
    totals = [36, 37, 38, 36, 37, 38, 36, 37]
    book.run(srs(f"s{i + 1}", t, i) for i, t in enumerate(totals))
    events = book.run([srs("s2", 28, 1, status="amended", occurred=session(8))])
    # Position 2 changes itself; position 3 has 2 earlier scores (no statistics), so it says the same;
    # positions 4-7 hold it in their window of 5; position 8's window is positions 3-7.
    assert revisions(events) == {rs("s2"): 2, rs("s4"): 2, rs("s5"): 2, rs("s6"): 2, rs("s7"): 2}
    s4 = book.latest()[rs("s4")].series
    # 36 after [36, 28, 38]: mu 34, deviations 2, -6, 4, ss 56, var 28, sd 5.291503; drop -2 / 5.291503.
    assert s4 is not None and (s4.mu, s4.sd_eff, s4.drop) == (approx(34), approx(5.291503), approx(-0.377964))


def test_a_completed_version_never_replaces_an_amended_one() -> None:
    book = Book()
    amended = srs("s1", 30 + 4, 0, status="amended", occurred=session(2))
    original = srs("s1", 36, 0)
    assert book.run([amended])[0].status == "amended"
    applied, settled = run_batch(book.tracked, [original], lambda _: DEFAULT)
    assert applied.verdicts == [(original, "stale")]
    assert settled.events == [] and settled.changed == {}
    assert precedence(amended, original) == "stale"
    assert precedence(original, amended) == "replaced"


def test_among_amendments_the_later_occurred_at_wins_in_any_arrival_order() -> None:
    first = srs("s1", 33, 0, status="amended", occurred=session(1))
    second = srs("s1", 34, 0, status="amended", occurred=session(2))
    for order in ([first, second], [second, first]):
        book = Book()
        book.run([srs("s1", 36, 0)])
        for v in order:
            book.run([v])
        assert book.latest()[rs("s1")].scores["total"] == 34.0
    assert precedence(second, first) == "stale"


def test_a_replay_is_a_no_op() -> None:
    batch = [srs("s0", 36, 0), srs("s1", 37, 1), srs("s2", 38, 2), srs("s3", 28, 3), ors("o0", 20, 0)]
    book = Book()
    book.run(batch)
    before = dict(book.tracked)
    applied, settled = run_batch(book.tracked, batch, lambda _: DEFAULT)
    assert {v for _, v in applied.verdicts} == {"replay"}
    assert settled.events == [] and settled.changed == {}
    assert book.tracked == before
    # A duplicate inside one batch is a replay too.
    fresh = Book()
    events = fresh.run([batch[0], batch[0]])
    assert revisions(events) == {rs("s0"): 1}


def test_a_lost_store_write_replays_the_same_ids_and_content() -> None:
    book = Book()
    book.run([srs("s0", 36, 0), srs("s1", 37, 1), srs("s3", 28, 3), srs("s4", 33, 4)])
    saved = dict(book.tracked)
    batch = [srs("s2", 38, 2), srs("s4", 35, 4, status="amended", occurred=session(9))]
    _, first = run_batch(saved, batch, lambda _: DEFAULT)
    # Crash after publishing, before the write: the same input against the old store.
    _, again = run_batch(saved, batch, lambda _: DEFAULT)
    assert [e.model_dump() for e in again.events] == [e.model_dump() for e in first.events]
    # Crash half-way through the write: the rest is republished under the same ids, with the same content.
    partial = dict(saved)
    written = sorted(first.changed)[:2]
    partial.update({k: first.changed[k] for k in written})
    _, resumed = run_batch(partial, batch, lambda _: DEFAULT)
    by_id = {e.event_id: e for e in first.events}
    assert resumed.events, "the unwritten responses are republished"
    for e in resumed.events:
        assert by_id[e.event_id] == e
    assert {**partial, **resumed.changed} == {**saved, **first.changed}


def test_a_late_first_outcome_becomes_intake_and_revises_every_change() -> None:
    book = Book()
    book.run([ors("o2", 20, 2), ors("o3", 26, 3)])
    o3 = book.latest()[rs("o3")].change
    assert o3 is not None and o3.intake_response_id == rs("o2") and o3.change == 6.0
    assert o3.reliable_improvement and not o3.reliable_deterioration and o3.threshold == 5.0
    events = book.run([ors("o1", 30, 1)])
    assert revisions(events) == {rs("o1"): 1, rs("o2"): 2, rs("o3"): 2}
    latest = book.latest()
    assert [latest[rs(r)].change.change for r in ("o1", "o2", "o3")] == [0.0, -10.0, -4.0]  # type: ignore[union-attr]
    assert [latest[rs(r)].change.reliable_deterioration for r in ("o1", "o2", "o3")] == [False, True, False]  # type: ignore[union-attr]
    assert all(latest[rs(r)].series is None for r in ("o1", "o2", "o3"))
    # A late point after the intake changes nobody else's change from intake.
    assert revisions(book.run([ors("o4", 25, 2.5)])) == {rs("o4"): 1}


def test_clinician_rated_alliance_scores_stay_out_of_the_series() -> None:
    book = Book()
    book.run(
        [
            version("w1", "WAI-SR", WAI_4, 1),
            version("w1c", "WAI-SR", WAI_4, 1.5, respondent="clinician"),
            version("w2", "WAI-SR", WAI_4, 2),
        ]
    )
    latest = book.latest()
    assert latest[rs("w1c")].series is None
    w2 = latest[rs("w2")]
    assert w2.series is not None and w2.series.position == 2
    assert w2.series.earlier_response_ids == [rs("w1")]
    assert w2.scores["mean"] == 4.0 and w2.change is None


def test_an_amendment_that_moves_episode_revises_both_series() -> None:
    book = Book()
    book.run([srs("s1", 36, 0), srs("s2", 37, 1), srs("s3", 38, 2), srs("s4", 36, 3)])
    moved = srs("s2", 37, 1, status="amended", occurred=session(5), episode="ep_2")
    applied, settled = run_batch(book.tracked, [moved], lambda _: DEFAULT)
    assert applied.touched == {f"{ep('ep_1')}:SRS", f"{ep('ep_2')}:SRS"}
    by_rid = {e.response_id: e for e in settled.events}
    assert by_rid[rs("s2")].episode_id == ep("ep_2") and by_rid[rs("s2")].series.position == 1  # type: ignore[union-attr]
    assert by_rid[rs("s3")].series.position == 2 and by_rid[rs("s4")].series.position == 3  # type: ignore[union-attr]


def test_clinic_thresholds_apply_to_their_clinic_only() -> None:
    floor5 = DEFAULT.with_overrides({"sd_floor_srs": 5.0, "srs_cutoff": 38})
    book = Book({"north-02": floor5})
    book.run(srs(f"n{i}", t, i) for i, t in enumerate([36, 37, 38, 28]))
    book.run(srs(f"m{i}", t, i, clinic="north-02", episode="ep_9") for i, t in enumerate([36, 37, 38, 28]))
    latest = book.latest()
    assert latest[rs("n3")].series.drop == approx(4.5)  # type: ignore[union-attr]
    assert latest[rs("m3")].series.drop == approx(1.8)  # type: ignore[union-attr]  # (37 - 28) / 5
    assert latest[rs("n0")].scores["alliance_concern"] is False
    assert latest[rs("m0")].scores["alliance_concern"] is True  # 36 < 38


def test_a_stored_response_recomputes_to_the_same_fingerprint() -> None:
    # What the store keeps must re-serialise exactly, or every recomputation would republish.
    book = Book()
    odd = version(
        "w1",
        "WAI-SR",
        [4, 5, 4, 3, None, 4, 5, 4, 4, 2, 5, 4],
        0,
        occurred=session(0) + timedelta(hours=1, microseconds=123457),
    )
    book.run([odd, srs("s1", 36, 0), version("x1", "SRS", [8.5, 9.1, 10, 0.3], 1)])
    reloaded = {k: tracked_from_doc(response_doc(t, 1)) for k, t in book.tracked.items()}
    assert reloaded == book.tracked
    _, settled = run_batch(reloaded, [t.response for t in reloaded.values()], lambda _: DEFAULT)
    assert settled.events == [] and settled.changed == {}
