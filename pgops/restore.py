"""Point-in-time restore with pgBackRest, safe by default: beside the live cluster (a new
Debian cluster on a free port, on the same host or `--onto` another), promoted explicitly,
never archiving into the production repository, verified; or in place with `--yes`."""

from __future__ import annotations

import datetime as dt
import re
import shlex
import time
from dataclasses import asdict, dataclass, field

from pgops import backrest
from pgops.backup import BackupError, Plan, info, run

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


def _free_port(p: Plan, host: str, start: int = 5433) -> int:
    used = {int(x) for x in re.findall(r"^\S+\s+\S+\s+(\d+)", run(p.db(host), "pg_lsclusters -h"),
                                        re.MULTILINE)}
    port = start
    while port in used:
        port += 1
    return port


def archive_past(p: Plan, db: str, timeout: float = 60) -> None:
    """Make the archive reach past now: a commit, a WAL switch, and wait until that segment
    is archived. Recovery to a time stops only at a commit after it, so without this a target
    after the last archived commit fails ('recovery ended before ... target was reached')."""
    s = p.settings[db]
    h = p.db(db)
    count = _psql(s.pg_port, "postgres", "select archived_count from pg_stat_archiver")
    before = int(run(h, count).strip())
    # Two transactions: the commit must land in the segment that the switch then closes.
    run(h, _psql(s.pg_port, "postgres", "select txid_current()") + " -c 'select pg_switch_wal()'")
    deadline = time.monotonic() + timeout
    while int(run(h, count).strip()) <= before:
        if time.monotonic() > deadline:
            raise BackupError(f"{db}: the WAL switch was not archived within {timeout:.0f} s "
                              "(is the repository host reachable? see `pgops status`)")
        time.sleep(0.3)


def primary_up(p: Plan, db: str) -> bool:
    if not p.db(db).connected:
        return False
    ok, _ = p.db(db).run_shell_command(f"cd / && {_psql(p.settings[db].pg_port, 'postgres', 'select 1')}")
    return bool(ok)


def plan(p: Plan, db: str, to: str, onto: str | None = None, in_place: bool = False) -> RestorePlan:
    """What a restore would do; refuses a time outside the recoverable window. While the
    source's primary is up, the window reaches to now (execute archives past the target)."""
    to_end = to.strip().lower() == LATEST
    target = time.time() if to_end else parse_time(to)
    target_host = onto or db
    _reachable(p, db, target_host, in_place)
    st = info(p, db)
    w = dict(st["window"])
    if not w["earliest"]:
        raise BackupError(f"{db} has no backup to restore from (run `pgops backup`)")
    live = primary_up(p, db)
    if live:
        w["latest"] = max(w["latest"], time.time())
    if to_end:
        target = w["latest"]
    if not (w["earliest"] <= target <= w["latest"]):
        raise BackupError(f"{iso(target)} is outside the recoverable window of {db}: "
                          f"{iso(w['earliest'])} .. {iso(w['latest'])}")
    if in_place and onto:
        raise BackupError("--in-place restores over the source's own cluster; it excludes --onto")
    candidates = [b for b in st["backups"] if not b["error"] and b["stop"] <= target]
    backup = candidates[-1]
    if onto and onto not in p.settings:
        raise BackupError(f"--onto {onto}: not a database host of the inventory")
    if onto and p.is_local(db):
        raise BackupError(f"--onto {onto}: {db} keeps its repository locally; restore it beside "
                          "on its own host")
    if onto and p.settings[onto].pg_backup_host != p.stanzas[db]:
        raise BackupError(f"--onto {onto}: it does not use {p.stanzas[db]}, the repository of {db}")
    s = p.settings[db]
    if in_place:
        cluster, port = s.pg_cluster, s.pg_port
    else:
        cluster = "restore_" + dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
        port = _free_port(p, target_host)
    data = f"/var/lib/postgresql/{s.pg_major}/{cluster}"
    estimate = backup["size"] / (RESTORE_MBPS * 1024 * 1024) + 5 + (target - backup["stop"]) / 600
    rp = RestorePlan(db, target_host, target, in_place, backup, w, cluster, port, data,
                     round(estimate, 1), to_end=to_end)
    needs_switch = live and (to_end or target > st["window"]["latest"])
    rp.archive_first = needs_switch
    if in_place:
        rp.steps = ([f"commit and switch WAL on {db}, so the archive reaches past the target"]
                    if needs_switch else [])
        rp.steps += [f"stop postgresql@{s.pg_major}-{cluster} on {db}",
                    f"delta restore of backup {backup['label']} + WAL to {rp.upto} over {data}",
                    "start it: recovery replays WAL to the target, then promotes to a new timeline",
                    "archiving continues into the same stanza on the new timeline"]
    else:
        rp.steps = ([f"commit and switch WAL on {db}, so the archive reaches past the target"]
                    if needs_switch else [])
        rp.steps += [f"create cluster {s.pg_major}/{cluster} on {target_host}, port {port}",
                    f"restore backup {backup['label']} + WAL up to {rp.upto} into {data} "
                    "(archive_mode off: the copy never archives into the repository)",
                    "start it, replay to the target, promote; verify schema version and row counts"]
    return rp


def _reachable(p: Plan, db: str, target_host: str, in_place: bool) -> None:
    """The repository and the target must answer; the source need not (it may be the
    reason for the restore)."""
    repo = p.repo(db)
    if not repo.connected:
        raise BackupError(f"{repo.name}, the repository of {db}, is unreachable: nothing to "
                          "restore from (nothing was changed)")
    if not p.db(target_host).connected:
        hint = ("; restore onto another database host with --onto HOST"
                if target_host == db and not in_place and not p.is_local(db) else "")
        raise BackupError(f"{target_host} is unreachable (nothing was changed){hint}")


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


def _psql(port: int, db: str, query: str) -> str:
    return (f"runuser -u postgres -- psql -XAtq -p {port} -d {shlex.quote(db)} "
            f"-c {shlex.quote(query)}")


def _start(h, major: int, cluster: str) -> None:
    """Start a cluster; on failure show its log, where Postgres says why (systemd does not)."""
    try:
        run(h, f"systemctl start postgresql@{major}-{cluster}")
    except BackupError:
        log = run(h, f"tail -n 8 /var/log/postgresql/postgresql-{major}-{cluster}.log || true")
        raise BackupError(f"{h.name}: cluster {major}/{cluster} failed to start; its log ends with:\n"
                          f"{log}") from None


def cleanup(p: Plan, rp: RestorePlan) -> None:
    """Remove a copy made beside the live cluster (never the live one)."""
    if rp.in_place or not rp.cluster.startswith("restore_"):
        return
    major = p.settings[rp.source].pg_major
    run(p.db(rp.target_host), f"pg_dropcluster {major} {rp.cluster} --stop 2>/dev/null || true")


def _wait_promoted(p: Plan, host: str, port: int, cluster: str, major: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    h = p.db(host)
    while True:
        ok, out = h.run_shell_command(f"cd / && {_psql(port, 'postgres', 'select pg_is_in_recovery()')}")
        if ok and out.stdout.strip() == "f":
            return
        if time.monotonic() > deadline:
            log = run(h, f"tail -n 20 /var/log/postgresql/postgresql-{major}-{cluster}.log || true")
            raise BackupError(f"{host}: cluster {cluster} did not finish recovery within "
                              f"{timeout:.0f} s; its log ends with:\n{log}")
        time.sleep(0.5)


def verify(p: Plan, host: str, port: int, database: str | None) -> dict:
    """Connects, reads the schema version and exact row counts of every table."""
    h = p.db(host)
    out: dict = {"connected": True}
    if not database:
        return out
    q = ("select coalesce((select max(version) from pgops.schema_history), 0)"
         if "pgops" in run(h, _psql(port, database, "select nspname from pg_namespace")) else "select 0")
    out["schema_version"] = int(run(h, _psql(port, database, q)).strip() or 0)
    tables = run(h, _psql(port, database, "select quote_ident(schemaname)||'.'||quote_ident(tablename) "
                                          "from pg_tables where schemaname = 'public' order by 1")).split()
    counts = {}
    if tables:
        union = " union all ".join(f"select '{t}', count(*) from {t}" for t in tables)
        for line in run(h, _psql(port, database, union)).splitlines():
            name, n = line.split("|")
            counts[name] = int(n)
    out["row_counts"] = counts
    return out


def execute(p: Plan, rp: RestorePlan, say=lambda m: None, timeout: float = 600) -> dict:
    s = p.settings[rp.source]
    h = p.db(rp.target_host)
    stanza = backrest.stanza(rp.source)
    target = shlex.quote(backrest_time(rp.target_time))
    t0 = time.monotonic()
    # --to latest has no target: recovery replays all archived WAL, then promotes.
    common = (f"pgbackrest --stanza={stanza} --pg1-path={rp.data_directory} --target-timeline=current "
              + ("--type=default" if rp.to_end
                 else f"--type=time --target={target} --target-action=promote"))
    if rp.archive_first:
        say(f"switching WAL on {rp.source} so the archive reaches past the target")
        archive_past(p, rp.source)
    if rp.in_place:
        service = f"postgresql@{s.pg_major}-{rp.cluster}"
        say(f"stopping {service} on {rp.target_host}")
        run(h, f"systemctl stop {service}")
        say("delta restore over the live data directory")
        run(h, f"runuser -u postgres -- {common} --delta restore", timeout=7200)
        say("starting: recovery to the target time, then promotion")
        _start(h, s.pg_major, rp.cluster)
    else:
        say(f"creating cluster {rp.cluster} on {rp.target_host}:{rp.port}")
        run(h, f"pg_createcluster {s.pg_major} {rp.cluster} --port {rp.port} >/dev/null && "
               f"pg_ctlcluster {s.pg_major} {rp.cluster} stop 2>/dev/null; "
               # pgBackRest refuses a non-empty directory; this one was created just now.
               f"find {rp.data_directory} -mindepth 1 -delete")
        say(f"restoring backup {rp.backup['label']} and WAL to {rp.upto}")
        run(h, f"runuser -u postgres -- {common} --archive-mode=off restore", timeout=7200)
        # Recovery refuses to run with lower limits than the source had (pg_control records them).
        control = run(h, f"/usr/lib/postgresql/{s.pg_major}/bin/pg_controldata {rp.data_directory}")
        limits = "".join(f"{k} = {v}\n" for k, v in recovery_limits(control).items())
        conf = f"/etc/postgresql/{s.pg_major}/{rp.cluster}/conf.d/50-pgops-restore.conf"
        run(h, f"printf '%s' {shlex.quote(limits)} > {conf}")
        say("starting: recovery to the target time, then promotion")
        _start(h, s.pg_major, rp.cluster)
    _wait_promoted(p, rp.target_host, rp.port, rp.cluster, s.pg_major, timeout)
    seconds = time.monotonic() - t0
    result = {
        "host": rp.target_host,
        "address": h.data.get("ssh_hostname") or h.name,
        "port": rp.port,
        "cluster": f"{s.pg_major}/{rp.cluster}",
        "data_directory": rp.data_directory,
        "target_time": iso(rp.target_time),
        "backup": rp.backup["label"],
        "in_place": rp.in_place,
        "seconds": round(seconds, 2),
        "verify": verify(p, rp.target_host, rp.port, s.pg_app_database),
    }
    if not rp.in_place:
        result["switch_over"] = (
            f"the restored copy runs on {result['address']}:{rp.port} (cluster {s.pg_major}/{rp.cluster}); "
            f"point applications at it, or restore in place with `pgops restore --to '{iso(rp.target_time)}' "
            f"--host {rp.source} --in-place --yes`; remove it with "
            f"`pg_dropcluster {s.pg_major} {rp.cluster} --stop` on {rp.target_host}")
    return result
