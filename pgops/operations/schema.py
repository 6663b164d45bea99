"""The application schema as a deploy step: pending migrations are applied (from this
machine, over TLS as the migration role); none pending is a no-op."""

from __future__ import annotations

from typing import Any

import psycopg
from pyinfra import host, logger
from pyinfra.api import FunctionCommand, Host, OperationError, State, operation

from pgops.errors import PgopsError
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
    where = (f"{settings.pg_app_database} at {address}:{settings.pg_port} as "
             f"{settings.pg_migration_role}")
    try:
        pending = Migrator(url, MIGRATIONS_DIR).plan()
    except psycopg.OperationalError as e:
        raise OperationError(
            f"{host.name}: cannot read the schema history of {where}: {str(e).strip()}"
        ) from None
    if not pending:
        host.noop(f"schema of {settings.pg_app_database} is at the latest version")
        return
    names = ", ".join(m.filename for m in pending)
    logger.info(f"{host.print_prefix}migrations to apply: {names}")
    yield FunctionCommand(_apply, (url, where), {})


def _apply(state: State, host: Host, url: str, where: str) -> bool:
    """Apply them; a failure (the connection lost, a migration's error) fails the operation
    with one line naming the host, database and file, not pyinfra's traceback."""
    try:
        Migrator(url, MIGRATIONS_DIR).up()
    except (psycopg.Error, PgopsError) as e:
        host.log_styled(f"applying migrations to {where} failed: {str(e).strip()}",
                        fg="red", log_func=logger.error)
        return False
    return True
