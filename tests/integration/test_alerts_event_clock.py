"""alerts' event clock on the real store (issue 15, "flat with size"): the sweep reads the newest event
time from one small document per input partition, never every episode's clock, and that time is the
newest episode clock whichever replica wrote what, in whatever order, and after a batch stopped
half-way; and the inactivity sweep reads the whole state of the due episodes only."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

from attune_alerts.adapters.store import AlertsStore
from attune_alerts.domain.lifecycle import EpisodeContext
from attune_alerts.ports import EpisodeRow
from attune_shared.settings import ServiceSettings

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
PARTITIONS = 3


def episode(i: int) -> str:
    return f"ep_{i:026d}"


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


async def stored_episodes(store: AlertsStore, count: int) -> None:
    """`count` episodes, episode i on partition i % PARTITIONS."""
    rows = [
        EpisodeRow(EpisodeContext(episode(i), "north-01", f"cr_{i}"), partition=i % PARTITIONS, dirty=True)
        for i in range(count)
    ]
    await store.save_episodes(rows=rows)


class Commands(CommandListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.seen.append((event.command_name, dict(event.command)))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


@contextlib.asynccontextmanager
async def listened_store(
    fresh_db: AsyncDatabase[dict[str, Any]], settings: ServiceSettings
) -> AsyncIterator[tuple[AlertsStore, Commands]]:
    """An AlertsStore on the test's database, through a client that records every command it sends."""
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_uri.get_secret_value(), tz_aware=True, event_listeners=[commands]
    )
    try:
        store = AlertsStore(client[fresh_db.name])
        await store.ensure_indexes()
        yield store, commands
    finally:
        await client.close()


async def test_the_newest_event_time_is_the_newest_episode_clock_from_one_document_per_partition(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    owner, other = AlertsStore(fresh_db), AlertsStore(fresh_db)
    await owner.ensure_indexes()
    await stored_episodes(owner, 60)
    assert await owner.newest_event_time() is None

    # Batches on all partitions, out of order across partitions, from two replicas.
    await owner.advance_clocks(newest={episode(i): at(i) for i in range(0, 30)})
    await other.advance_clocks(newest={episode(i): at(i / 10) for i in range(30, 60)})
    assert await other.newest_event_time() == at(29)
    assert await fresh_db["partition_clocks"].count_documents({}) == PARTITIONS

    # Older times (a lagging partition, a zombie's stale batch after a rebalance) never move it back.
    other.forget()
    await other.advance_clocks(newest={episode(29): at(3), episode(28): at(2)})
    assert await owner.newest_event_time() == at(29)
    stored = {d["_id"]: d["newest"] async for d in fresh_db["clinic_clocks"].find({})}
    assert max(stored.values()) == await owner.newest_event_time()

    # A newer one, on a partition the writer does not remember its episodes of, moves it on.
    await other.advance_clocks(newest={episode(31): at(40)})
    assert await owner.newest_event_time() == at(40)
    assert (await fresh_db["partition_clocks"].find_one({"_id": str(31 % PARTITIONS)}) or {})["newest"] == at(
        40
    )


async def test_a_batch_run_again_after_stopping_between_the_writes_still_moves_the_partition_clock(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    """The episodes' clocks were written, then the process stopped: the batch runs again (elsewhere),
    reads those clocks as stored, and finds nothing to move there; the partition's clock moves all
    the same."""
    first = AlertsStore(fresh_db)
    await first.ensure_indexes()
    await stored_episodes(first, 6)
    await first.advance_clocks(newest={episode(i): at(i) for i in range(6)})
    # The first write of the next batch, alone: as if the process stopped right after it.
    await fresh_db["clinic_clocks"].update_one({"_id": episode(4)}, {"$max": {"newest": at(20)}})
    assert await first.newest_event_time() == at(5)

    again = AlertsStore(fresh_db)
    clocks = await again.event_clocks(keys=[episode(4)])
    assert clocks == {episode(4): at(20)}
    await again.advance_clocks(newest=clocks)
    assert await again.newest_event_time() == at(20)


async def test_the_newest_episode_clock_reaches_the_partition_clocks_at_every_start(
    fresh_db: AsyncDatabase[dict[str, Any]],
) -> None:
    """Episode clocks written before the partition clocks existed, or by an earlier release during a
    rolling upgrade, still count."""
    await fresh_db["clinic_clocks"].insert_many([{"_id": episode(i), "newest": at(i)} for i in range(5)])
    store = AlertsStore(fresh_db)
    assert await store.newest_event_time() is None
    await store.ensure_indexes()
    assert await store.newest_event_time() == at(4)
    # an instance of the earlier release moves an episode clock (episode clocks only)
    await fresh_db["clinic_clocks"].update_one({"_id": episode(0)}, {"$max": {"newest": at(50)}})
    await store.ensure_indexes()  # the next start
    assert await store.newest_event_time() == at(50)
    assert await fresh_db["partition_clocks"].count_documents({}) == 1


async def test_the_sweeps_clock_reads_no_episode_clock(
    fresh_db: AsyncDatabase[dict[str, Any]], infra_settings: ServiceSettings
) -> None:
    """What newest_event_time asks the store, seen on the wire: one find on the partitions' clocks,
    no sort, nothing on `clinic_clocks` (which has a document per episode)."""
    async with listened_store(fresh_db, infra_settings) as (store, commands):
        await stored_episodes(store, 30)
        await store.advance_clocks(newest={episode(i): at(i) for i in range(30)})
        commands.seen.clear()
        assert await store.newest_event_time() == at(29)
        asked = [(name, cmd.get(name), "sort" in cmd) for name, cmd in commands.seen]
        assert asked == [("find", "partition_clocks", False)], asked


async def test_the_inactivity_sweep_reads_the_whole_state_of_due_episodes_only(
    fresh_db: AsyncDatabase[dict[str, Any]], infra_settings: ServiceSettings, monkeypatch: Any
) -> None:
    """The sweep runs over every open episode of the network every ATTUNE_ALERTS_SWEEP_SECONDS: it
    reads two fields of each and the state (the large part) of the due ones, and what it returns is
    as stored when it read them (one closed meanwhile is left out)."""
    from dataclasses import replace

    from attune_alerts.domain.state import EpisodeState

    async with listened_store(fresh_db, infra_settings) as (store, commands):
        rows = [
            EpisodeRow(
                EpisodeContext(episode(i), "north-01" if i % 2 else "south-01", f"cr_{i}"),
                state=EpisodeState(last_attended_at=at(10 * i)),
                partition=i % PARTITIONS,
                dirty=True,
            )
            for i in range(6)
        ]
        await store.save_episodes(rows=rows)
        every = await store.inactivity_candidates(partitions=range(PARTITIONS))
        assert sorted(r.ctx.episode_id for r in every) == [episode(i) for i in range(6)]

        seen_due: list[tuple[str, datetime]] = []

        def due(clinic_id: str, last: datetime) -> bool:
            seen_due.append((clinic_id, last))
            return last <= at(25)

        commands.seen.clear()
        got = await store.inactivity_candidates(partitions=range(PARTITIONS), due=due)
        assert [r.ctx.episode_id for r in got] == [episode(0), episode(1), episode(2)]
        assert [r.state.last_attended_at for r in got] == [at(0), at(10), at(20)]
        assert sorted(seen_due) == sorted(("north-01" if i % 2 else "south-01", at(10 * i)) for i in range(6))
        finds = [cmd for name, cmd in commands.seen if name == "find"]
        assert finds[0]["projection"] == {"_id": 1, "clinic_id": 1, "last_attended_at": 1}
        assert all("projection" not in cmd for cmd in finds[1:])  # the due ones, by _id, whole

        # An episode closed between the two reads is not returned.
        import attune_alerts.adapters.store as store_module

        read_whole = store_module.find_by_ids

        async def close_first(coll: Any, ids: Any, *args: Any) -> Any:
            closed = replace(got[1], state=replace(got[1].state, episode_open=False), dirty=True)
            await store.save_episodes(rows=[closed])
            return await read_whole(coll, ids, *args)

        monkeypatch.setattr(store_module, "find_by_ids", close_first)
        later = await store.inactivity_candidates(partitions=range(PARTITIONS), due=due)
        assert [r.ctx.episode_id for r in later] == [episode(0), episode(2)]
