-- GIN twins of FerretDB's indexes, for FerretDB v1.24 over PostgreSQL (docs/operations.md,
-- "The database backend").
--
-- FerretDB stores a document as one jsonb column `_jsonb` and pushes an equality filter down as
-- `_jsonb -> 'field' @> value`. The indexes it creates (the `_id` index of each collection's table
-- and each `create_index`) are B-trees on `_jsonb -> 'field'`, which PostgreSQL cannot use for
-- `@>`: every pushed-down query is a sequential scan. A GIN index on the same expression is read
-- (Bitmap Index Scan). This event trigger gives every such B-tree a GIN twin on the same
-- expressions, with fastupdate = off (a pending list would be read linearly until vacuum), when
-- FerretDB creates it, and drops the twin when FerretDB drops the index (dropping a collection
-- drops its table, twins included). The services know nothing of it.
--
-- Idempotent: run it on every start of the cluster (scripts/infra.sh, LocalFerretDB); it also
-- gives a twin to every index that exists without one (a cluster made before this file).

CREATE OR REPLACE FUNCTION public.billing_gin_twin_name(index_name text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN length(index_name) <= 59 THEN index_name || '_gin'
              ELSE left(index_name, 50) || '_' || left(md5(index_name), 8) || '_gin' END
$$;

-- The twin of one index, when it is a B-tree of FerretDB's shape on a collection's table.
CREATE OR REPLACE FUNCTION public.billing_gin_twin(index_oid oid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
  key_count int;
  schema_name text;
  table_name text;
  index_name text;
  method text;
  expression text;
  expressions text[] := '{}';
BEGIN
  SELECT x.indnkeyatts, n.nspname, t.relname, i.relname, a.amname
    INTO key_count, schema_name, table_name, index_name, method
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_am a ON a.oid = i.relam
    JOIN pg_class t ON t.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = t.relnamespace
   WHERE x.indexrelid = index_oid;
  IF NOT FOUND OR method <> 'btree' OR table_name LIKE '\_ferretdb\_%' THEN
    RETURN;  -- not an index, already a GIN (a twin), or FerretDB's own metadata table
  END IF;
  FOR k IN 1..key_count LOOP
    expression := pg_get_indexdef(index_oid, k, false);
    IF expression !~ '^\(*_jsonb -> ''([^'']|'''')*''::text\)*$' THEN
      RETURN;  -- not FerretDB's `_jsonb -> 'field'`: not ours to twin
    END IF;
    expressions := expressions || ('(' || expression || ')');
  END LOOP;
  EXECUTE format(
    'CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin (%s) WITH (fastupdate = off)',
    public.billing_gin_twin_name(index_name), schema_name, table_name,
    array_to_string(expressions, ', '));
END
$$;

CREATE OR REPLACE FUNCTION public.billing_gin_twins_on_create() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
  command record;
BEGIN
  FOR command IN SELECT objid, object_type FROM pg_event_trigger_ddl_commands() LOOP
    IF command.object_type = 'index' THEN
      PERFORM public.billing_gin_twin(command.objid);
    ELSIF command.object_type = 'table' THEN  -- indexes made with the table (constraints)
      PERFORM public.billing_gin_twin(x.indexrelid) FROM pg_index x WHERE x.indrelid = command.objid;
    END IF;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION public.billing_gin_twins_on_drop() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
  dropped record;
BEGIN
  FOR dropped IN
    SELECT schema_name, object_name FROM pg_event_trigger_dropped_objects()
     WHERE object_type = 'index' AND original AND object_name NOT LIKE '%\_gin'
  LOOP
    EXECUTE format('DROP INDEX IF EXISTS %I.%I',
                   dropped.schema_name, public.billing_gin_twin_name(dropped.object_name));
  END LOOP;
END
$$;

DROP EVENT TRIGGER IF EXISTS billing_gin_twins_on_create;
CREATE EVENT TRIGGER billing_gin_twins_on_create ON ddl_command_end
  WHEN TAG IN ('CREATE INDEX', 'CREATE TABLE', 'ALTER TABLE')
  EXECUTE FUNCTION public.billing_gin_twins_on_create();

DROP EVENT TRIGGER IF EXISTS billing_gin_twins_on_drop;
CREATE EVENT TRIGGER billing_gin_twins_on_drop ON sql_drop
  WHEN TAG IN ('DROP INDEX')
  EXECUTE FUNCTION public.billing_gin_twins_on_drop();

-- indexes made before the trigger existed
DO $$ BEGIN PERFORM public.billing_gin_twin(x.indexrelid) FROM pg_index x; END $$;
