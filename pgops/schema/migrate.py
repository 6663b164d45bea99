"""The migration engine: numbered SQL files applied in order, each in its own transaction
with lock and statement timeouts, recorded in a history table with their sha256, serialised
by an advisory lock. Drifted, missing or out-of-order files are refused before anything runs.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from pgops import PROJECT_ROOT
from pgops.errors import MigrationError
from pgops.schema import LOCK_WAIT_S
from pgops.schema.sqlfile import Migration, Statement, line_of, load_dir

MIGRATIONS_DIR = PROJECT_ROOT / "sql" / "migrations"
LOCK_KEY = 0x7067_6F70_73  # "pgops"
HISTORY = "pgops.schema_history"


@dataclass
class Options:
    lock_timeout: str = "5s"
    statement_timeout: str = "5min"
    lock_wait: float = LOCK_WAIT_S  # seconds a second runner waits for the advisory lock


def _ddl_history(conn: psycopg.Connection) -> None:
    conn.execute("create schema if not exists pgops")
    conn.execute(f"""
        create table if not exists {HISTORY} (
            version     integer primary key,
            name        text not null,
            sha256      text not null,
            applied_at  timestamptz not null default now(),
            duration_ms integer not null,
            applied_by  text not null
        )""")
    # Any role may read which version a database is at (health checks run as the app role);
    # only the owner changes it.
    conn.execute("grant usage on schema pgops to public")
    conn.execute(f"grant select on {HISTORY} to public")


class Migrator:
    """Operate on one database (a libpq connection string) with one migrations directory."""

    def __init__(self, url: str, directory: Path = MIGRATIONS_DIR, options: Options | None = None,
                 say: Callable[[str], None] = lambda m: None):
        self.url = url
        self.directory = directory
        self.options = options or Options()
        self.say = say
        self.migrations = load_dir(directory)

    # -- reading -------------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                               application_name="pgops migrate")

    def _applied(self, conn: psycopg.Connection) -> dict[int, dict]:
        row = conn.execute("select to_regclass(%s) is not null", (HISTORY,)).fetchone()
        assert row is not None  # a select without from returns one row
        if not row[0]:
            return {}
        rows = conn.execute(f"select version, name, sha256, applied_at, duration_ms, applied_by "
                            f"from {HISTORY} order by version").fetchall()
        keys = ("version", "name", "sha256", "applied_at", "duration_ms", "applied_by")
        return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}

    def _problems(self, applied: dict[int, dict]) -> list[str]:
        files = {m.version: m for m in self.migrations}
        problems = []
        for v, row in applied.items():
            m = files.get(v)
            if m is None:
                problems.append(f"version {v} ({row['name']}) is applied but its file "
                                f"{v:04d}_{row['name']}.sql is missing from {self._rel()}")
            elif m.sha256 != row["sha256"]:
                problems.append(f"{self._rel(m.path)} changed after it was applied "
                                f"(sha256 {row['sha256'][:12]} on record, {m.sha256[:12]} on disk)")
        top = max(applied, default=0)
        for m in self.migrations:
            if m.version not in applied and m.version < top:
                problems.append(f"{self._rel(m.path)} is pending but version {top} is already "
                                f"applied (out of order): renumber it after {top}")
        return problems

    def _rel(self, p: Path | None = None) -> str:
        p = p or self.directory
        try:
            return str(p.resolve().relative_to(PROJECT_ROOT))
        except ValueError:
            return str(p)

    def status(self) -> dict:
        with self._connect() as conn:
            applied = self._applied(conn)
        files = {m.version: m for m in self.migrations}
        rows = [_status_row(v, files.get(v), applied.get(v)) for v in sorted(set(files) | set(applied))]
        return {"current": max(applied, default=0), "latest": max(files, default=0),
                "problems": self._problems(applied), "migrations": rows}

    def plan(self, to: int | None = None) -> list[Migration]:
        with self._connect() as conn:
            applied = self._applied(conn)
        self._refuse(applied)
        return self._pending(applied, to)

    def _pending(self, applied: dict, to: int | None) -> list[Migration]:
        if to is not None and to not in {m.version for m in self.migrations} | {0}:
            raise MigrationError(f"--to {to}: no migration with that version in {self._rel()}")
        return [m for m in self.migrations if m.version not in applied
                and (to is None or m.version <= to)]

    def _refuse(self, applied: dict) -> None:
        problems = self._problems(applied)
        if problems:
            raise MigrationError("refusing to migrate:\n" + "\n".join(f"  - {p}" for p in problems))

    # -- changing ------------------------------------------------------------------------
    def _lock(self, conn: psycopg.Connection) -> None:
        deadline = time.monotonic() + self.options.lock_wait
        announced = False
        while not self._try_lock(conn):
            if not announced:
                self.say("another migration run holds the lock; waiting")
                announced = True
            if time.monotonic() > deadline:
                holder = conn.execute(
                    "select a.pid, coalesce(a.client_addr::text, 'local'), a.application_name, "
                    "a.backend_start from pg_locks l join pg_stat_activity a using (pid) "
                    "where l.locktype = 'advisory' and l.granted "
                    "and (l.classid::bigint << 32 | l.objid::bigint) = %s", (LOCK_KEY,)).fetchone()
                who = (f"pid {holder[0]} from {holder[1]} ({holder[2] or 'unnamed'}, "
                       f"connected {holder[3]:%Y-%m-%d %H:%M:%S})") if holder else "another session"
                raise MigrationError(f"another migration run holds the lock ({who}); waited "
                                     f"{self.options.lock_wait:.0f} s, nothing was applied")
            time.sleep(0.2)

    @staticmethod
    def _try_lock(conn: psycopg.Connection) -> bool:
        row = conn.execute("select pg_try_advisory_lock(%s)", (LOCK_KEY,)).fetchone()
        assert row is not None  # a select without from returns one row
        return bool(row[0])

    def _run_statements(self, conn: psycopg.Connection, m: Migration, stmts: list[Statement]) -> None:
        for st in stmts:
            try:
                conn.execute(st.sql)
            except psycopg.Error as e:
                diag = e.diag
                pos = int(diag.statement_position) if diag.statement_position else None
                msg = (diag.message_primary or str(e)).strip()
                detail = f" ({diag.message_detail})" if diag.message_detail else ""
                raise MigrationError(
                    f"{self._rel(m.path)}:{line_of(st, pos)}: {msg}{detail}; "
                    f"migration {m.version} rolled back, nothing of it applied"
                    if m.transactional else
                    f"{self._rel(m.path)}:{line_of(st, pos)}: {msg}{detail}"
                ) from None

    def _runner(self, conn: psycopg.Connection) -> str:
        row = conn.execute("select current_user").fetchone()
        assert row is not None  # a select without from returns one row
        return f"{getpass.getuser()}@{socket.gethostname()} as {row[0]}"

    def _set_timeouts(self, conn: psycopg.Connection, local: bool) -> None:
        scope = "set local" if local else "set"
        conn.execute(sql.SQL(scope + " lock_timeout = {}").format(self.options.lock_timeout))
        conn.execute(sql.SQL(scope + " statement_timeout = {}").format(self.options.statement_timeout))

    def up(self, to: int | None = None) -> list[dict]:
        """Apply pending migrations (up to `to`). Returns what ran, with durations."""
        done = []
        with self._connect() as conn:
            self._lock(conn)
            try:
                _ddl_history(conn)
                applied = self._applied(conn)
                self._refuse(applied)
                by = self._runner(conn)
                for m in self._pending(applied, to):
                    self.say(f"applying {m.filename}")
                    t0 = time.monotonic()
                    self._run(conn, m, m.up_statements(), self._recorder(conn, m, t0, by))
                    ms = int((time.monotonic() - t0) * 1000)
                    done.append({"version": m.version, "name": m.name, "duration_ms": ms})
            finally:
                conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
        return done

    def _run(self, conn: psycopg.Connection, m: Migration, statements: list[Statement],
             then: Callable[[], object]) -> None:
        """One part of a migration and its history change (`then`): together in one
        transaction, or for a no-transaction file (CREATE/DROP INDEX CONCURRENTLY) its one
        statement on its own, then the history."""
        if m.transactional:
            with conn.transaction():
                self._set_timeouts(conn, local=True)
                self._run_statements(conn, m, statements)
                then()
        else:
            self._set_timeouts(conn, local=False)
            self._run_statements(conn, m, statements)
            then()

    @staticmethod
    def _recorder(conn: psycopg.Connection, m: Migration, t0: float, by: str) -> Callable[[], object]:
        """The history row of an applied migration, written when called."""
        return lambda: conn.execute(
            f"insert into {HISTORY} (version, name, sha256, duration_ms, applied_by) "
            f"values (%s, %s, %s, %s, %s)",
            (m.version, m.name, m.sha256, int((time.monotonic() - t0) * 1000), by))

    @staticmethod
    def _forgetter(conn: psycopg.Connection, m: Migration) -> Callable[[], object]:
        """The history row of a rolled-back migration, deleted when called."""
        return lambda: conn.execute(f"delete from {HISTORY} where version = %s", (m.version,))

    def down(self, to: int) -> list[dict]:
        """Roll back applied migrations above `to`, newest first, with their down parts.
        Refuses before touching anything if one of them has no down part."""
        done = []
        files = {m.version: m for m in self.migrations}
        with self._connect() as conn:
            self._lock(conn)
            try:
                applied = self._applied(conn)
                self._refuse(applied)
                if to != 0 and to not in applied:
                    raise MigrationError(f"--to {to}: that version is not applied")
                todo = [files[v] for v in sorted(applied, reverse=True) if v > to]
                lacking = [m.filename for m in todo if m.down is None]
                if lacking:
                    raise MigrationError(f"cannot roll back to {to}: no `-- pgops:down` part in "
                                         f"{', '.join(lacking)}; nothing was rolled back")
                for m in todo:
                    self.say(f"rolling back {m.filename}")
                    t0 = time.monotonic()
                    self._run(conn, m, m.down_statements(), self._forgetter(conn, m))
                    done.append({"version": m.version, "name": m.name,
                                 "duration_ms": int((time.monotonic() - t0) * 1000)})
            finally:
                conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
        return done

    def baseline(self, version: int) -> list[int]:
        """Mark an existing database as being at `version` without running anything."""
        with self._connect() as conn:
            self._lock(conn)
            try:
                _ddl_history(conn)
                if self._applied(conn):
                    raise MigrationError("baseline needs an empty history; this database has "
                                         "applied migrations (see `pgops migrate status`)")
                if version not in {m.version for m in self.migrations}:
                    raise MigrationError(f"baseline {version}: no migration with that version")
                by = self._runner(conn) + " (baseline)"
                marked = []
                with conn.transaction():
                    for m in self.migrations:
                        if m.version <= version:
                            conn.execute(f"insert into {HISTORY} (version, name, sha256, duration_ms, "
                                         f"applied_by) values (%s, %s, %s, 0, %s)",
                                         (m.version, m.name, m.sha256, by))
                            marked.append(m.version)
                return marked
            finally:
                conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))


def _status_row(version: int, m: Migration | None, a: dict | None) -> dict:
    """One version as `migrate status` shows it: its file (m), its history row (a), or both."""
    if a is None:
        state = "pending"
    elif m is None:
        state = "missing"
    else:
        state = "drifted" if a["sha256"] != m.sha256 else "applied"
    name = m.name if m is not None else a["name"] if a is not None else ""
    return {
        "version": version, "name": name, "state": state,
        "sha256": m.sha256 if m else None,
        "applied_sha256": a["sha256"] if a else None,
        "applied_at": a["applied_at"].isoformat() if a else None,
        "duration_ms": a["duration_ms"] if a else None,
        "applied_by": a["applied_by"] if a else None,
    }
