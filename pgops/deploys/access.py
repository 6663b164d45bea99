"""Roles, databases and extensions, as the config says (never dropped); on a cluster, run
on its leader only (replicas follow)."""

from __future__ import annotations

from typing import Any

from pyinfra.api import deploy

from pgops.facts.postgres import PgDatabases, PgExtensions, PgRoles
from pgops.ha.patroni import REWIND_FUNCTIONS
from pgops.operations import cache, postgres
from pgops.operations import pooler as pooler_ops
from pgops.server.psql import AS_POSTGRES
from pgops.settings import Settings
from pgops.settings.ha import REWINDER


def asked_of_server(s: Settings) -> list[tuple[Any, dict[str, Any]]]:
    """The facts postgres_access reads of the server: read together (one round trip), by
    it or by a deploy before it (pgops.operations.cache.read_together)."""
    pg = {"port": s.pg_port, **AS_POSTGRES}
    return [(PgRoles, pg), (PgDatabases, pg),
            *((PgExtensions, {"database": d.name, **pg}) for d in s.pg_databases if d.extensions)]


@deploy("Roles, databases and extensions")
def postgres_access(s: Settings) -> None:
    cache.read_together(asked_of_server(s))
    for r in s.roles:
        password = s.password(r) if (r.login and r.password) else None
        postgres.role(name=f"Role {r.name}", role=r, password=password, port=s.pg_port,
                      **AS_POSTGRES)
    if s.pg_ha_cluster:
        postgres.function_grants(name=f"{REWINDER} may run pg_rewind's functions",
                                 role_name=REWINDER, functions=REWIND_FUNCTIONS,
                                 port=s.pg_port, **AS_POSTGRES)
    if s.pooler:
        pooler_ops.auth_function(name="PgBouncer's password lookup function",
                                 port=s.pg_port, **AS_POSTGRES)
    for d in s.pg_databases:
        postgres.database(name=f"Database {d.name}", db=d, port=s.pg_port, **AS_POSTGRES)
        for ext in d.extensions:
            postgres.extension(name=f"Extension {ext} in {d.name}", database=d.name, extension_name=ext,
                               port=s.pg_port, **AS_POSTGRES)
