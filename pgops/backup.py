"""Backups with pgBackRest, run where they belong (on the repository host, as its user):
take one, and list every backup with the recoverable window."""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from pyinfra.context import ctx_host

from pgops import backrest
from pgops.config import LOCAL_REPOSITORY
from pgops.errors import PgopsError
from pgops.facts.postgres import PgArchiver
from pgops.operations.postgres import AS_POSTGRES
from pgops.status import connect

BACKUP_TYPES = ("full", "diff", "incr")


class BackupError(PgopsError):
    pass


@dataclass
class Plan:
    """Which stanzas, on which repository hosts, from one connected inventory."""

    state: object
    settings: dict
    stanzas: dict[str, str]  # db host -> repository host

    def repo(self, db: str):
        """The host pgbackrest runs on for db's stanza: its repository host, or itself."""
        return self.state.inventory.get_host(db if self.is_local(db) else self.stanzas[db])

    def is_local(self, db: str) -> bool:
        return self.stanzas[db] == LOCAL_REPOSITORY

    def repo_user(self, db: str) -> str:
        return "postgres" if self.is_local(db) else backrest.REPO_USER

    def db(self, name: str):
        return self.state.inventory.get_host(name)


def plan(inventory: Path, db_host: str | None = None, require_all: bool = True) -> Plan:
    """Connect and pick the stanzas. require_all=False (restore) lets a dead database host
    stay unconnected: its backups are still in the repository."""
    state, settings = connect(inventory, require_all=require_all)
    stanzas = {n: s.pg_backup_host for n, s in settings.items() if s.pg_backup_host}
    if db_host:
        if db_host not in settings:
            raise BackupError(f"no database host {db_host!r} in {inventory}")
        if db_host not in stanzas:
            raise BackupError(f"{db_host} has no pg_backup_host: it is not backed up")
        stanzas = {db_host: stanzas[db_host]}
    if not stanzas:
        raise BackupError(f"no database host in {inventory} has pg_backup_host set")
    return Plan(state, settings, stanzas)


def run(host, command: str, user: str | None = None, timeout: int = 3600) -> str:
    """Run a command on a host over pyinfra's connection; raise with its stderr on failure."""
    kw = {"_sudo": True, "_sudo_user": user} if user else {}
    with ctx_host.use(host):
        ok, out = host.run_shell_command(f"cd / && {command}", _timeout=timeout, **kw)
    if not ok:
        detail = (out.stderr.strip() or out.stdout.strip())[-2000:]
        raise BackupError(f"{host.name}: `{command}` failed: {detail}")
    return out.stdout


def pgbackrest(p: Plan, db: str, args: str, timeout: int = 3600) -> str:
    return run(p.repo(db), f"pgbackrest --stanza={shlex.quote(backrest.stanza(db))} {args}",
               p.repo_user(db), timeout)


def take(p: Plan, db: str, kind: str = "full") -> dict:
    if kind not in BACKUP_TYPES:
        raise BackupError(f"--type {kind}: use one of {', '.join(BACKUP_TYPES)}")
    t0 = time.monotonic()
    pgbackrest(p, db, f"--type={kind} backup")
    seconds = time.monotonic() - t0
    latest = info(p, db)["backups"][-1]
    return {"host": db, "repository": p.stanzas[db], "type": latest["type"],
            "label": latest["label"], "seconds": round(seconds, 2), "size": latest["size"],
            "delta": latest["delta"], "repo_size": latest["repo_size"]}


def info(p: Plan, db: str) -> dict:
    """Backups of one stanza and the recoverable window.

    The earliest time a restore can reach is the oldest backup's end; the latest is the
    last WAL the primary archived (pg_stat_archiver), when it archives after that backup.
    """
    raw = json.loads(pgbackrest(p, db, "--output=json info", timeout=120))
    st = raw[0] if raw else {}
    backups = []
    for b in st.get("backup", []):
        backups.append({
            "label": b["label"], "type": b["type"],
            "start": b["timestamp"]["start"], "stop": b["timestamp"]["stop"],
            "size": b["info"]["size"], "delta": b["info"]["delta"],
            "repo_size": b["info"]["repository"]["delta"],
            "wal_start": (b.get("archive") or {}).get("start"),
            "wal_stop": (b.get("archive") or {}).get("stop"),
            "error": b.get("error", False),
        })
    s = p.settings[db]
    if p.db(db).connected:
        with ctx_host.use(p.db(db)):
            archiver = p.db(db).get_fact(PgArchiver, port=s.pg_port, **AS_POSTGRES) or {}
        last = archiver.get("last_archived_epoch")
    else:  # the database host is down: the repository says when its newest WAL arrived
        archiver, last = {}, newest_wal_time(p, db)
    earliest = min((b["stop"] for b in backups if not b["error"]), default=None)
    latest = max(float(last), earliest) if (last and earliest) else earliest
    return {
        "host": db, "stanza": backrest.stanza(db), "repository": p.stanzas[db],
        "status": (st.get("status") or {}).get("message"),
        "backups": backups,
        "window": {"earliest": earliest, "latest": latest},
        "archiver": {k: archiver.get(k) for k in ("archived_count", "failed_count",
                                                  "last_archived_wal", "last_archived_time",
                                                  "last_archived_age_s", "last_failed_time",
                                                  "current_wal_bytes", "wal_segment_bytes")},
    }


def _ls(p: Plan, db: str, path: str) -> dict:
    return json.loads(pgbackrest(p, db, f"--output=json repo-ls {shlex.quote(path)}", timeout=120))


def newest_wal_time(p: Plan, db: str) -> float | None:
    """When the newest WAL segment of db reached the repository (posix or S3 alike): the
    newest archive id, its newest directory, the newest file there."""
    base = f"archive/{backrest.stanza(db)}"
    ids = [k for k, v in _ls(p, db, base).items() if v["type"] == "path" and k != "."]
    if not ids:
        return None
    newest = max(ids, key=lambda i: int(i.rsplit("-", 1)[1]))
    dirs = [k for k, v in _ls(p, db, f"{base}/{newest}").items() if v["type"] == "path" and k != "."]
    if not dirs:
        return None
    files = _ls(p, db, f"{base}/{newest}/{max(dirs)}").values()
    return max((float(f["time"]) for f in files if f["type"] == "file"), default=None)


def unarchived_bytes(archiver: dict) -> int | None:
    """WAL written after the end of the last archived segment (None if unknown)."""
    name, current = archiver.get("last_archived_wal"), archiver.get("current_wal_bytes")
    seg_bytes = archiver.get("wal_segment_bytes")
    if not (name and current is not None and seg_bytes) or len(name) < 24 or "." in name:
        return None
    per_log = 0x100000000 // int(seg_bytes)
    seg_no = int(name[8:16], 16) * per_log + int(name[16:24], 16)
    return max(int(current) - (seg_no + 1) * int(seg_bytes), 0)


def rpo_estimate(archiver: dict) -> float | None:
    """Seconds of committed work that could be lost now. An idle database writes nothing
    worth archiving (PostgreSQL skips archive_timeout switches for idle WAL), so when no more
    than a page of WAL is waiting, nothing is at risk: 0, however old the last archive is."""
    pending = unarchived_bytes(archiver)
    if pending is not None and pending <= 8192:
        return 0.0
    age = archiver.get("last_archived_age_s")
    return None if age is None else float(age)


def health(p: Plan, db: str, max_full_age_h: float = 8 * 24, max_backup_age_h: float = 26,
           max_rpo_s: float = 600) -> dict:
    """Backup health of one database host, with the alerts that make `pgops status` fail."""
    from pgops import drill

    st = info(p, db)
    now = time.time()
    ages = {}
    for kind in BACKUP_TYPES:
        stops = [b["stop"] for b in st["backups"] if b["type"] == kind and not b["error"]]
        ages[kind] = round(now - max(stops), 1) if stops else None
    newest = min((a for a in ages.values() if a is not None), default=None)
    arch = st["archiver"]
    rpo = rpo_estimate(arch)
    age = arch.get("last_archived_age_s")
    age = None if age is None else round(float(age), 1)
    last_drill = drill.last(p, db)
    alerts = []
    if ages["full"] is None or ages["full"] > max_full_age_h * 3600:
        alerts.append(f"no full backup within {max_full_age_h:.0f} h")
    if newest is None or newest > max_backup_age_h * 3600:
        alerts.append(f"no backup within {max_backup_age_h:.0f} h")
    if rpo is None or float(rpo) > max_rpo_s:
        alerts.append(f"WAL waits to be archived: last archived {age} s ago (> {max_rpo_s:.0f} s)")
    failed_after = arch.get("last_failed_time") and (
        not arch.get("last_archived_time") or arch["last_failed_time"] > arch["last_archived_time"])
    if failed_after:
        alerts.append("WAL archiving is failing (pg_stat_archiver.last_failed_time is the newest)")
    if last_drill and not last_drill.get("ok"):
        alerts.append("the last restore drill failed")
    return {
        "backup_age_s": ages,
        "archiver_failed_count": arch.get("failed_count"),
        "last_archived_age_s": age,
        "unarchived_wal_bytes": unarchived_bytes(arch),
        "rpo_estimate_s": None if rpo is None else round(float(rpo), 1),
        "repo_size_bytes": sum(b["repo_size"] for b in st["backups"]),
        "window": st["window"],
        "last_drill": last_drill and {k: last_drill.get(k) for k in ("at", "ok", "rto_s", "target_time")},
        "alerts": alerts,
    }


def prometheus(rows: list[dict]) -> str:
    """Prometheus textfile-collector metrics for the rows of `pgops status`."""
    out = ["# HELP pgops_up 1 if the server answered.", "# TYPE pgops_up gauge"]
    for r in rows:
        out.append(f'pgops_up{{host="{r["host"]}"}} {1 if r["up"] else 0}')
    metrics = [("pgops_backup_age_seconds", "Age of the newest backup of a type."),
               ("pgops_wal_last_archived_age_seconds", "Seconds since the last WAL was archived."),
               ("pgops_rpo_estimate_seconds", "Seconds of work at risk (0: no WAL waiting)."),
               ("pgops_wal_archive_failed_total", "pg_stat_archiver.failed_count."),
               ("pgops_repo_size_bytes", "Repository bytes of this host's backups."),
               ("pgops_alerts", "Number of backup alerts.")]
    for name, help_ in metrics:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        for r in rows:
            b = r.get("backup")
            if not b:
                continue
            h = r["host"]
            if name == "pgops_backup_age_seconds":
                out += [f'{name}{{host="{h}",type="{k}"}} {v}' for k, v in b["backup_age_s"].items()
                        if v is not None]
            elif name == "pgops_wal_last_archived_age_seconds" and b["last_archived_age_s"] is not None:
                out.append(f'{name}{{host="{h}"}} {b["last_archived_age_s"]}')
            elif name == "pgops_rpo_estimate_seconds" and b["rpo_estimate_s"] is not None:
                out.append(f'{name}{{host="{h}"}} {b["rpo_estimate_s"]}')
            elif name == "pgops_wal_archive_failed_total":
                out.append(f'{name}{{host="{h}"}} {b["archiver_failed_count"] or 0}')
            elif name == "pgops_repo_size_bytes":
                out.append(f'{name}{{host="{h}"}} {b["repo_size_bytes"]}')
            elif name == "pgops_alerts":
                out.append(f'{name}{{host="{h}"}} {len(b["alerts"])}')
    return "\n".join(out) + "\n"
