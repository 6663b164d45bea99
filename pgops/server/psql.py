"""The one way pgops builds a psql command line: quiet, unaligned, tuples only, no psqlrc,
stopping on the first error. Callers choose how it runs (pyinfra's sudo, or runuser);
operations wrap the same options in a pyinfra StringCommand (operations.postgres)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from pgops.shell import wait_until

#: pyinfra arguments for commands and facts run as the postgres user (peer authentication).
AS_POSTGRES: dict[str, Any] = {"_sudo": True, "_sudo_user": "postgres"}


def options(port: int) -> list[str]:
    return ["psql", "-XAtq", "-v", "ON_ERROR_STOP=1", "-p", str(int(port))]


def argv(sql: str | Sequence[str], port: int, database: str = "postgres") -> list[str]:
    """psql running `sql`; a sequence of statements runs one `-c` each, each in its own
    transaction."""
    statements = [sql] if isinstance(sql, str) else sql
    return [*options(port), "-d", database, *(arg for s in statements for arg in ("-c", s))]


def shell(sql: str | Sequence[str], port: int, database: str = "postgres",
          as_postgres: bool = True) -> str:
    """A shell command line; as_postgres runs it as the postgres user (peer authentication)."""
    prefix = "runuser -u postgres -- " if as_postgres else ""
    return prefix + shlex.join(argv(sql, port, database))


def wait_writable_command(port: int, seconds: int, alive: str = "") -> str:
    """A shell command (as root) waiting until the local Postgres has left recovery, polling
    every 0.1 s for at most `seconds` of wall-clock time (counted rounds ran long: each poll
    starts psql). Patroni answers /primary as soon as it holds the leader key, while the
    promotion may still be fetching WAL and history files: writes sent then fail as
    read-only. A restore waits on its copy's promotion the same way.
    alive: a shell test that fails once the server has stopped (a recovery that failed): the
    wait ends then, not at its limit."""
    check = shell("select pg_is_in_recovery()", port)
    gone = (f"if ! {alive} >/dev/null 2>&1; then echo 'Postgres stopped before it left recovery' "
            ">&2; exit 1; fi; " if alive else "")
    return wait_until(f"[ \"$({check} 2>/dev/null)\" = f ]", seconds, 0.1,
                      f"Postgres still in recovery after {seconds} s", each=gone)
