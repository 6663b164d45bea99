"""What "healthy" means for a database host's backups, in one place: thresholds, backup ages,
RPO, the newest archived WAL, the limits recovery needs, and the drill record.

Standard library only: `pgops status` imports it, and `pgops deploy` installs it beside the
repository host's job runner (repo_job.py), which imports it instead of keeping a copy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

BACKUP_TYPES = ("full", "diff", "incr")
#: The scheduled jobs on a repository host (systemd timers) and in `pgops schedule run`.
JOBS = (*BACKUP_TYPES, "drill", "status")

#: The repository host's pgBackRest home: repository, drill records, the jobs' lock.
REPO_HOME = "/var/lib/pgbackrest"
DRILL_DIR = f"{REPO_HOME}/pgops-drills"


def drill_log(stanza: str) -> str:
    """Where the drills of a stanza are recorded (one JSON line each), beside its backups."""
    return f"{DRILL_DIR}/{stanza}.jsonl"


@dataclass(frozen=True)
class Thresholds:
    """Past these a host's backups alert (`pgops status` exits 1; the status timer fails)."""

    max_full_age_h: float = 8 * 24.0
    max_backup_age_h: float = 26.0
    #: Seconds of committed work that may wait to be archived.
    max_rpo_s: float = 600.0
    #: The repository host, which sees no pg_stat_archiver: seconds without a newly archived
    #: WAL segment before it proves archiving with `pgbackrest check` (an alert if that fails).
    max_wal_age_s: int = 3600

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Thresholds:
        """PGOPS_MAX_FULL_AGE_H, PGOPS_MAX_BACKUP_AGE_H, PGOPS_MAX_RPO_S and
        PGOPS_MAX_WAL_AGE_S over the defaults."""
        d = cls()
        return cls(float(environ.get("PGOPS_MAX_FULL_AGE_H", d.max_full_age_h)),
                   float(environ.get("PGOPS_MAX_BACKUP_AGE_H", d.max_backup_age_h)),
                   float(environ.get("PGOPS_MAX_RPO_S", d.max_rpo_s)),
                   int(environ.get("PGOPS_MAX_WAL_AGE_S", d.max_wal_age_s)))


def backup_ages(backups: Iterable[Mapping], now: float) -> dict[str, float | None]:
    """Seconds since the newest good backup of each type ended (None: none), from pgBackRest
    info's `backup` list (`timestamp.stop`) or pgops's flattened rows (`stop`)."""
    ages: dict[str, float | None] = {}
    for kind in BACKUP_TYPES:
        stops = [entry["stop"] if "stop" in entry else entry["timestamp"]["stop"] for entry in backups
                 if entry["type"] == kind and not entry.get("error")]
        ages[kind] = round(now - max(stops), 1) if stops else None
    return ages


def unarchived_bytes(archiver: Mapping) -> int | None:
    """WAL written after the end of the last archived segment (None if unknown)."""
    name, current = archiver.get("last_archived_wal"), archiver.get("current_wal_bytes")
    seg_bytes = archiver.get("wal_segment_bytes")
    if not (name and current is not None and seg_bytes) or len(name) < 24 or "." in name:
        return None
    per_log = 0x100000000 // int(seg_bytes)
    seg_no = int(name[8:16], 16) * per_log + int(name[16:24], 16)
    return max(int(current) - (seg_no + 1) * int(seg_bytes), 0)


def rpo_estimate(archiver: Mapping) -> float | None:
    """Seconds of committed work that could be lost now, at most (None: unknown).

    An idle database writes nothing worth archiving (PostgreSQL skips archive_timeout
    switches for idle WAL), so with no more than a page of WAL waiting nothing is at risk.
    Otherwise the time since the last archive overstates it after an idle spell (a write a
    second ago, the last archive an hour ago). PostgreSQL closes a segment within
    archive_timeout of its first important write, so the oldest waiting write is at most
    archive_timeout older than the oldest complete segment still waiting (.ready), or, with
    none waiting, at most archive_timeout old. Without archive_timeout: the archive's age."""
    pending = unarchived_bytes(archiver)
    if pending is not None and pending <= 8192:
        return 0.0
    age = archiver.get("last_archived_age_s")
    timeout = archiver.get("archive_timeout_s")
    if age is None or not timeout:
        return None if age is None else float(age)
    ready = archiver.get("oldest_ready_age_s")
    if ready is None:
        return float(min(float(age), timeout))
    return float(ready) + timeout


def age_alerts(ages: Mapping[str, float | None], t: Thresholds) -> list[str]:
    """The alerts of backups too old: no full one, or none at all, within the thresholds."""
    out = []
    full = ages.get("full")
    if full is None or full > t.max_full_age_h * 3600:
        out.append(f"no full backup within {t.max_full_age_h:.0f} h")
    newest = min((a for a in ages.values() if a is not None), default=None)
    if newest is None or newest > t.max_backup_age_h * 3600:
        out.append(f"no backup within {t.max_backup_age_h:.0f} h")
    return out


def drill_alerts(last_drill: Mapping | None) -> list[str]:
    return ["the last restore drill failed"] if last_drill and not last_drill.get("ok") else []


def alerts(ages: Mapping[str, float | None], rpo_s: float | None, t: Thresholds,
           archiving_failing: bool = False, last_drill: Mapping | None = None,
           wal_age_s: float | None = None) -> list[str]:
    """The alerts of one host's backups as `pgops status` sees them (with the database
    host's pg_stat_archiver); none means healthy. The repository host's job judges WAL
    without it (max_wal_age_s) and uses the age and drill alerts alone."""
    out = age_alerts(ages, t)
    if rpo_s is None or rpo_s > t.max_rpo_s:
        risk = "unknown" if rpo_s is None else f"{rpo_s:.0f} s"
        out.append(f"WAL waits to be archived: work at risk {risk} (> {t.max_rpo_s:.0f} s), "
                   f"last archived {wal_age_s} s ago")
    if archiving_failing:
        out.append("WAL archiving is failing (pg_stat_archiver.last_failed_time is the newest)")
    return out + drill_alerts(last_drill)


def archiving_failing(archiver: Mapping) -> bool:
    """pg_stat_archiver's last failure is newer than its last success."""
    failed, archived = archiver.get("last_failed_time"), archiver.get("last_archived_time")
    return bool(failed and (not archived or failed > archived))


def newest_wal_time(ls: Callable[[str], Mapping[str, Mapping]], stanza: str) -> float | None:
    """When the newest WAL segment of a stanza reached the repository (posix or S3 alike):
    the newest archive id, its newest directory, the newest file there. `ls(path)` is
    `pgbackrest repo-ls --output=json path`, parsed."""
    base = f"archive/{stanza}"

    def paths(listing: Mapping[str, Mapping]) -> list[str]:
        return [k for k, v in listing.items() if v["type"] == "path" and k != "."]

    ids = paths(ls(base))
    if not ids:
        return None
    newest = max(ids, key=lambda i: int(i.rsplit("-", 1)[1]))
    dirs = paths(ls(f"{base}/{newest}"))
    if not dirs:
        return None
    files = ls(f"{base}/{newest}/{max(dirs)}").values()
    return max((float(f["time"]) for f in files if f["type"] == "file"), default=None)


#: pg_controldata's names for the settings recovery refuses to run below the source's.
RECOVERY_LIMITS = {"max_connections setting": "max_connections",
                   "max_worker_processes setting": "max_worker_processes",
                   "max_wal_senders setting": "max_wal_senders",
                   "max_prepared_xacts setting": "max_prepared_transactions",
                   "max_locks_per_xact setting": "max_locks_per_transaction"}


def recovery_limits(controldata: str) -> dict[str, str]:
    """The source's limits as the restored pg_control records them (the source may be down)."""
    out = {}
    for line in controldata.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in RECOVERY_LIMITS:
            out[RECOVERY_LIMITS[key.strip()]] = value.strip()
    return out


def recovery_limits_conf(controldata: str) -> str:
    """Those limits as postgresql.conf lines, for a restored copy to start with."""
    return "".join(f"{k} = {v}\n" for k, v in recovery_limits(controldata).items())


def new_drill(host: str, point: str, target_time: str, at: float, where: str) -> dict:
    """A drill record, in the one shape both drill runners write (`pgops drill` restores
    beside the live cluster; the repository host's timer restores on itself)."""
    return {"host": host, "at": at, "point": point, "target_time": target_time, "where": where,
            "ok": False, "rto_s": None, "amcheck": None, "error": None, "cleaned_up": False}


def drill_line(entry: Mapping) -> str:
    return json.dumps(entry, default=str) + "\n"


def last_drill(log_tail: str) -> dict | None:
    """The newest record of a drill log, given its last line (empty: no drill yet)."""
    line = log_tail.strip()
    return json.loads(line) if line else None


def amcheck_result(returncode: int, output: str) -> str:
    """"ok", or the end of pg_amcheck's report."""
    return "ok" if returncode == 0 else output.strip()[-1000:]


#: In a copy's conf directory while it is made, and in a transient one's (a drill's, a tenant
#: restore's) until it is removed: who made it. A run removes its copy however it ends, unless
#: it is killed; the next one from the same machine removes what it left.
SCRATCH_MARK = "pgops-scratch"


def scratch_mark(controller: str, pid: int) -> str:
    return f"{controller} {pid}\n"


def stale_scratch(marks: Mapping[str, str], controller: str,
                  alive: Callable[[int], bool]) -> tuple[list[str], list[str]]:
    """Of the marked copies on a host (cluster -> its mark): those a run on this controller
    left when it was killed (its process is gone: remove them), and those another run may
    still be using (another controller's, a live process's, an unreadable mark: left alone)."""
    gone, kept = [], []
    for cluster, mark in sorted(marks.items()):
        who, _, pid = mark.strip().rpartition(" ")
        if who == controller and pid.isdigit() and not alive(int(pid)):
            gone.append(cluster)
        else:
            kept.append(cluster)
    return gone, kept
