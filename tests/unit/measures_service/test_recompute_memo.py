"""What measures remembers of a member's last recomputation (revisions.Computed) changes no output.

A group is recomputed whole after any change to it; a member whose basis (response, thresholds,
intake, alliance window) is unchanged and whose fingerprint is the one computed from that basis is
skipped without building its event. These tests compare a book that remembers with one that forgets
before every batch (as after a reload from the store), over random histories.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

import attune_measures.domain.revisions as revisions
from attune_measures.domain.revisions import run_batch
from attune_measures.domain.thresholds import DEFAULT
from attune_measures.domain.versions import ResponseVersion, Tracked
from tests.support.ids import rs
from tests.unit.measures_service.builders import SRS, Book, ors, session, srs, version


class ForgetfulBook(Book):
    """A book that drops what was computed before every batch: the behaviour without the memo."""

    def run(self, batch):  # type: ignore[no-untyped-def]
        self.tracked = {k: replace(t, computed=None) for k, t in self.tracked.items()}
        return super().run(batch)


def _dump(events):  # type: ignore[no-untyped-def]
    return [e.model_dump() for e in events]


def test_an_unchanged_member_is_not_rebuilt(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    book = Book()
    book.run(srs(f"s{i}", t, i) for i, t in enumerate([36, 37, 38, 28, 33]))
    built: list[str] = []
    real = revisions.fingerprint

    def counting(event):  # type: ignore[no-untyped-def]
        built.append(event.response_id)
        return real(event)

    monkeypatch.setattr(revisions, "fingerprint", counting)
    events = book.run([srs("s5", 37, 5)])
    assert [e.response_id for e in events] == [rs("s5")]
    assert built == [rs("s5")], "only the new member's event is built"


def test_a_member_loaded_from_the_store_is_recomputed_once_then_remembered(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    book = Book()
    book.run(srs(f"s{i}", t, i) for i, t in enumerate([36, 37, 38]))
    loaded = {k: replace(t, computed=None) for k, t in book.tracked.items()}
    built: list[str] = []
    real = revisions.fingerprint
    monkeypatch.setattr(revisions, "fingerprint", lambda e: built.append(e.response_id) or real(e))
    # The pipeline keeps the whole settled book (and the store remembers it), not only what changed.
    _, settled = run_batch(loaded, [srs("s3", 28, 3)], lambda _: DEFAULT)
    assert sorted(built) == sorted(rs(f"s{i}") for i in range(4))
    built.clear()
    _, settled = run_batch(settled.book, [srs("s4", 33, 4)], lambda _: DEFAULT)
    assert built == [rs("s4")]
    assert [e.response_id for e in settled.events] == [rs("s4")]


def test_new_thresholds_recompute_every_member_as_without_the_memo() -> None:
    floor5 = DEFAULT.with_overrides({"sd_floor_srs": 5.0})
    remembering, forgetful = Book(), ForgetfulBook()
    history = [srs(f"s{i}", t, i) for i, t in enumerate([36, 37, 38, 28, 33])]
    for b in (remembering, forgetful):
        b.run(history)
        b.thresholds = {"north-01": floor5}
    late = [srs("s9", 36, 9)]
    assert _dump(remembering.run(late)) == _dump(forgetful.run(late))
    assert len(remembering.published) == len(forgetful.published) > len(history) + 1


def test_a_late_response_moves_every_later_position_as_without_the_memo() -> None:
    # Points more than a window after the late one keep their window but not their position.
    remembering, forgetful = Book(), ForgetfulBook()
    history = [srs(f"s{i}", t, i) for i, t in enumerate([36, 37, 38, 28, 33, 37, 36, 35, 39], start=1)]
    for b in (remembering, forgetful):
        b.run(history)
    late = [srs("s0", 40, 1.5)]  # after the intake (s1), before every other point
    events = remembering.run(late)
    assert _dump(events) == _dump(forgetful.run(late))
    assert [e.series.position for e in events if e.series] == list(range(2, 11))


def test_a_stale_fingerprint_is_republished_as_without_the_memo() -> None:
    # A write lost after publishing leaves the store's fingerprint behind what this process computed.
    book = Book()
    book.run(srs(f"s{i}", t, i) for i, t in enumerate([36, 37, 38]))
    stale = {k: replace(t, fingerprint="lost", revision=t.revision) for k, t in book.tracked.items()}
    _, with_memo = run_batch(stale, [srs("s3", 28, 3)], lambda _: DEFAULT)
    cleared = {k: replace(t, computed=None) for k, t in stale.items()}
    _, without = run_batch(cleared, [srs("s3", 28, 3)], lambda _: DEFAULT)
    assert _dump(with_memo.events) == _dump(without.events)
    assert {e.response_id for e in with_memo.events} == {rs("s0"), rs("s1"), rs("s2"), rs("s3")}


def _response(kind: str, n: int, week: int, value: int, amended: bool, episode: int) -> ResponseVersion:
    rid = f"{kind}{n}"
    extra = {"status": "amended", "occurred": session(week) + timedelta(days=1, minutes=n)} if amended else {}
    ep = f"ep_{episode}"
    if kind == "s":
        return srs(rid, sorted(SRS)[value % len(SRS)], week, episode=ep, **extra)
    if kind == "o":
        return ors(rid, 8 + value, week, episode=ep, **extra)
    if kind == "w":
        return version(rid, "WAI-SR", [1 + (value + i) % 5 for i in range(12)], week, episode=ep, **extra)
    return version(rid, "PHQ-9", [(value + i) % 4 for i in range(9)], week, episode=ep, **extra)


RESPONSES = st.builds(
    _response,
    st.sampled_from("ssowp"),
    st.integers(0, 11),
    st.integers(0, 10),
    st.integers(0, 30),
    st.booleans(),
    st.integers(1, 2),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(RESPONSES, min_size=1, max_size=10), min_size=1, max_size=8))
def test_any_history_publishes_the_same_as_without_the_memo(batches: list[list[ResponseVersion]]) -> None:
    remembering, forgetful = Book(), ForgetfulBook()
    for batch in batches:
        assert _dump(remembering.run(batch)) == _dump(forgetful.run(batch))
    assert remembering.tracked == forgetful.tracked
    assert all(isinstance(t, Tracked) for t in remembering.tracked.values())
