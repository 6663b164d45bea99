"""Logical backups of an inventory's database host, for developers and single-database
copies: `pg_dump -Fc` run on the host itself (its pg_dump matches the server), fetched into
backups/ and pruned to the newest KEEP; and loading a dump into a fresh database there.
Through a connection string instead: client.dump_dsn, which shares the file names and the
pruning (pyinfra is imported only for inventory hosts, so the dev image dumps without it)."""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import time
from pathlib import Path

from pgops import PROJECT_ROOT
from pgops.errors import DumpError
from pgops.server import psql
from pgops.server.cluster import bindir

BACKUPS_DIR = Path(os.environ.get("PGOPS_BACKUPS_DIR", PROJECT_ROOT / "backups"))
#: How many dumps of each host and database are kept (`pgops dump --keep`, the dump job).
KEEP = 7
NAME = re.compile(r"^(?P<host>[\w.-]+)__(?P<db>\w+)__(?P<ts>\d{8}T\d{6}Z)\.dump$")


def _db_host(state, settings, host_name: str | None):
    name = host_name or next(iter(settings))
    if name not in settings:
        raise DumpError(f"no database host {name!r} in the inventory")
    return state.inventory.get_host(name), settings[name]


def dump(inventory: Path, host_name: str | None = None, database: str | None = None,
         keep: int = KEEP, directory: Path = BACKUPS_DIR) -> dict:
    from pyinfra.context import ctx_host  # pyinfra only here: the dev image dumps by DSN

    from pgops.remote import connect, run

    state, settings = connect(inventory)
    h, s = _db_host(state, settings, host_name)
    db = database or s.pg_app_database or "postgres"
    ts = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    directory.mkdir(parents=True, exist_ok=True)
    local = directory / f"{h.name}__{db}__{ts}.dump"
    remote = f"/tmp/pgops-dump-{ts}.dump"
    t0 = time.monotonic()
    pg_dump = f"{bindir(s.pg_major)}/pg_dump"
    try:
        run(h, f"runuser -u postgres -- {pg_dump} -Fc -p {s.pg_port} -d {shlex.quote(db)} -f {remote}")
        with ctx_host.use(h):
            if not h.get_file(remote, str(local)):
                raise DumpError(f"{h.name}: could not fetch {remote}")
    finally:
        run(h, f"rm -f {remote}")
    removed = prune(directory, h.name, db, keep)
    return {"host": h.name, "database": db, "file": str(local), "bytes": local.stat().st_size,
            "seconds": round(time.monotonic() - t0, 2), "pruned": [str(p) for p in removed]}


def prune(directory: Path, host: str, db: str, keep: int) -> list[Path]:
    """Keep the newest `keep` dumps of this host and database; never the last one."""
    keep = max(keep, 1)
    mine = sorted((p for p in directory.glob("*.dump")
                   if (m := NAME.match(p.name)) and m["host"] == host and m["db"] == db),
                  key=lambda p: p.name)
    old = mine[:-keep]
    for p in old:
        p.unlink()
    return old


def load(inventory: Path, file: Path, host_name: str | None = None, into: str | None = None) -> dict:
    """Restore a dump into a new database (owned by the migration role); refuses an existing one."""
    from pyinfra.context import ctx_host  # pyinfra only here: the dev image dumps by DSN

    from pgops.remote import connect, run

    if not file.is_file():
        raise DumpError(f"{file}: no such dump file")
    state, settings = connect(inventory)
    h, s = _db_host(state, settings, host_name)
    m = NAME.match(file.name)
    into = into or f"{m['db'] if m else 'restored'}_{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}"
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", into):
        raise DumpError(f"--into {into!r}: use a plain lower-case database name")
    exists = run(h, psql.shell(f"select 1 from pg_database where datname = '{into}'", s.pg_port)).strip()
    if exists:
        raise DumpError(f"database {into} already exists on {h.name}: pgops loads only into a "
                          "new database (pick another --into)")
    remote = f"/tmp/pgops-load-{int(time.time())}.dump"
    t0 = time.monotonic()
    with ctx_host.use(h):
        if not h.put_file(str(file), remote):
            raise DumpError(f"{h.name}: could not upload {file}")
    try:
        run(h, f"chmod 644 {remote} && runuser -u postgres -- createdb -p {s.pg_port} "
               f"-O {s.pg_migration_role} {into} && runuser -u postgres -- {bindir(s.pg_major)}/pg_restore "
               f"-p {s.pg_port} -d {into} --exit-on-error --single-transaction {remote}")
    finally:
        run(h, f"rm -f {remote}")
    return {"host": h.name, "database": into, "file": str(file),
            "seconds": round(time.monotonic() - t0, 2)}
