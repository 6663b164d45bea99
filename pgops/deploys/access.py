"""Roles, databases and extensions, as the config says (never dropped)."""

from __future__ import annotations

from pyinfra.api import deploy

from pgops.operations import postgres
from pgops.server.psql import AS_POSTGRES
from pgops.settings import Settings


@deploy("Roles, databases and extensions")
def postgres_access(s: Settings) -> None:
    for r in s.pg_roles:
        password = s.password(r) if (r.login and r.password) else None
        postgres.role(name=f"Role {r.name}", role=r, password=password, port=s.pg_port,
                      **AS_POSTGRES)
    for d in s.pg_databases:
        postgres.database(name=f"Database {d.name}", db=d, port=s.pg_port, **AS_POSTGRES)
        for ext in d.extensions:
            postgres.extension(name=f"Extension {ext} in {d.name}", database=d.name, extension_name=ext,
                               port=s.pg_port, **AS_POSTGRES)
