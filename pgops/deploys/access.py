"""Roles, databases and extensions, as the config says (never dropped); on a cluster, run
on its leader only (replicas follow)."""

from __future__ import annotations

from pyinfra.api import deploy

from pgops.ha.patroni import REWIND_FUNCTIONS
from pgops.operations import pooler as pooler_ops
from pgops.operations import postgres
from pgops.server.psql import AS_POSTGRES
from pgops.settings import Settings
from pgops.settings.ha import REWINDER


@deploy("Roles, databases and extensions")
def postgres_access(s: Settings) -> None:
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
