"""What measures' store remembers of the groups it wrote (adapters.store._Written), without I/O."""

from __future__ import annotations

from attune_measures.adapters.store import _Written
from attune_measures.domain.versions import Tracked
from tests.unit.measures_service.builders import srs


def _members(group: int, size: int) -> dict[str, tuple[Tracked, int]]:
    return {f"g{group}m{i}": (Tracked(srs(f"g{group}m{i}", 36, i)), 1) for i in range(size)}


def test_a_full_memory_takes_no_new_group_but_keeps_updating_the_ones_it_holds() -> None:
    w = _Written(limit=10)
    w.remember("a", "s1", _members(1, 4))
    w.remember("b", "s1", _members(2, 4))
    w.remember("c", "s1", _members(3, 4))  # would make 12: not taken
    assert set(w.members) == {"a", "b"} and len(w.docs) == 8
    w.remember("a", "s2", _members(1, 5))  # a held group grows
    assert w.stamps["a"] == "s2" and len(w.members["a"]) == 5 and len(w.docs) == 9


def test_groups_that_outgrow_the_limit_give_way_from_the_newest_end() -> None:
    w = _Written(limit=10)
    w.remember("a", "s", _members(1, 5))
    w.remember("b", "s", _members(2, 5))
    w.remember("a", "s2", _members(1, 6))  # 11 > 10: the most recently remembered (a) gives way
    assert set(w.members) == {"b"} and len(w.docs) == 5
    assert all(k.startswith("g2") for k in w.docs)


def test_a_backfill_cycling_through_more_groups_than_fit_still_finds_most_of_what_fits() -> None:
    # Every "week" each of 40 groups gains a member; from week 6 on they outgrow the room. A memory
    # that dropped everything when full would then find almost none of them on their next turn.
    w = _Written(limit=200)
    found = turns = 0
    for week in range(1, 13):
        for g in range(40):
            if week > 7:
                turns += 1
                found += f"g{g}" in w.members
            w.remember(f"g{g}", f"w{week}", _members(g, week))
    assert len(w.docs) <= 200
    assert found / turns > 0.3, (found, turns)


def test_responses_read_back_share_their_repeated_strings() -> None:
    import bson

    from attune_measures.adapters.store import response_doc, tracked_from_doc

    docs = [bson.decode(bson.encode(response_doc(Tracked(srs(f"r{i}", 36, i), 1, "f"), 1))) for i in range(2)]
    a, b = (tracked_from_doc(d).response for d in docs)
    assert a.client_ref == b.client_ref and a.client_ref is b.client_ref
    assert a.episode_id is b.episode_id and a.clinic_id is b.clinic_id
    assert a.response_id != b.response_id
