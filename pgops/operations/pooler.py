"""Operations for PgBouncer's side of Postgres: its password lookup function."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import operation

from pgops.endpoint import auth
from pgops.facts.postgres import PgAuthFunction
from pgops.operations.postgres import psql_command


@operation()
def auth_function(port: int = 5432):
    """Create or correct PgBouncer's auth_query function (pgops.endpoint.auth) where it is
    missing or differs (body, SECURITY DEFINER, search_path, grants). Call with
    `_sudo=True, _sudo_user="postgres"`, after the pooler role exists."""
    have = host.get_fact(PgAuthFunction, port=port)
    if have == auth.want():
        host.noop("PgBouncer's password lookup function is as pgops defines it")
        return
    yield psql_command(auth.SQL, port, auth.DATABASE)
