"""The schema step of a deploy when the database cannot be reached: one error naming the
host, database, address and role (before: pyinfra's "internal exception" and a traceback)."""

from __future__ import annotations

import socket

import pytest
from pyinfra.api import OperationError

from pgops.operations.schema import migrated
from pgops.settings import Settings
from tests.operations.harness import make_host, run_operation


def test_a_schema_check_that_cannot_connect_names_host_database_address_and_role():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(pg_port=port, pg_roles=[{"name": "migrator"}], pg_app_database="app",
                        pg_databases=[{"name": "app", "owner": "migrator"}],
                        secrets={"PGOPS_ROLE_MIGRATOR_PASSWORD": "pw"})
    with pytest.raises(OperationError) as e:
        run_operation(migrated, make_host({"host": "db7"}), (settings, "127.0.0.1"))
    text = str(e.value)
    assert text.startswith(f"db7: cannot read the schema history of app at 127.0.0.1:{port} as "
                           f"{settings.pg_migration_role}: connection failed")
    assert "Traceback" not in text


def test_migrations_whose_connection_fails_at_apply_fail_the_operation_in_one_line():
    """The apply step runs later than the check: the server may be gone by then."""
    from types import SimpleNamespace

    from pgops.operations.schema import _apply

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    said: list[str] = []
    host = SimpleNamespace(log_styled=lambda text, **_: said.append(text))
    ok = _apply(None, host, f"host=127.0.0.1 port={port} dbname=app user=migrator "  # type: ignore[arg-type]
                f"password=pw connect_timeout=2", "app at 127.0.0.1 as migrator")
    assert ok is False
    assert len(said) == 1 and said[0].startswith(
        "applying migrations to app at 127.0.0.1 as migrator failed: connection failed"), said
    assert "pw" not in said[0]
