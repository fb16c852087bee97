"""measures' stored form of a response (adapters.store.response_doc / tracked_from_doc), without I/O.

The store keeps with each response what the pipeline last computed for it (revisions.Computed) and the
trajectory model version it is pinned to, so a group read back from the store publishes exactly what
one kept in memory would, and its unchanged members are not rebuilt.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

import attune_measures.domain.revisions as revisions
from attune_measures.adapters.store import response_doc, tracked_from_doc
from attune_measures.domain.revisions import Computed
from attune_measures.domain.versions import ResponseVersion
from tests.support.ids import rs
from tests.unit.measures_service.builders import Book, srs
from tests.unit.measures_service.test_recompute_memo import RESPONSES, ForgetfulBook


class StoredBook(Book):
    """A book read back from its stored documents before every batch, as the store serves it."""

    def run(self, batch):  # type: ignore[no-untyped-def]
        self.tracked = {k: tracked_from_doc(response_doc(t, 1)) for k, t in self.tracked.items()}
        return super().run(batch)


def _dump(events):  # type: ignore[no-untyped-def]
    return [e.model_dump() for e in events]


def test_a_member_read_back_from_the_store_is_not_rebuilt(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    book = StoredBook()
    book.run(srs(f"s{i}", t, i) for i, t in enumerate([36, 37, 38, 28, 33]))
    built: list[str] = []
    real = revisions.fingerprint
    monkeypatch.setattr(revisions, "fingerprint", lambda e: built.append(e.response_id) or real(e))
    events = book.run([srs("s5", 37, 5)])
    assert [e.response_id for e in events] == [rs("s5")]
    assert built == [rs("s5")], "only the new member's event is built"


def test_the_stored_form_keeps_what_was_computed_and_the_pin() -> None:
    book = Book()
    book.run(srs(f"s{i}", t, i) for i, t in enumerate([36, 37, 38]))
    for tracked in book.tracked.values():
        pinned = replace(tracked, trajectory="v7")
        again = tracked_from_doc(response_doc(pinned, 3))
        assert again == pinned and again.trajectory == "v7"
        assert isinstance(again.computed, Computed) and isinstance(tracked.computed, Computed)
        assert again.computed.basis == tracked.computed.basis
        assert (again.computed.digest, again.computed.primary) == (
            tracked.computed.digest,
            tracked.computed.primary,
        )


def test_what_was_computed_for_another_version_or_fingerprint_is_not_kept() -> None:
    book = Book()
    book.run([srs("s0", 36, 0)])
    (tracked,) = book.tracked.values()
    amended: ResponseVersion = replace(tracked.response, status="amended")
    assert tracked_from_doc(response_doc(replace(tracked, response=amended), 2)).computed is None
    assert tracked_from_doc(response_doc(replace(tracked, fingerprint="lost"), 2)).computed is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(RESPONSES, min_size=1, max_size=10), min_size=1, max_size=8))
def test_any_history_read_back_publishes_the_same_as_without_the_memo(
    batches: list[list[ResponseVersion]],
) -> None:
    stored, forgetful = StoredBook(), ForgetfulBook()
    for batch in batches:
        assert _dump(stored.run(batch)) == _dump(forgetful.run(batch))
