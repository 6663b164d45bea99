"""PgBouncer's password lookup (auth_query) as a function Postgres owns: SECURITY DEFINER
with a pinned search_path, executable by the pooler role only, answering only for login
roles that are neither superusers nor replication roles and whose password has not expired.
So a role created or rotated by a deploy works through the pooler at once, and nothing the
pooler role can do reads pg_authid beyond that."""

from __future__ import annotations

import hashlib

from pgops.settings.endpoint import AUTH_FUNCTION, AUTH_SCHEMA, POOLER_ROLE

#: The function's own search_path: nothing a caller or schema owner can shadow.
SEARCH_PATH = "pg_catalog, pg_temp"
#: Where the function lives (PgBouncer's auth_dbname points there).
DATABASE = "postgres"
#: What PgBouncer runs, as POOLER_ROLE: one row (name, SCRAM verifier) or none.
QUERY = f"SELECT usename, passwd FROM {AUTH_SCHEMA}.get_auth($1)"

BODY = f"""
    SELECT rolname::text, rolpassword::text
    FROM pg_catalog.pg_authid
    WHERE rolname = p_usename
      AND rolcanlogin AND NOT rolsuper AND NOT rolreplication
      AND rolname <> '{POOLER_ROLE}'
      AND (rolvaliduntil IS NULL OR rolvaliduntil > pg_catalog.now())
"""

#: Creates or corrects everything; safe to run again. Run as a superuser on the leader.
SQL = f"""
CREATE SCHEMA IF NOT EXISTS {AUTH_SCHEMA} AUTHORIZATION postgres;
ALTER SCHEMA {AUTH_SCHEMA} OWNER TO postgres;
REVOKE ALL ON SCHEMA {AUTH_SCHEMA} FROM PUBLIC;
GRANT USAGE ON SCHEMA {AUTH_SCHEMA} TO {POOLER_ROLE};
CREATE OR REPLACE FUNCTION {AUTH_SCHEMA}.get_auth(p_usename text)
RETURNS TABLE (usename text, passwd text)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = {SEARCH_PATH}
AS $fn${BODY}$fn$;
ALTER FUNCTION {AUTH_FUNCTION} OWNER TO postgres;
REVOKE ALL ON FUNCTION {AUTH_FUNCTION} FROM PUBLIC;
GRANT EXECUTE ON FUNCTION {AUTH_FUNCTION} TO {POOLER_ROLE};
DO $do$
DECLARE r record;
BEGIN
  -- Grants anyone added beside pgops's, and members of the pooler role, which inherit them.
  FOR r IN SELECT DISTINCT a.grantee::regrole::text AS who
           FROM pg_proc p, aclexplode(p.proacl) a
           WHERE p.oid = '{AUTH_FUNCTION}'::regprocedure AND a.grantee <> 0
             AND a.grantee::regrole::text NOT IN ('postgres', '{POOLER_ROLE}') LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION {AUTH_FUNCTION} FROM %s', r.who);
  END LOOP;
  FOR r IN SELECT DISTINCT a.grantee::regrole::text AS who
           FROM pg_namespace n, aclexplode(n.nspacl) a
           WHERE n.nspname = '{AUTH_SCHEMA}' AND a.grantee <> 0
             AND a.grantee::regrole::text NOT IN ('postgres', '{POOLER_ROLE}') LOOP
    EXECUTE format('REVOKE ALL ON SCHEMA {AUTH_SCHEMA} FROM %s', r.who);
  END LOOP;
  FOR r IN SELECT m.member::regrole::text AS who FROM pg_auth_members m
           WHERE m.roleid = '{POOLER_ROLE}'::regrole LOOP
    EXECUTE format('REVOKE {POOLER_ROLE} FROM %s', r.who);
  END LOOP;
END
$do$;
"""

#: The function's state as one line, compared with want(): the function's and the schema's
#: owners (a non-superuser owner could replace it), definer, search_path, body, who may
#: execute it, and who may use the schema (empty when the function does not exist).
STATE_SQL = f"""
SELECT concat_ws('|', pg_get_userbyid(p.proowner), pg_get_userbyid(n.nspowner),
  p.prosecdef, p.proconfig::text, md5(p.prosrc),
  (SELECT string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_roles r
    WHERE has_function_privilege(r.oid, p.oid, 'EXECUTE') AND NOT r.rolsuper
      AND r.rolname NOT LIKE 'pg\\_%'),
  (SELECT string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_roles r
    WHERE has_schema_privilege(r.oid, n.oid, 'USAGE') AND NOT r.rolsuper
      AND r.rolname NOT LIKE 'pg\\_%'))
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = '{AUTH_SCHEMA}' AND p.proname = 'get_auth'
"""


def want() -> str:
    """STATE_SQL's answer once SQL has run: only the pooler role may use it (superusers and
    the predefined pg_* roles such as pg_read_all_data aside)."""
    md5 = hashlib.md5(BODY.encode()).hexdigest()
    return f"postgres|postgres|t|{{\"search_path={SEARCH_PATH}\"}}|{md5}|{POOLER_ROLE}|{POOLER_ROLE}"
