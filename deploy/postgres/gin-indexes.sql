-- GIN indexes for FerretDB's filter pushdown, kept in step by event triggers.
--
-- deploy/infra.sh loads this file into the `ferretdb` database of the project's PostgreSQL cluster at
-- every start (it is idempotent), then adds whatever index an older cluster still lacks.
--
-- Why: FerretDB 1.24 keeps a MongoDB database as a schema and a collection as a table with one jsonb
-- column, `_jsonb`. It pushes each top-level equality of a filter (`{f: scalar}` or `{f: {$eq: scalar}}`)
-- down to SQL as `_jsonb -> 'f' @> 'value'` (internal/backends/postgresql/query.go, filterEqual), but
-- its own indexes are btree indexes on `((_jsonb -> 'f'))` (metadata/registry.go, indexesCreate),
-- which `@>` cannot use: every find, update and delete by `_id` or by an indexed field reads the whole
-- table. A GIN index with jsonb_path_ops on exactly that expression serves `@>`.
--
-- What: a GIN index `USING gin ((_jsonb -> 'f') jsonb_path_ops)` on `_id` of every collection table,
-- and on every field of every index FerretDB creates (a compound index gets one per field), added in
-- the same transaction as FerretDB's CREATE TABLE or CREATE INDEX, so a collection is never without
-- them. One per table and field (named from both, ending in `_gin`, a suffix FerretDB never uses), so
-- FerretDB's own `_id_` index finds the one CREATE TABLE already added. When FerretDB drops an index,
-- the GIN index of a field no other index of the table covers goes too; dropping a collection drops
-- the table with every index on it. Nested fields (`a.b`) get none: FerretDB does not push dotted
-- keys down unless started with nested pushdown, which Attune does not use.
--
-- The key in FerretDB's SQL is a parameter (`_jsonb -> $1`); the planner matches it to the index
-- expression only in a custom plan, which is why the cluster runs with plan_cache_mode =
-- force_custom_plan (deploy/infra.sh).

SET client_min_messages = warning;  -- no notices for the DROP ... IF EXISTS below

-- 'f' for one index column that pg_get_indexdef prints as `((_jsonb -> 'f'::text))`, else NULL
-- (a nested field prints as `(((_jsonb -> 'a'::text) -> 'b'::text))`).
CREATE OR REPLACE FUNCTION public.attune_pushdown_field(def text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT replace(m[1], '''''', '''')
  FROM regexp_match(def, '^\(\(?_jsonb -> ''((?:[^'']|'''')*)''::text\)\)?$') AS m
$$;

-- The name of the GIN index on field f of table rel (at most 53 bytes: FerretDB's table names are
-- ASCII; the hash keeps two long table names with the same first 40 characters apart).
CREATE OR REPLACE FUNCTION public.attune_gin_name(rel text, f text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT left(rel, 40) || '_' || left(md5(rel || '/' || f), 8) || '_gin'
$$;

-- Whether tbl is a FerretDB collection table: a plain table with a jsonb column `_jsonb`, other than
-- the per-database metadata table (whose own btree indexes serve its lookups).
CREATE OR REPLACE FUNCTION public.attune_is_collection(tbl oid) RETURNS boolean
LANGUAGE sql STABLE STRICT AS $$
  SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
    WHERE c.oid = tbl AND c.relkind = 'r' AND c.relname <> '_ferretdb_database_metadata'
      AND a.attname = '_jsonb' AND a.atttypid = 'pg_catalog.jsonb'::pg_catalog.regtype AND NOT a.attisdropped)
$$;

-- The fields that should have a GIN index on table tbl: `_id` and every field of its btree indexes.
CREATE OR REPLACE FUNCTION public.attune_pushdown_fields(tbl oid) RETURNS SETOF text
LANGUAGE sql STABLE STRICT AS $$
  SELECT '_id'
  UNION
  SELECT f FROM (
    SELECT public.attune_pushdown_field(pg_catalog.pg_get_indexdef(i.indexrelid, k, false)) AS f
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam
    CROSS JOIN LATERAL pg_catalog.generate_series(1, i.indnkeyatts) AS k
    WHERE i.indrelid = tbl AND am.amname = 'btree'
  ) AS fields
  WHERE f IS NOT NULL
$$;

-- Adds the GIN indexes table tbl lacks; returns how many it added (0 for a table that is not a
-- collection table).
CREATE OR REPLACE FUNCTION public.attune_gin_ensure(tbl oid) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  sch text;
  rel text;
  f text;
  added integer := 0;
BEGIN
  IF NOT public.attune_is_collection(tbl) THEN
    RETURN 0;
  END IF;
  SELECT n.nspname, c.relname INTO sch, rel
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = tbl;
  FOR f IN SELECT public.attune_pushdown_fields(tbl) LOOP
    CONTINUE WHEN pg_catalog.to_regclass(format('%I.%I', sch, public.attune_gin_name(rel, f))) IS NOT NULL;
    EXECUTE format('CREATE INDEX %I ON %I.%I USING gin ((_jsonb -> %L) jsonb_path_ops)',
                   public.attune_gin_name(rel, f), sch, rel, f);
    added := added + 1;
  END LOOP;
  RETURN added;
END
$$;

-- Drops the GIN indexes of table tbl whose field no btree index covers any more (never `_id`).
CREATE OR REPLACE FUNCTION public.attune_gin_prune(tbl oid) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  sch text;
  idx text;
  dropped integer := 0;
BEGIN
  FOR sch, idx IN
    SELECT n.nspname, ic.relname
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_am am ON am.oid = ic.relam
    CROSS JOIN LATERAL public.attune_pushdown_field(pg_catalog.pg_get_indexdef(i.indexrelid, 1, false)) AS f
    WHERE i.indrelid = tbl AND am.amname = 'gin'
      AND ic.relname = public.attune_gin_name(c.relname, f)
      AND f NOT IN (SELECT public.attune_pushdown_fields(tbl))
  LOOP
    EXECUTE format('DROP INDEX %I.%I', sch, idx);
    dropped := dropped + 1;
  END LOOP;
  RETURN dropped;
END
$$;

-- ddl_command_end, CREATE TABLE or CREATE INDEX: the new table, or the table of a new btree index,
-- gets its GIN indexes (the GIN indexes made here fire this trigger too, and are passed over).
CREATE OR REPLACE FUNCTION public.attune_gin_on_create() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  cmd record;
  tbl oid;
BEGIN
  FOR cmd IN SELECT * FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP
    IF cmd.object_type = 'table' THEN
      PERFORM public.attune_gin_ensure(cmd.objid);
    ELSIF cmd.object_type = 'index' THEN
      SELECT i.indrelid INTO tbl
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_catalog.pg_am am ON am.oid = ic.relam
      WHERE i.indexrelid = cmd.objid AND am.amname = 'btree';
      IF tbl IS NOT NULL THEN
        PERFORM public.attune_gin_ensure(tbl);
      END IF;
    END IF;
  END LOOP;
END
$$;

-- sql_drop, DROP INDEX of one of FerretDB's indexes: the catalog no longer says which table it was
-- on, so every collection table of its schema is pruned (dropIndexes is rare; a schema holds few
-- tables, and pruning one is a single catalog query).
CREATE OR REPLACE FUNCTION public.attune_gin_on_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  tbl oid;
BEGIN
  FOR tbl IN
    SELECT c.oid
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname IN (
      SELECT d.schema_name FROM pg_catalog.pg_event_trigger_dropped_objects() AS d
      WHERE d.object_type = 'index' AND d.original AND d.object_name NOT LIKE '%\_gin')
  LOOP
    IF public.attune_is_collection(tbl) THEN
      PERFORM public.attune_gin_prune(tbl);
    END IF;
  END LOOP;
END
$$;

-- Event triggers have no CREATE OR REPLACE: drop and create them (deploy/infra.sh runs this file in
-- one transaction, so no DDL slips in between).
DROP EVENT TRIGGER IF EXISTS attune_gin_on_create;
CREATE EVENT TRIGGER attune_gin_on_create ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE INDEX')
  EXECUTE FUNCTION public.attune_gin_on_create();

DROP EVENT TRIGGER IF EXISTS attune_gin_on_drop;
CREATE EVENT TRIGGER attune_gin_on_drop ON sql_drop
  WHEN TAG IN ('DROP INDEX')
  EXECUTE FUNCTION public.attune_gin_on_drop();

-- Collection tables made before these triggers existed (a cluster from an older checkout) catch up.
SELECT coalesce(sum(public.attune_gin_ensure(c.oid)), 0) AS gin_indexes_added
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%';
