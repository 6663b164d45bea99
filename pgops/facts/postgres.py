"""Facts about a running PostgreSQL cluster: one query each through pgops's psql command
(server.psql), which pyinfra runs as the postgres user (server.psql.AS_POSTGRES).

Each returns None when the server is not installed or not running, so a first deploy can
plan against an empty host. Password verifiers never leave the host: the roles fact returns
only the SCRAM parameters (iterations, salt) and a sha256 of the verifier (see
pgops.server.scram.matches).
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api import FactBase

from pgops.server import psql


def _psql(port: int, sql: str, database: str = "postgres") -> str:
    # Always exit 0: "server down" is a state to report (None), not a failure.
    return f"cd / && ({psql.shell(sql, port, database, as_postgres=False)} 2>/dev/null || echo null)"


class _JsonFact(FactBase[Any]):
    def requires_command(self, *args: Any, **kwargs: Any) -> str:
        return "psql"

    def process(self, output: list[str]) -> Any:
        text = "\n".join(output).strip()
        return json.loads(text) if text else None


class PgServer(_JsonFact):
    """Version, start time, TLS and every setting with its context and pending_restart."""

    SQL = """
    select json_build_object(
      'version_num', current_setting('server_version_num')::int,
      'version', current_setting('server_version'),
      'start_time', pg_postmaster_start_time(),
      'settings', (select json_object_agg(name, json_build_object(
                    'setting', setting, 'unit', unit, 'context', context,
                    'pending_restart', pending_restart)) from pg_settings))
    """

    def command(self, port: int = 5432) -> str:
        return _psql(port, self.SQL)


class PgRoles(_JsonFact):
    """Non-system roles: attributes, memberships and a digest of the password verifier."""

    SQL = """
    select coalesce(json_object_agg(r.rolname, json_build_object(
      'superuser', r.rolsuper, 'createdb', r.rolcreatedb, 'createrole', r.rolcreaterole,
      'login', r.rolcanlogin, 'replication', r.rolreplication, 'bypassrls', r.rolbypassrls,
      'connection_limit', r.rolconnlimit,
      'scram_params', case when r.rolpassword like 'SCRAM-SHA-256$%'
                      then split_part(r.rolpassword, '$', 2) end,
      'scram_digest', encode(sha256(convert_to(r.rolpassword, 'UTF8')), 'hex'),
      'member_of', (select coalesce(json_agg(g.rolname order by g.rolname), '[]')
                    from pg_auth_members m join pg_roles g on g.oid = m.roleid
                    where m.member = r.oid))), '{}')
    from pg_authid r where r.rolname !~ '^pg_'
    """

    def command(self, port: int = 5432) -> str:
        return _psql(port, self.SQL)


class PgDatabases(_JsonFact):
    SQL = """
    select coalesce(json_object_agg(d.datname, json_build_object(
      'owner', pg_get_userbyid(d.datdba), 'encoding', pg_encoding_to_char(d.encoding),
      'collate', d.datcollate, 'ctype', d.datctype)), '{}')
    from pg_database d where not d.datistemplate
    """

    def command(self, port: int = 5432) -> str:
        return _psql(port, self.SQL)


class PgExtensions(_JsonFact):
    """Installed extensions of one database: name -> version."""

    SQL = "select coalesce(json_object_agg(extname, extversion), '{}') from pg_extension"

    def command(self, database: str, port: int = 5432) -> str:
        return _psql(port, self.SQL, database)


class PgFunctionGrants(_JsonFact):
    """Which of the given functions (by signature) a role may execute: signature -> bool
    (None when the server is down or the role does not exist yet)."""

    def command(self, role: str, functions: tuple[str, ...], port: int = 5432) -> str:
        sigs = ", ".join("'" + f.replace("'", "''") + "'" for f in functions)
        who = "'" + role.replace("'", "''") + "'"
        return _psql(port, f"select json_object_agg(f, has_function_privilege({who}, f, 'execute')) "
                           f"from unnest(array[{sigs}]) f")



class PgArchiver(_JsonFact):
    """pg_stat_archiver: WAL archiving health, with ages in seconds; archive_timeout and the
    age of the oldest complete segment still waiting (.ready) bound what is at risk."""

    SQL = """
    select row_to_json(a) from (
      select archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal,
             last_failed_time,
             extract(epoch from now() - last_archived_time) as last_archived_age_s,
             extract(epoch from last_archived_time) as last_archived_epoch,
             pg_is_in_recovery() as in_recovery,
             case when not pg_is_in_recovery()
                  then pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint end as current_wal_bytes,
             pg_size_bytes(current_setting('wal_segment_size')) as wal_segment_bytes,
             (select setting::int from pg_settings where name = 'archive_timeout') as archive_timeout_s,
             (select extract(epoch from now() - min(modification)) from pg_ls_archive_statusdir()
              where name like '%.ready') as oldest_ready_age_s
      from pg_stat_archiver) a
    """

    def command(self, port: int = 5432) -> str:
        return _psql(port, self.SQL)


class PgAuthFunction(_JsonFact):
    """PgBouncer's lookup function as it is (pgops.endpoint.auth.STATE_SQL): one line, ""
    when it does not exist, None when the server is down."""

    def command(self, port: int = 5432) -> str:
        from pgops.endpoint import auth

        return _psql(port, f"select to_json(coalesce(({auth.STATE_SQL}), ''))", auth.DATABASE)
