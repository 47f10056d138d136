-- What exists in a target: a read-only look through dblink, for the demo report and for DBAs.

CREATE OR REPLACE FUNCTION admmgt.inventory(p_dbname text, p_server text DEFAULT NULL)
RETURNS TABLE (kind text, name text, detail text)
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
/* purpose: the tables, partitions, columns, foreign keys, indexes (not those of partitions), views, routines and row counts of a target's app schemas, on p_server or else on the server its row names */
DECLARE
    v_db text := admmgt._tenant_name(p_dbname, 'the argument p_dbname of admmgt.inventory');
    v_server text := p_server;
    v_nsp text;
    v_reg admmgt.registry;
BEGIN
    SELECT * INTO v_reg FROM admmgt.registry x WHERE lower(btrim(x.dbname)) = v_db AND NOT x.deleted AND NOT x.servertemplate AND NOT x.pool;
    v_server := coalesce(v_server, v_reg.on_server);
    IF v_reg.kind = 'schema' THEN
        -- A schema target: the schema, in the database that holds it.
        v_nsp := v_db;
        v_db := coalesce(lower(btrim(v_reg.schema_db)), current_database());
    END IF;
    RETURN QUERY
    SELECT r.kind, r.name, r.detail
      FROM dblink(admmgt._connstr(coalesce(v_server, 'local'), v_db), replace($q$
        WITH app_ns AS (
            SELECT oid, nspname FROM pg_catalog.pg_namespace
             WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'admmgt') AND nspname NOT LIKE 'pg\_%' /*nsp*/),
        rels AS (
            SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispartition, c.relrowsecurity,
                   format('%I.%I', n.nspname, c.relname) AS qname
              FROM pg_catalog.pg_class c JOIN app_ns n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p'))
        SELECT 1 AS ord, 'table' AS kind, qname AS name,
               CASE relkind WHEN 'p' THEN 'partitioned by ' || pg_catalog.pg_get_partkeydef(oid) ELSE 'table' END AS detail
          FROM rels WHERE NOT relispartition
        UNION ALL
        SELECT 2, 'partition', r.qname,
               format('of %s %s', p.qname, pg_catalog.pg_get_expr(c.relpartbound, c.oid))
          FROM rels r JOIN pg_catalog.pg_class c ON c.oid = r.oid
          JOIN pg_catalog.pg_inherits i ON i.inhrelid = r.oid JOIN rels p ON p.oid = i.inhparent
        UNION ALL
        SELECT 3, 'column', r.qname || '.' || pg_catalog.quote_ident(a.attname),
               pg_catalog.format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
          FROM rels r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid
         WHERE NOT r.relispartition AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL
        SELECT 4, 'foreign key', r.qname || ' ' || pg_catalog.quote_ident(k.conname), pg_catalog.pg_get_constraintdef(k.oid)
          FROM rels r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.oid AND k.contype = 'f'
         WHERE NOT r.relispartition
        UNION ALL
        SELECT 5, 'index', format('%I.%I', n.nspname, ic.relname), pg_catalog.pg_get_indexdef(x.indexrelid)
                            || CASE WHEN x.indisvalid THEN '' ELSE ' (INVALID)' END
          FROM rels r JOIN pg_catalog.pg_index x ON x.indrelid = r.oid JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
          JOIN app_ns n ON n.oid = ic.relnamespace
         WHERE NOT r.relispartition AND NOT x.indisprimary
        UNION ALL
        SELECT 6, 'view', format('%I.%I', n.nspname, c.relname), CASE c.relkind WHEN 'm' THEN 'materialized view' ELSE 'view' END
          FROM pg_catalog.pg_class c JOIN app_ns n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
        UNION ALL
        SELECT 7, CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
               format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.pg_get_function_identity_arguments(p.oid)), ''
          FROM pg_catalog.pg_proc p JOIN app_ns n ON n.oid = p.pronamespace
        UNION ALL
        -- A table with row security is not counted: its policies are the tenant's code.
        SELECT 8, 'rows', qname,
               CASE WHEN relrowsecurity THEN 'not counted: row security is enabled'
                    ELSE (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', qname), false, true, '')))[1]::text END
          FROM rels WHERE NOT relispartition
        ORDER BY 1, 3
      $q$, '/*nsp*/', CASE WHEN v_nsp IS NOT NULL THEN format('AND nspname = %L', v_nsp) ELSE '' END)) AS r(ord int, kind text, name text, detail text);
END;
$$;
