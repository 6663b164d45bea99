"""The application schema as a deploy step: pending migrations are applied (from this
machine, over TLS as the migration role); none pending is a no-op."""

from __future__ import annotations

from typing import Any

import psycopg
from pyinfra import host, logger
from pyinfra.api import FunctionCommand, OperationError, operation

from pgops.schema.migrate import MIGRATIONS_DIR, Migrator
from pgops.settings import Settings


def _url(s: Settings, address: str) -> str:
    role = s.role(s.pg_migration_role)
    params: dict[str, Any] = {"host": address, "port": s.pg_port, "dbname": s.pg_app_database,
                              "user": role.name, **s.client_tls,
                              "application_name": "pgops deploy"}
    if role.login and role.password:
        params["password"] = s.password(role)
    return psycopg.conninfo.make_conninfo(**params)


@operation()
def migrated(settings: Settings, address: str):
    """Apply pending migrations from sql/migrations/ to the application database.

    + settings: the host's settings (pg_app_database, pg_migration_role and its secret)
    + address: where this machine reaches the host's Postgres

    Drifted or out-of-order files fail the deploy; nothing is rolled back or dropped here.
    """
    url = _url(settings, address)
    try:
        pending = Migrator(url, MIGRATIONS_DIR).plan()
    except psycopg.OperationalError as e:
        raise OperationError(
            f"{host.name}: cannot read the schema history of {settings.pg_app_database} at "
            f"{address}:{settings.pg_port} as {settings.pg_migration_role}: "
            f"{str(e).strip()}") from None
    if not pending:
        host.noop(f"schema of {settings.pg_app_database} is at the latest version")
        return
    names = ", ".join(m.filename for m in pending)
    logger.info(f"{host.print_prefix}migrations to apply: {names}")
    yield FunctionCommand(_apply, (url,), {})


def _apply(url: str) -> None:
    Migrator(url, MIGRATIONS_DIR).up()
