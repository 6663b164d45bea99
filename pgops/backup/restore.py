"""Point-in-time restore with pgBackRest, safe by default: beside the live cluster (a new
Debian cluster on a free port, on the same host or `--onto` another), promoted explicitly,
never archiving into the production repository, verified; or in place with `--yes`.

Planning is fetch (`plan`: window, liveness, a free port) then decide (`check`, `build`: pure).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from pgops.backup import backrest, copies, rules
from pgops.backup.repository import Backups, info, primary
from pgops.errors import BackupError, CommandFailed
from pgops.remote import address, run, try_run
from pgops.server import psql
from pgops.server.cluster import Cluster
from pgops.settings import LOCAL_REPOSITORY, Settings

RESTORE_MBPS = 250  # planning estimate (bench/backup.py measured 230-460 MB/s); real time is measured
LATEST = "latest"  # --to latest: everything the archive holds (end of the WAL stream)


@dataclass
class RestorePlan:
    source: str  # database host whose stanza is restored
    target_host: str  # where the restored cluster runs
    target_time: float  # epoch seconds
    in_place: bool
    backup: dict
    window: dict
    cluster: str
    port: int
    data_directory: str
    estimate_s: float
    steps: list[str] = field(default_factory=list)
    archive_first: bool = False
    to_end: bool = False  # --to latest: recover to the end of the archive, then promote
    members: list[str] = field(default_factory=list)  # a cluster restored in place: leader first
    scratch: bool = False  # a transient copy (a drill's, a tenant restore's): removed after use

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def upto(self) -> str:
        """Where recovery stops, in words."""
        return "the end of the archive" if self.to_end else iso(self.target_time)


def parse_time(text: str) -> float:
    """ISO 8601 (a time without an offset is UTC) or epoch seconds."""
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BackupError(f"--to {text!r}: not a time (use ISO 8601, e.g. 2026-11-23T14:05:00Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.timestamp()


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="microseconds")


def backrest_time(epoch: float) -> str:
    """pgBackRest's --target format: `YYYY-MM-DD HH:MM:SS.mmm+00` (milliseconds, truncated)."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "+00"


def archive_past(backups: Backups, db: str, timeout: float = 60) -> None:
    """Make the archive reach past now: a commit, a WAL switch, and wait until that segment
    is archived. Recovery to a time stops only at a commit after it, so without this a target
    after the last archived commit fails ('recovery ended before ... target was reached')."""
    s = backups.settings[db]
    name = primary(backups, db)[0]
    if name is None:
        raise BackupError(f"{db}: no primary answers, so WAL cannot be switched to reach the target")
    h = backups.db(name)  # a cluster's leader archives
    count = psql.shell("select archived_count from pg_stat_archiver", s.pg_port)
    failed = psql.shell("select failed_count, last_failed_wal, last_failed_time from pg_stat_archiver",
                        s.pg_port)
    before = int(run(h, count).strip())
    # Two transactions: the commit must land in the segment that the switch then closes.
    run(h, psql.shell(["select txid_current()", "select pg_switch_wal()"], s.pg_port))
    deadline = time.monotonic() + timeout
    while int(run(h, count).strip()) <= before:
        if time.monotonic() > deadline:
            _, said = try_run(h, f"grep -h ERROR {backrest.LOG}/{backups.stanza(db)}-archive-push*.log "
                                 "| tail -1")
            raise BackupError(f"{name}: the WAL switch was not archived within {timeout:.0f} s"
                              f"{_archive_failure(run(h, failed).strip(), said.strip())} (is the "
                              f"repository host reachable? see `pgops status` and {backrest.LOG} "
                              f"on {name})")
        time.sleep(0.3)


def _archive_failure(row: str, error: str = "") -> str:
    """`failed_count|last_failed_wal|last_failed_time` of pg_stat_archiver and pgBackRest's
    last logged error, in words."""
    n, wal, at = (row.split("|") + ["", "", ""])[:3]
    if n in ("", "0"):
        return ""
    return f"; archiving failed {n} times, last on {wal} at {at}" + (f": {error}" if error else "")


@dataclass(frozen=True)
class Checked:
    """A restore request that passed every check: what to restore, and to when."""

    target: float
    window: dict
    backup: dict
    to_end: bool
    archive_first: bool


def check(db: str, to: str, st: dict, live: bool, now: float, settings: dict[str, Settings],
          stanzas: dict[str, str], onto: str | None = None, in_place: bool = False) -> Checked:
    """Refuse what cannot or must not be restored (pure): a time outside the recoverable
    window, --onto a host of another repository, --in-place with --onto. While the source's
    primary is up (`live`), the window reaches to now (execute archives past the target)."""
    to_end = to.strip().lower() == LATEST
    target = now if to_end else parse_time(to)
    w = dict(st["window"])
    if not w["earliest"]:
        raise BackupError(f"{db} has no backup to restore from (run `pgops backup`)")
    if live:
        w["latest"] = max(w["latest"], now)
    if to_end:
        target = w["latest"]
    if not (w["earliest"] <= target <= w["latest"]):
        raise BackupError(f"{iso(target)} is outside the recoverable window of {db}: "
                          f"{iso(w['earliest'])} .. {iso(w['latest'])}")
    _check_destination(db, onto, in_place, settings, stanzas)
    backup = [x for x in st["backups"] if not x["error"] and x["stop"] <= target][-1]
    archive_first = live and (to_end or target > st["window"]["latest"])
    return Checked(target, w, backup, to_end, archive_first)


def _check_destination(db: str, onto: str | None, in_place: bool, settings: dict[str, Settings],
                       stanzas: dict[str, str]) -> None:
    """--onto must name a database host of the same repository; --in-place excludes it."""
    if in_place and onto:
        raise BackupError("--in-place restores over the source's own cluster; it excludes --onto")
    if not onto:
        return
    if onto not in settings:
        raise BackupError(f"--onto {onto}: not a database host of the inventory")
    if stanzas[db] == LOCAL_REPOSITORY:
        raise BackupError(f"--onto {onto}: {db} keeps its repository locally; restore it beside "
                          "on its own host")
    if settings[onto].pg_backup_host != stanzas[db]:
        raise BackupError(f"--onto {onto}: it does not use {stanzas[db]}, the repository of {db}")
    if settings[onto].pg_major != settings[db].pg_major:
        raise BackupError(f"--onto {onto}: it runs PostgreSQL {settings[onto].pg_major}, "
                          f"{db}'s backups are of {settings[db].pg_major}")


def build(db: str, c: Checked, s: Settings, target_host: str, in_place: bool, port: int,
          copy_name: str, primary_host: str | None = None, scratch: bool = False) -> RestorePlan:
    """The plan for a checked request (pure): cluster, port, data directory, estimate, steps.
    + copy_name: the cluster beside (copies.name); primary_host: where WAL is switched (a
    cluster's leader; default db); scratch: a transient copy (the caller removes it, and a
    killed caller's is swept by the next run)"""
    cluster = s.pg_cluster if in_place else copy_name
    port = s.pg_port if in_place else port
    where = Cluster(s.pg_major, cluster)
    estimate = c.backup["size"] / (RESTORE_MBPS * 1024 * 1024) + 5 + (c.target - c.backup["stop"]) / 600
    rp = RestorePlan(db, target_host, c.target, in_place, c.backup, c.window, cluster, port,
                     where.data, round(estimate, 1), archive_first=c.archive_first, to_end=c.to_end,
                     scratch=scratch and not in_place)
    rp.steps = ([f"remove the copies killed runs from this machine left on {target_host} "
                 f"({copies.PREFIX}* clusters marked {rules.SCRATCH_MARK})"]
                if rp.scratch else [])
    if c.archive_first:
        rp.steps.append(f"commit and switch WAL on {primary_host or db}, so the archive reaches "
                        "past the target")
    if in_place:
        rp.steps += [f"stop {where.service} on {db}",
                     f"delta restore of backup {c.backup['label']} + WAL to {rp.upto} over {where.data}",
                     "start it: recovery replays WAL to the target, then promotes to a new timeline",
                     "archiving continues into the same stanza on the new timeline"]
    else:
        rp.steps += [f"create cluster {s.pg_major}/{cluster} on {target_host}, port {port}",
                     f"restore backup {c.backup['label']} + WAL up to {rp.upto} into {where.data} "
                     "(archive_mode off: the copy never archives into the repository)",
                     "start it, replay to the target, promote; verify schema version and row counts"]
    return rp


def plan(backups: Backups, db: str, to: str, onto: str | None = None, in_place: bool = False,
         scratch: bool = False) -> RestorePlan:
    """What a restore would do: fetch the window and the source's liveness, then decide.
    scratch: the copy is transient (the caller removes it; a killed caller's is swept)."""
    target_host = onto or db
    _reachable(backups, db, target_host, in_place)
    leader = primary(backups, db)[0]  # a cluster's leader, or db itself when it is up
    c = check(db, to, info(backups, db), leader is not None, time.time(), backups.settings,
              backups.stanzas, onto, in_place)
    port = (backups.settings[db].pg_port if in_place else
            copies.free_port(backups.db(target_host), backups.settings[db].pg_major))
    name = copies.name(dt.datetime.now(dt.UTC), os.getpid())
    return build(db, c, backups.settings[db], target_host, in_place, port, name, leader, scratch)


def _reachable(backups: Backups, db: str, target_host: str, in_place: bool) -> None:
    """The repository and the target must answer; the source need not (it may be the
    reason for the restore)."""
    repo = backups.repo(db)
    if not repo.connected:
        raise BackupError(f"{repo.name}, the repository of {db}, is unreachable: nothing to "
                          "restore from (nothing was changed)")
    if not backups.db(target_host).connected:
        hint = ("; restore onto another database host with --onto HOST"
                if target_host == db and not in_place and not backups.is_local(db) else "")
        raise BackupError(f"{target_host} is unreachable (nothing was changed){hint}")


def _start(h, c: Cluster) -> None:
    """Start a cluster; on failure show its log, where Postgres says why (systemd does not)."""
    try:
        run(h, f"systemctl start {c.service}")
    except CommandFailed:
        log = run(h, f"tail -n 8 {c.log} || true")
        raise BackupError(f"{h.name}: cluster {c.major}/{c.name} failed to start; its log ends with:\n"
                          f"{log}") from None


def cleanup(backups: Backups, rp: RestorePlan) -> None:
    """Remove a copy made beside the live cluster (never the live one)."""
    if rp.in_place or not copies.is_copy(rp.cluster):
        return
    major = backups.settings[rp.source].pg_major
    run(backups.db(rp.target_host), copies.remove(Cluster(major, rp.cluster)))


def wait_promoted(backups: Backups, host: str, port: int, c: Cluster, timeout: float) -> None:
    """Polled on the host every 0.1 s, in one command with a wall-clock limit: polling over
    SSH every 0.5 s added 0.6 s to the RTO (bench/pitr_rto.py)."""
    h = backups.db(host)
    try:
        # Alive while its postmaster is (a shell builtin on its pid file: the poll runs every
        # 0.1 s beside the replay, and pg_ctlcluster would start perl each time).
        alive = f"kill -0 \"$(head -n1 {c.data}/postmaster.pid 2>/dev/null)\""
        ok, _ = try_run(h, psql.wait_writable_command(port, int(timeout), alive=alive),
                        timeout=int(timeout) + 60)
    except TimeoutError:  # pyinfra's, should the host stop answering
        ok = False
    if not ok:
        log = run(h, f"tail -n 20 {c.log} || true")
        raise BackupError(f"{host}: cluster {c.name} did not finish recovery within "
                          f"{timeout:.0f} s; its log ends with:\n{log}")


def verify(backups: Backups, host: str, port: int, database: str | None) -> dict:
    """Connects, reads the schema version and exact row counts of every table."""
    h = backups.db(host)
    out: dict = {"connected": True}
    if not database:
        return out

    def query(sql: str) -> str:
        return run(h, psql.shell(sql, port, database))

    q = ("select coalesce((select max(version) from pgops.schema_history), 0)"
         if "pgops" in query("select nspname from pg_namespace") else "select 0")
    out["schema_version"] = int(query(q).strip() or 0)
    tables = query("select quote_ident(schemaname)||'.'||quote_ident(tablename) "
                   "from pg_tables where schemaname = 'public' order by 1").split()
    counts = {}
    if tables:
        union = " union all ".join(f"select '{t}', count(*) from {t}" for t in tables)
        for line in query(union).splitlines():
            name, n = line.split("|")
            counts[name] = int(n)
    out["row_counts"] = counts
    return out


def pgbackrest_restore(rp: RestorePlan, stanza: str) -> str:
    """pgBackRest restore of the plan's stanza into its data directory. --to latest has no
    target: recovery replays all archived WAL, then promotes. Recovery follows the newest
    timeline's history: the backup's own timeline ends, in the archive, before its last
    (partial) segment when a failover or an in-place restore began a new one, and the
    history as it lives now runs on the new one."""
    target = shlex.quote(backrest_time(rp.target_time))
    kind = "--type=default" if rp.to_end else f"--type=time --target={target} --target-action=promote"
    own = "" if rp.in_place else f" {copies.backrest_paths(rp.data_directory, rp.cluster)}"
    return backrest.command(stanza, f"--pg1-path={rp.data_directory} --target-timeline=latest "
                                    f"{kind}{own}")


def execute(backups: Backups, rp: RestorePlan, say: Callable[[str], None] = lambda m: None,
            timeout: float = 600) -> dict:
    s = backups.settings[rp.source]
    h = backups.db(rp.target_host)
    c = Cluster(s.pg_major, rp.cluster)
    if rp.in_place and s.pg_ha_cluster and not rp.members:  # Patroni would fight a restore under it
        raise BackupError(f"{rp.source} is a member of cluster {s.pg_ha_cluster}: an in-place "
                          "restore rebuilds the whole cluster (pgops.backup.cluster_restore)")
    common = pgbackrest_restore(rp, backups.stanza(rp.source))
    if rp.scratch:  # before the clock: not part of this restore's time
        copies.sweep(h, s.pg_major, say)
    t0 = time.monotonic()
    phases: dict[str, float] = {}  # where the time went (bench/pitr_rto.py compares the parts)

    def done(phase: str) -> None:
        phases[phase] = round(time.monotonic() - t0 - sum(phases.values()), 2)

    if rp.archive_first:
        say(f"switching WAL on the primary of {backups.label(rp.source)} so the archive "
            "reaches past the target")
        archive_past(backups, rp.source)
        done("switch_wal")
    if rp.in_place:
        say(f"stopping {c.service} on {rp.target_host}")
        run(h, f"systemctl stop {c.service}")
        say("delta restore over the live data directory")
        run(h, f"runuser -u postgres -- {common} --delta restore", timeout=7200)
        done("pgbackrest_restore")
    else:
        say(f"creating cluster {rp.cluster} on {rp.target_host}:{rp.port} and restoring backup "
            f"{rp.backup['label']} and WAL to {rp.upto}")
        # A transient copy stays local only; a user's takes the host's access.
        t = backups.settings[rp.target_host]
        made = run(h, copies.create_and_restore(c, common, Cluster.of(t),
                                                copies.this_run(),
                                                None if rp.scratch else copies.access(t)),
                   timeout=7200)
        port = copies.parse_port(made)
        if port != rp.port:
            say(f"port {rp.port} was taken meanwhile: the copy runs on port {port}")
            rp.port = port
        done("pgbackrest_restore")
        # Recovery refuses to run with lower limits than the source had (pg_control records
        # them). In the data directory's auto.conf, after pgBackRest's recovery settings: read
        # last, and removed with the copy by pg_dropcluster (a conf.d file was left behind).
        limits = rules.recovery_limits_conf(run(h, f"{c.bin('pg_controldata')} {rp.data_directory}"))
        auto = f"{rp.data_directory}/postgresql.auto.conf"
        run(h, f"printf '\\n%s' {shlex.quote(limits)} >> {auto} && chown postgres:postgres {auto}")
        done("recovery_limits")
    say("starting: recovery to the target time, then promotion")
    try:
        _start(h, c)
        wait_promoted(backups, rp.target_host, rp.port, c, timeout)
    except BackupError as e:
        if rp.in_place or rp.scratch:  # a scratch copy's caller removes it
            raise
        raise BackupError(f"{e}\nThe copy stays for a look: `pg_dropcluster {c.major} {c.name} "
                          f"--stop` on {rp.target_host} removes it (or the next drill or tenant "
                          "restore from this machine)") from None
    done("start_replay_promote")
    out = result(backups, rp, time.monotonic() - t0)
    done("verify")
    if not rp.in_place and not rp.scratch:  # the user's now: never swept, starts with the host
        run(h, copies.kept(c))
    out["phases"] = phases
    return out


def result(backups: Backups, rp: RestorePlan, seconds: float) -> dict:
    """What a finished restore reports: where the cluster runs, and its verification."""
    s = backups.settings[rp.source]
    return {
        "host": rp.target_host,
        "address": address(backups.db(rp.target_host)),
        "port": rp.port,
        "cluster": f"{s.pg_major}/{rp.cluster}",
        "data_directory": rp.data_directory,
        "target_time": iso(rp.target_time),
        "backup": rp.backup["label"],
        "in_place": rp.in_place,
        "seconds": round(seconds, 2),
        "verify": verify(backups, rp.target_host, rp.port, s.pg_app_database),
    }
