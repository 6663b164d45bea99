"""The backed-up hosts of one connected inventory: which stanza lives on which repository
host, pgBackRest run there as its user, backups taken and listed with the recoverable window."""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from pyinfra.api import State
from pyinfra.api.host import Host
from pyinfra.context import ctx_host

from pgops import remote
from pgops.backup import backrest, rules
from pgops.errors import BackupError
from pgops.facts.postgres import PgArchiver
from pgops.server.psql import AS_POSTGRES
from pgops.settings import LOCAL_REPOSITORY, Settings


@dataclass
class Backups:
    """Which stanzas, on which repository hosts, from one connected inventory."""

    state: State
    settings: dict[str, Settings]
    stanzas: dict[str, str]  # db host -> repository host (or "local")

    def repo(self, db: str) -> Host:
        """The host pgbackrest runs on for db's stanza: its repository host, or itself."""
        return self.state.inventory.get_host(db if self.is_local(db) else self.stanzas[db])

    def is_local(self, db: str) -> bool:
        return self.stanzas[db] == LOCAL_REPOSITORY

    def repo_user(self, db: str) -> str:
        return "postgres" if self.is_local(db) else backrest.REPO_USER

    def db(self, name: str) -> Host:
        return self.state.inventory.get_host(name)

    def stanza(self, db: str) -> str:
        return backrest.stanza(db, self.settings[db])

    def label(self, db: str) -> str:
        """How output names db's stanza: the host, or the cluster it stands for."""
        st = self.stanza(db)
        return db if st == db else f"cluster {st}"

    def members(self, db: str) -> list[str]:
        """The database hosts of db's stanza: a cluster's members, else db alone."""
        return backrest.by_stanza(self.settings)[self.stanza(db)]

    def run_on_repo(self, db: str, command: str, timeout: int = 3600) -> str:
        """A command on db's repository host, as the repository's user."""
        return remote.run(self.repo(db), command, self.repo_user(db), timeout)


def backed_up(settings: dict[str, Settings]) -> dict[str, str]:
    """db host -> its pg_backup_host, for the hosts that have one: one host per stanza (a
    cluster is backed up once, as its first member names it; pgBackRest finds the primary)."""
    out: dict[str, str] = {}
    for members in backrest.by_stanza(settings).values():
        s = settings[members[0]]
        if s.pg_backup_host:
            out[members[0]] = s.pg_backup_host
    return out


def connect(inventory: Path, db_host: str | None = None, require_all: bool = True) -> Backups:
    """Connect and pick the stanzas. require_all=False (restore) lets a dead database host
    stay unconnected: its backups are still in the repository."""
    state, settings = remote.connect(inventory, require_all=require_all)
    stanzas = backed_up(settings)
    if db_host:
        if db_host not in settings:
            raise BackupError(f"no database host {db_host!r} in {inventory}")
        # A cluster member stands for its cluster's stanza.
        db_host = backrest.by_stanza(settings)[backrest.stanza(db_host, settings[db_host])][0]
        if db_host not in stanzas:
            raise BackupError(f"{db_host} has no pg_backup_host: it is not backed up")
        stanzas = {db_host: stanzas[db_host]}
    if not stanzas:
        raise BackupError(f"no database host in {inventory} has pg_backup_host set")
    return Backups(state, settings, stanzas)


def pgbackrest(backups: Backups, db: str, args: str, timeout: int = 3600) -> str:
    return backups.run_on_repo(db, backrest.command(backups.stanza(db), args), timeout)


def take(backups: Backups, db: str, kind: str = "full") -> dict:
    if kind not in rules.BACKUP_TYPES:
        raise BackupError(f"--type {kind}: use one of {', '.join(rules.BACKUP_TYPES)}")
    t0 = time.monotonic()
    pgbackrest(backups, db, f"--type={kind} backup")
    seconds = time.monotonic() - t0
    latest = info(backups, db)["backups"][-1]
    return {"host": db, "repository": backups.stanzas[db], "type": latest["type"],
            "label": latest["label"], "seconds": round(seconds, 2), "size": latest["size"],
            "delta": latest["delta"], "repo_size": latest["repo_size"]}


def _backup_row(entry: dict) -> dict:
    """One backup of pgBackRest's `info` JSON, flattened."""
    archive = entry.get("archive") or {}
    return {"label": entry["label"], "type": entry["type"],
            "start": entry["timestamp"]["start"], "stop": entry["timestamp"]["stop"],
            "size": entry["info"]["size"], "delta": entry["info"]["delta"],
            "repo_size": entry["info"]["repository"]["delta"],
            "wal_start": archive.get("start"), "wal_stop": archive.get("stop"),
            "error": entry.get("error", False)}


ARCHIVER_KEYS = ("archived_count", "failed_count", "last_archived_wal", "last_archived_time",
                 "last_archived_age_s", "last_failed_time", "current_wal_bytes", "wal_segment_bytes",
                 "archive_timeout_s", "oldest_ready_age_s")


def primary(backups: Backups, db: str) -> tuple[str | None, dict]:
    """(the primary of db's stanza, its pg_stat_archiver): a cluster's current leader, or
    db itself; (None, {}) when no member answers as a primary. Only a primary archives."""
    for name in backups.members(db):
        h = backups.db(name)
        if not h.connected:
            continue
        with ctx_host.use(h):
            arch = h.get_fact(PgArchiver, port=backups.settings[name].pg_port, **AS_POSTGRES)
        if arch and not arch.get("in_recovery"):
            return name, arch
    return None, {}


def archiver(backups: Backups, db: str) -> dict:
    """pg_stat_archiver of the primary of db's stanza ({} when none answers)."""
    return primary(backups, db)[1]


def info(backups: Backups, db: str) -> dict:
    """Backups of one stanza and the recoverable window.

    The earliest time a restore can reach is the oldest backup's end; the latest is the
    last WAL the primary archived (pg_stat_archiver), when it archives after that backup.
    """
    raw = json.loads(pgbackrest(backups, db, "--output=json info", timeout=120))
    st = raw[0] if raw else {}
    rows = [_backup_row(x) for x in st.get("backup", [])]
    arch = archiver(backups, db)
    # No primary answers: the repository says when the newest WAL arrived.
    last = arch.get("last_archived_epoch") if arch else newest_wal_time(backups, db)
    earliest = min((x["stop"] for x in rows if not x["error"]), default=None)
    latest = max(float(last), earliest) if (last and earliest) else earliest
    return {
        "host": db, "stanza": backups.stanza(db), "repository": backups.stanzas[db],
        "status": (st.get("status") or {}).get("message"),
        "backups": rows,
        "window": {"earliest": earliest, "latest": latest},
        "archiver": {k: arch.get(k) for k in ARCHIVER_KEYS},
    }


def newest_wal_time(backups: Backups, db: str) -> float | None:
    """When the newest WAL segment of db reached the repository."""
    def ls(path: str) -> dict:
        return json.loads(pgbackrest(backups, db, f"--output=json repo-ls {shlex.quote(path)}", timeout=120))

    return rules.newest_wal_time(ls, backups.stanza(db))
