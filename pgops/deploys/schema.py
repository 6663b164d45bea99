"""The application database's schema: versioned migrations from sql/migrations/."""

from __future__ import annotations

from pyinfra.api import deploy

from pgops.operations import schema
from pgops.settings import Settings


@deploy("Application schema")
def app_schema(s: Settings, address: str) -> None:
    """+ address: where this machine reaches the host (its ssh_hostname, else its name)."""
    if not s.pg_app_database:
        return
    schema.migrated(name=f"Migrations applied to {s.pg_app_database}", settings=s, address=address)
