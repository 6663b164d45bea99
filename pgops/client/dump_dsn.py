"""Logical dumps through a connection string (-d, DATABASE_URL, PG*) instead of an inventory
host: pg_dump and pg_restore run here, so they must be at least the server's major version
(pg_dump refuses a newer server; an older pg_restore cannot read a newer dump). The dev image
has PostgreSQL 17's, so `docker-compose -f docker-compose.dev.yml exec backup pgops ...`
always matches the dev database."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from pgops.client.dump import BACKUPS_DIR, KEEP, NAME, prune
from pgops.client.targets import Target
from pgops.errors import DumpError
from pgops.server.cluster import PG_LIB

COMPOSE = "docker-compose -f docker-compose.dev.yml exec backup pgops"


@dataclass(frozen=True)
class Server:
    host: str  # as it goes into a dump's file name
    database: str
    major: int
    user: str


def _probe(conn: psycopg.Connection) -> Server:
    host = conn.info.host
    host = "local" if host.startswith("/") else re.sub(r"[^\w.-]", "-", host)
    return Server(host, conn.info.dbname, conn.info.server_version // 10000, conn.info.user)


def _version(binary: str) -> int | None:
    r = subprocess.run([binary, "--version"], capture_output=True, text=True)
    m = re.search(r"\(PostgreSQL\) (\d+)", r.stdout)
    return int(m[1]) if r.returncode == 0 and m else None


def client(tool: str, server_major: int, fix: str, root: Path = Path(PG_LIB)) -> str:
    """A `tool` (pg_dump, pg_restore) of at least the server's major version: Debian's
    /usr/lib/postgresql/N/bin first (the server's own major preferred), then PATH."""
    found: dict[int, str] = {}
    for path in root.glob(f"*/bin/{tool}"):
        if path.parent.parent.name.isdigit():
            found[int(path.parent.parent.name)] = str(path)
    on_path = shutil.which(tool)
    if on_path and (v := _version(on_path)) is not None:
        found.setdefault(v, on_path)
    if server_major in found:
        return found[server_major]
    newer = [v for v in found if v > server_major]
    if newer:
        return found[max(newer)]
    have = ", ".join(str(v) for v in sorted(found)) or "none"
    raise DumpError(f"{tool} {server_major} or newer is needed for a PostgreSQL {server_major} server "
                    f"(here: {have}): install postgresql-client-{server_major}, or run it where one is, "
                    f"e.g. the dev stack: {fix}")


def _env(target: Target) -> tuple[str, dict[str, str]]:
    """Conninfo without the password (it may show in `ps`), and an environment with it."""
    conninfo, password = target.without_password() if target.url else ("", None)
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    return conninfo, env


def dump(target: Target, database: str | None = None, keep: int = KEEP,
         directory: Path = BACKUPS_DIR) -> dict:
    """pg_dump -Fc of the target's database (or `database` on the same server) into
    `directory` as <host>__<db>__<UTC time>.dump, keeping the newest `keep` of that host and
    database. A failed or interrupted dump leaves no .dump file behind."""
    kw: dict[str, Any] = {"dbname": database} if database else {}
    with psycopg.connect(target.url, connect_timeout=10, **kw) as conn:
        s = _probe(conn)
    pg_dump = client("pg_dump", s.major, f"{COMPOSE} dump")
    conninfo, env = _env(target)
    if database:
        conninfo = psycopg.conninfo.make_conninfo(conninfo, dbname=database)
    ts = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{s.host}__{s.database}__{ts}.dump"
    partial = directory / f".{final.name}.partial"
    t0 = time.monotonic()
    cmd = [pg_dump, "-Fc", "-f", str(partial)] + (["-d", conninfo] if conninfo else [])
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        partial.unlink(missing_ok=True)
        raise DumpError(f"pg_dump of {s.database} on {target.label} failed: {r.stderr.strip()[-2000:]}")
    partial.replace(final)
    removed = prune(directory, s.host, s.database, keep)
    return {"host": s.host, "database": s.database, "file": str(final),
            "bytes": final.stat().st_size, "seconds": round(time.monotonic() - t0, 2),
            "pruned": [str(p) for p in removed]}


def load(target: Target, file: Path, into: str | None = None) -> dict:
    """Restore a dump into a new database on the target's server, in one transaction. The new
    database is owned by the owner of the database the dump came from when that one is on
    this server (e.g. migrator for app), else by the connecting role. Refuses an existing
    database; drops the new one again when the restore fails."""
    if not file.is_file():
        raise DumpError(f"{file}: no such dump file")
    m = NAME.match(file.name)
    into = into or f"{m['db'] if m else 'restored'}_{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", into):
        raise DumpError(f"--into {into!r}: use a plain lower-case database name")
    t0 = time.monotonic()
    with psycopg.connect(target.url, connect_timeout=10, autocommit=True) as conn:
        s = _probe(conn)
        pg_restore = client("pg_restore", s.major, f"{COMPOSE} load /backups/{file.name}")
        if conn.execute("select 1 from pg_database where datname = %s", (into,)).fetchone():
            raise DumpError(f"database {into} already exists on {s.host}: pgops loads only into a "
                            "new database (pick another --into)")
        row = conn.execute("select pg_get_userbyid(datdba) from pg_database where datname = %s",
                           (m["db"] if m else None,)).fetchone()
        owner = row[0] if row else s.user
        conn.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(into),
                                                                   sql.Identifier(owner)))
    conninfo, env = _env(target)
    r = subprocess.run([pg_restore, "--exit-on-error", "--single-transaction",
                        "-d", psycopg.conninfo.make_conninfo(conninfo, dbname=into), str(file)],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        with psycopg.connect(target.url, connect_timeout=10, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(into)))
        raise DumpError(f"pg_restore of {file} into {into} failed (nothing kept): "
                        f"{r.stderr.strip()[-2000:]}")
    return {"host": s.host, "database": into, "owner": owner, "file": str(file),
            "seconds": round(time.monotonic() - t0, 2)}
