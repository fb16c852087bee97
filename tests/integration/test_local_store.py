"""The local store serves FerretDB's pushed-down filters from indexes (issue 15).

FerretDB 1.24 on PostgreSQL pushes every top-level equality of a filter down to SQL as
`_jsonb -> 'field' @> value` (internal/backends/postgresql/query.go) and indexes collections with
btree indexes that `@>` cannot use. deploy/postgres/gin-indexes.sql adds, through event triggers, a
GIN index (jsonb_path_ops) on exactly that expression for `_id` and for every field of every index,
when FerretDB creates the table or the index. These tests make collections and indexes through
PyMongo, then read PostgreSQL's catalog, plans and statistics through `deploy/infra.sh psql` (the
project's own cluster, over its socket).

The running store is asked of the server, never assumed: FerretDB's start-up warnings name its
backend. Against a real MongoDB (MONGODB_URI elsewhere) these stand-in tests say why they are skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("ATTUNE_RUN_DIR", ROOT / "var"))


def needs_postgresql(store: str) -> None:
    if store != "postgresql":
        pytest.skip(f"the store is {store}, not FerretDB on PostgreSQL: these GIN indexes exist only there")


def psql(sql: str) -> list[list[str]]:
    """Rows of one statement on the local cluster's `ferretdb` database (psql over its socket)."""
    done = subprocess.run(
        [str(ROOT / "deploy" / "infra.sh"), "psql", "-qAt", "-F", "\t", "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"psql failed ({done.returncode}): {done.stderr.strip()}"
    return [line.split("\t") for line in done.stdout.splitlines() if line]


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def table_of(db: AsyncDatabase[dict[str, Any]], collection: str) -> str:
    """The PostgreSQL table FerretDB keeps a collection in (its schema is the database's name)."""
    rows = psql(
        f"SELECT _jsonb ->> 'table' FROM {ident(db.name)}._ferretdb_database_metadata "
        f"WHERE _jsonb ->> '_id' = {literal(collection)}"
    )
    assert rows, f"no table for {db.name}.{collection}"
    return rows[0][0]


def gin_indexes(schema: str, table: str) -> dict[str, str]:
    """Field -> name of the table's GIN indexes, each checked to be exactly on the pushdown's
    expression `_jsonb -> 'field'`, with jsonb_path_ops; a field indexed twice fails."""
    found: dict[str, str] = {}
    for name, definition in psql(
        f"SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = {literal(schema)} "
        f"AND tablename = {literal(table)} AND indexdef LIKE '% USING gin %' ORDER BY indexname"
    ):
        shape = re.search(
            r"USING gin \(\(\(_jsonb -> '((?:[^']|'')*)'::text\)\) jsonb_path_ops\)$", definition
        )
        assert shape, f"a GIN index not on a pushdown expression: {definition}"
        field = shape.group(1).replace("''", "'")
        assert field not in found, f"two GIN indexes on {field!r}: {found[field]}, {name}"
        found[field] = name
    return found


def idx_scans(schema: str, names: list[str]) -> dict[str, int]:
    rows = psql(
        "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes "
        f"WHERE schemaname = {literal(schema)} AND indexrelname IN ({', '.join(map(literal, names))})"
    )
    return {name: int(n) for name, n in rows}


async def wait_for_scans(
    db: AsyncDatabase[dict[str, Any]], names: list[str], done: Callable[[dict[str, int]], bool]
) -> dict[str, int]:
    """Poll the indexes' scan counters until done(counters); returns the last counters.

    A PostgreSQL session reports its statistics at the end of a transaction at most once a second,
    else when it has been idle for 10 s: reading another collection now and then (which scans none
    of these indexes) makes FerretDB's sessions report sooner."""
    await db["elsewhere"].insert_one({})
    seen: dict[str, int] = {}
    for _ in range(60):
        seen = idx_scans(db.name, names)
        if done(seen):
            break
        await asyncio.sleep(0.5)
        await asyncio.gather(*(db["elsewhere"].count_documents({}) for _ in range(8)))
    return seen


def ferretdb_statement(schema: str, table: str) -> str:
    """The query FerretDB last sent for this table (the last statement of its session, which
    pg_stat_activity keeps while the session idles), checked to be the pushdown's shape."""
    rows = psql(
        "SELECT query FROM pg_stat_activity WHERE application_name = 'FerretDB' "
        f"AND query LIKE {literal('%FROM ' + ident(schema) + '.' + ident(table) + ' WHERE %')} "
        "ORDER BY query_start DESC LIMIT 1"
    )
    assert rows, "FerretDB's statement is not among its sessions' last ones"
    query = rows[0][0].strip()
    assert re.search(r"WHERE _jsonb->\$1 @> \$2( AND _jsonb->\$3 @> \$4)*$", query), query
    return query


async def test_id_lookups_are_served_by_an_index(store: str, fresh_db: AsyncDatabase[dict[str, Any]]) -> None:
    """Find and update by `_id` read an index, not the collection."""
    coll = fresh_db["lookups"]
    await coll.insert_many([{"_id": f"d{i}", "version": 1} for i in range(200)])
    if store == "mongodb":
        return  # MongoDB indexes `_id` itself
    schema, table = fresh_db.name, table_of(fresh_db, "lookups")
    gins = gin_indexes(schema, table)
    assert set(gins) == {"_id"}, gins  # once, although CREATE TABLE and FerretDB's `_id_` both asked
    before = idx_scans(schema, [gins["_id"]])[gins["_id"]]
    assert await coll.find_one({"_id": "d7"}) == {"_id": "d7", "version": 1}
    result = await coll.update_one({"_id": "d7", "version": 1}, {"$set": {"version": 2}})
    assert result.modified_count == 1
    after = await wait_for_scans(fresh_db, [gins["_id"]], lambda seen: seen[gins["_id"]] >= before + 2)
    assert after[gins["_id"]] >= before + 2, (before, after)


async def test_every_indexed_field_gets_a_gin_index_created_and_dropped_with_its_index(
    store: str, fresh_db: AsyncDatabase[dict[str, Any]]
) -> None:
    needs_postgresql(store)
    coll = fresh_db["alerts"]
    await coll.create_index([("clinic_id", ASCENDING), ("status", ASCENDING)], name="inbox")
    await coll.create_index([("source", ASCENDING), ("event_id", ASCENDING)], unique=True, name="uniq")
    await coll.create_index([("status", ASCENDING)], name="by_status")  # a field already covered
    await coll.create_index([("context.ward", ASCENDING)], name="nested")  # dotted: never pushed down
    schema, table = fresh_db.name, table_of(fresh_db, "alerts")
    assert set(gin_indexes(schema, table)) == {"_id", "clinic_id", "status", "source", "event_id"}

    await coll.drop_index("uniq")  # its fields lose their GIN indexes; `status` keeps one (by_status)
    assert set(gin_indexes(schema, table)) == {"_id", "clinic_id", "status"}
    await coll.drop_index("inbox")
    assert set(gin_indexes(schema, table)) == {"_id", "status"}

    # a collection made by its first insert gets its `_id` index too, as does one made explicitly
    await fresh_db["implicit"].insert_one({"_id": "x"})
    await fresh_db.create_collection("explicit")
    assert set(gin_indexes(schema, table_of(fresh_db, "implicit"))) == {"_id"}
    assert set(gin_indexes(schema, table_of(fresh_db, "explicit"))) == {"_id"}

    await coll.drop()
    assert (
        psql(f"SELECT 1 FROM pg_tables WHERE schemaname = {literal(schema)} AND tablename = {literal(table)}")
        == []
    )


async def test_pushed_down_equality_filters_use_the_gin_indexes(
    store: str, fresh_db: AsyncDatabase[dict[str, Any]]
) -> None:
    """The plans of the SQL FerretDB sends for `{_id}` and `{clinic_id, status}` read the GIN
    indexes, and a find through PyMongo does read them (their scan counters go up)."""
    needs_postgresql(store)
    coll = fresh_db["inbox"]
    await coll.create_index([("clinic_id", ASCENDING), ("status", ASCENDING)], name="inbox")
    statuses = ["open", "acknowledged", "resolved", "closed"]
    docs = [
        {"_id": f"a{i}", "clinic_id": f"c{i % 40}", "status": statuses[i // 40 % 4], "version": 1}
        for i in range(4000)
    ]
    for start in range(0, len(docs), 500):
        await coll.insert_many(docs[start : start + 500])
    schema, table = fresh_db.name, table_of(fresh_db, "inbox")
    psql(f"ANALYZE {ident(schema)}.{ident(table)}")
    gins = gin_indexes(schema, table)
    assert set(gins) == {"_id", "clinic_id", "status"}

    before = idx_scans(schema, list(gins.values()))
    assert await coll.find_one({"_id": "a123"}) is not None
    by_id = ferretdb_statement(schema, table)
    inbox = await coll.find({"clinic_id": "c3", "status": "open"}).to_list()
    by_two = ferretdb_statement(schema, table)
    assert sorted(d["_id"] for d in inbox) == sorted(
        str(d["_id"]) for d in docs if d["clinic_id"] == "c3" and d["status"] == "open"
    )
    assert len(inbox) == 25

    # The statements exactly as FerretDB sent them: the keys are parameters ($1, $3), the values
    # jsonb ($2, $4). The cluster plans each execution with its parameters (plan_cache_mode), so the
    # plan of EXECUTE is the plan FerretDB's statement got.
    for query, types, args, wanted in [
        (by_id, "text, jsonb", "'_id', '\"a123\"'", {gins["_id"]}),
        (
            by_two,
            "text, jsonb, text, jsonb",
            "'clinic_id', '\"c3\"', 'status', '\"open\"'",
            {gins["clinic_id"], gins["status"]},
        ),
    ]:
        plan = "\n".join(
            r[0]
            for r in psql(
                f"PREPARE attune_probe({types}) AS {query}; EXPLAIN (COSTS OFF) EXECUTE attune_probe({args})"
            )
        )
        assert "Seq Scan" not in plan, plan
        assert any(name in plan for name in wanted), plan

    def went_up(seen: dict[str, int]) -> bool:
        return seen[gins["_id"]] > before[gins["_id"]] and any(
            seen[gins[f]] > before[gins[f]] for f in ("clinic_id", "status")
        )

    after = await wait_for_scans(fresh_db, list(gins.values()), went_up)
    assert went_up(after), (before, after)


def last_statement(schema: str, table: str) -> str:
    """The query FerretDB last sent for this table, whatever its shape."""
    rows = psql(
        "SELECT query FROM pg_stat_activity WHERE application_name = 'FerretDB' "
        f"AND query LIKE {literal('%FROM ' + ident(schema) + '.' + ident(table) + '%')} "
        "ORDER BY query_start DESC LIMIT 1"
    )
    assert rows, "FerretDB's statement is not among its sessions' last ones"
    return rows[0][0].strip()


async def test_the_reads_that_repeat_with_the_data_are_pushed_down(
    store: str, fresh_db: AsyncDatabase[dict[str, Any]]
) -> None:
    """measures reads a batch's groups by `series_key`, and alerts' sweep counts the unresolved alerts
    by `status`: both pushed down (a WHERE on the GIN-indexed field), never the whole collection, so
    they cost the same at any size of the data."""
    needs_postgresql(store)
    from attune_alerts.adapters.store import AlertsStore
    from attune_measures.adapters.store import MeasuresStore
    from attune_measures.domain.versions import Tracked
    from tests.unit.measures_service.builders import srs

    measures = MeasuresStore(fresh_db)
    await measures.ensure_indexes()
    a, b = srs("r-a", 36, 0), srs("r-b", 37, 1)
    await measures.save(changed=[Tracked(a, 1, "fa"), Tracked(b, 1, "fb")], versions={})
    loaded = await measures.load(keys=[a.key], series_keys=[a.series_key])
    assert set(loaded.book) == {a.key, b.key}
    query = last_statement(fresh_db.name, table_of(fresh_db, "responses"))
    assert re.search(r"WHERE _jsonb->\$1 @> \$2$", query), query

    alerts = AlertsStore(fresh_db)
    await alerts.ensure_indexes()
    statuses = ["open", "acknowledged", "resolved", "open"]
    await alerts.alerts.insert_many(
        [{"_id": f"al{i}", "status": statuses[i % 4], "severity": ["high", "low"][i % 2]} for i in range(40)]
    )
    assert await alerts.count_unresolved() == {"high": 10, "low": 20}
    query = last_statement(fresh_db.name, table_of(fresh_db, "alerts"))
    assert re.search(r"WHERE _jsonb->\$1 @> \$2$", query), query


async def test_reporting_reads_a_cell_by_its_indexed_fields(
    store: str, fresh_db: AsyncDatabase[dict[str, Any]]
) -> None:
    """reporting keeps every cell's facts in one collection per kind and reads a cell with one equality
    on (`clinic_id`, `month`), pushed down to the GIN indexes: no collection per cell, no scan."""
    needs_postgresql(store)
    from datetime import UTC, datetime

    from attune_reporting.adapters.store import ReportingStore
    from attune_reporting.domain.facts import MeasureFact

    reporting = ReportingStore(fresh_db)
    await reporting.ensure_indexes()
    at = datetime(2026, 3, 2, 10, tzinfo=UTC)

    def fact(i: int, clinic: str, month: str) -> MeasureFact:
        return MeasureFact(
            fact_id=f"m:{i}", revision=1, instrument="SRS", respondent="client", clinic_id=clinic,
            client_ref=f"c{i}", episode_id=f"e{i}", clinician_id="t1", month=month, session_at=at,
            occurred_at=at, total=30.0,
        )  # fmt: skip

    cells = [("north", "2026-03"), ("north", "2026-04"), ("south", "2026-03")]
    for n, (clinic, month) in enumerate(cells):
        # the same fact id in two cells is two documents (a fact belongs to its cell)
        facts = [fact(i, clinic, month) for i in range(n, n + 5)]
        assert await reporting.claim_new(kind="measures", clinic_id=clinic, month=month, facts=facts) == set()
    _, measures, _ = await reporting.cell_facts(clinic_id="north", month="2026-04")
    assert sorted(f.fact_id for f in measures) == [f"m:{i}" for i in range(1, 6)]
    assert {(f.clinic_id, f.month) for f in measures} == {("north", "2026-04")}
    # cell_facts reads care, measures, then alerts: the last statement is the alert facts' read
    query = last_statement(fresh_db.name, table_of(fresh_db, "alert_facts"))
    assert re.search(r"WHERE _jsonb->\$1 @> \$2 AND _jsonb->\$3 @> \$4$", query), query
    loaded = await reporting.load_measures(clinic_id="south", month="2026-03", ids=["m:2", "m:9"])
    assert list(loaded) == ["m:2"] and loaded["m:2"].clinic_id == "south"
    # an episode's facts in every month of its clinic (the materializer summarizing a trickle's
    # episodes without reading every cell), by an equality on the GIN-indexed `episode_id`
    more = [fact(2, "north", "2026-05"), fact(3, "north", "2026-05")]
    assert await reporting.claim_new(kind="measures", clinic_id="north", month="2026-05", facts=more) == set()
    own = await reporting.episode_facts(clinic_id="north", episode_ids=["e2", "e9"])
    assert list(own) == ["e2"]
    care, measures, alerts = own["e2"]
    assert not care and not alerts
    assert sorted((f.month, f.fact_id) for f in measures) == [
        ("2026-03", "m:2"),
        ("2026-04", "m:2"),
        ("2026-05", "m:2"),
    ]  # south's e2 (2026-03) is another clinic's
    # care, measures, then alerts again: the alert facts' read is the last one
    query = last_statement(fresh_db.name, table_of(fresh_db, "alert_facts"))
    assert re.search(r"WHERE _jsonb->\$1 @> \$2$", query), query
    assert set(gin_indexes(fresh_db.name, table_of(fresh_db, "measure_facts"))) >= {
        "_id",
        "clinic_id",
        "month",
        "episode_id",
    }
    assert sorted(await fresh_db.list_collection_names()) == [
        "alert_facts",
        "care_facts",
        "client_index",
        "dirty",
        "episodes",
        "locks",
        "measure_facts",
        "rejected",
        "report_clinic",
        "report_network",
    ]  # fmt: skip: every collection created up front, none per cell
    assert not await reporting.legacy_layout()
    await fresh_db.create_collection("care.north.2026-01")  # as an earlier release created them
    earlier = ReportingStore(fresh_db)
    assert await earlier.legacy_layout() and earlier.legacy
