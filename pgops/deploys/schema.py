"""The application database's schema: versioned migrations from sql/migrations/."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from pgops.operations import schema
from pgops.settings import Settings


@deploy("Application schema")
def app_schema(s: Settings) -> None:
    if not s.pg_app_database:
        return
    schema.migrated(name=f"Migrations applied to {s.pg_app_database}", settings=s,
                    address=host.data.get("ssh_hostname") or host.name)
