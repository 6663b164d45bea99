"""Backup and restore benchmark on a fresh `bench` lab (db1, db2 and the repository host
backup1), measured in one run on the same database and hosts:

- full-backup throughput (MB/s of the data directory without pg_wal, MB = 10^6 bytes) of
  pgops's pgBackRest configuration as `pgops deploy` writes it (repository host backup1 over
  SSH, lz4, aes-256-cbc, process-max from db1's cores), against the same over pgBackRest's
  TLS transport as `pgops deploy` sets it up with `pg_backup_transport = "tls"` (deployed
  before each of its runs and back to SSH after, outside the timing),
  against pg_basebackup (plain `-Fp`; `-Ft` with client-side and with server-side lz4) and
  against reading the data files on db1 (`cat` to a pipe); rounds interleaved, median; with
  the CPU seconds db1 and backup1 used (their cgroups), since the two share this machine's
  cores;
- restore time into a scratch directory, delta restore over that unchanged copy, and delta
  restore of a newer backup (after 30 s of pgbench and an incremental) over it;
- PITR RTO (`pgops.backup.restore`: restore to a time onto db2, replay, promote, connect) for
  each pgbench scale;
- RPO measured when db1's container is killed (`docker kill`): a client on this machine
  commits numbered rows, the latest recoverable point is restored onto db2 (by hand, as
  pgBackRest's user guide does; `pgops restore --plan` with db1 down is checked in a row of
  its own), and the last row the client saw committed is compared with the last row present.
  Three kills: light load (10 commits/s) on a primary that never crashed, pgbench load, and
  light load again just after the crash restart; with the archiving settings in force.

Data: `pgops seed` (the knowledge base, 384-dim embeddings with an HNSW index) plus pgbench
tables in a `bench` database at each `--scales` value (about 15 MB per unit); throughput,
restores and RPO use the last (largest) scale.

Choices, so the figures compare like with like:
- pg_basebackup runs where pgBackRest's backups run, on backup1, and writes to backup1's
  disk: both read on db1, cross the lab network encrypted (pgBackRest over SSH, pg_basebackup
  over TLS: pgops's pg_hba.conf only has hostssl lines) and write on backup1. The bench adds
  a replication role and one hostssl replication line for backup1 on db1 (not redeployed
  afterwards), and installs postgresql-client-17 on backup1. pg_basebackup uses
  `-c fast -X stream`, like pgBackRest's start-fast and WAL kept with the backup.
- PostgreSQL 17's pg_basebackup compresses with lz4 on the client (`-Z client-lz4`, the
  default location) or the server (`-Z server-lz4`, tar format); both are measured.
- Page cache: lab containers cannot drop caches, so before each measured run this machine
  reclaims the page cache of the containers involved (their memory cgroup's
  memory.force_empty, or memory.reclaim on cgroup v2). The lab's virtual disk may still be
  cached below this machine: that cannot be controlled from here. The raw read is one
  sequential reader (find | xargs cat | wc -c), pg_wal excluded.
- Hosts get `--cpus` CPUs (PGOPS_LAB_CPUS, default 2: pgops then sets process-max 2, the
  configuration the issue's reference figures used); the machine's cores are shared by all
  hosts, so db1 and backup1 compete for them during a backup.

    .venv/bin/python bench/backup.py [--scales 10,50,100,200] [--tenants 30] [--rounds 3]
                                     [--cpus 2] [--keep]
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # pgops.backup runs pyinfra, which runs on gevent: patch before ssl loads

import argparse  # noqa: E402
import errno  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
os.environ["PGOPS_LAB"] = "bench"
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from pgops.backup import repository as backup  # noqa: E402
from pgops.backup import restore  # noqa: E402
from pgops.client.targets import inventory_target  # noqa: E402
from pgops.lab import Lab  # noqa: E402

PGOPS = str(Path(sys.executable).parent / "pgops")
INVENTORY = ROOT / "inventory" / "lab.py"
BIN = "/usr/lib/postgresql/17/bin"
PGDATA = "/var/lib/postgresql/17/main"
SCRATCH = "/var/lib/postgresql/17/bench_scratch"
HBA = "/etc/postgresql/17/main/pg_hba.conf"
BASEBACKUP_DIR = "/var/tmp/bench_basebackup"
MB = 1e6


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def pgops(*args: str, env: dict | None = None) -> str:
    r = subprocess.run([PGOPS, *args], cwd=ROOT, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"pgops {' '.join(args)} failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    return r.stdout


class Hosts:
    """Commands on the bench lab's hosts over SSH (the lab checks its network first)."""

    def __init__(self, lab: Lab):
        self.lab = lab

    def sh(self, host: str, command: str, timeout: float = 1800) -> str:
        return self.lab.ssh(host, f"cd / && {command}", timeout=timeout).stdout

    def psql(self, host: str, query: str, db: str = "postgres", port: int = 5432) -> str:
        return self.sh(host, f"runuser -u postgres -- psql -XAtq -p {port} -d {db} "
                             f"-c {shlex.quote(query)}").strip()

    def timed(self, host: str, command: str, timeout: float = 3600) -> float:
        """Seconds a command took, measured on the host itself (no SSH set-up in the figure)."""
        r = self.lab.ssh(host, f"cd / && s=$(date +%s%N); {{ {command} ; }} >/tmp/bench.log 2>&1; "
                               "rc=$?; e=$(date +%s%N); echo \"$rc $((e - s))\"; "
                               "[ $rc = 0 ] || tail -c 3000 /tmp/bench.log",
                         check=False, timeout=timeout)
        lines = r.stdout.splitlines()
        if not lines or lines[0].split()[0] != "0":
            sys.exit(f"{host}: `{command}` failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
        return int(lines[0].split()[1]) / 1e9

    def container(self, host: str) -> str:
        return self.lab.host(host).container

    def _cgroup(self, host: str) -> str:
        return subprocess.run(["docker", "inspect", "-f", "{{.Id}}", self.container(host)],
                              capture_output=True, text=True, check=True).stdout.strip()

    def cpu_seconds(self, *hosts: str) -> float | None:
        """CPU time the hosts' containers have used (cgroup v1 cpuacct or v2 cpu.stat);
        None when neither can be read."""
        total = 0.0
        for h in hosts:
            cid = self._cgroup(h)
            v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
            v2 = [Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"),
                  Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat")]
            if v1.exists():
                total += int(v1.read_text()) / 1e9
            elif stat := next((f for f in v2 if f.exists()), None):
                usage = dict(line.split() for line in stat.read_text().splitlines())
                total += int(usage["usage_usec"]) / 1e6
            else:
                return None
        return total

    def drop_caches(self, *hosts: str) -> bool:
        """Reclaim the page cache of these hosts' containers from this machine (a container
        cannot drop its caches). False when no cgroup knob could be used."""
        done = True
        for h in hosts:
            cid = self._cgroup(h)
            knobs = ((f"/sys/fs/cgroup/memory/docker/{cid}/memory.force_empty", "0"),
                     (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.reclaim", "64G"),
                     (f"/sys/fs/cgroup/docker/{cid}/memory.reclaim", "64G"))
            for path, value in knobs:
                if not os.path.exists(path):
                    continue
                try:
                    Path(path).write_text(value)
                except OSError as e:
                    if e.errno != errno.EAGAIN:  # EAGAIN: reclaimed all it could
                        continue
                break
            else:
                done = False
        return done


def data_bytes(hs: Hosts, host: str = "db1", path: str = PGDATA) -> int:
    """Bytes of the data directory's files, pg_wal excluded (what a base backup copies)."""
    return int(hs.sh(host, f"cd {path} && find . -path ./pg_wal -prune -o -type f -printf '%s\\n' "
                           "| awk '{s += $1} END {printf \"%.0f\", s}'"))


def init_pgbench(hs: Hosts, backups: backup.Backups, scale: int) -> None:
    hs.sh("db1", f"runuser -u postgres -- sh -c 'dropdb --if-exists bench && createdb bench && "
                 f"{BIN}/pgbench -i -q -s {scale} bench' >/dev/null 2>&1", timeout=3600)
    hs.psql("db1", "checkpoint")
    # Start every measurement with the archive caught up (pgbench -i writes GBs of WAL).
    restore.archive_past(backups, "db1", timeout=1800)


# -- full-backup throughput ----------------------------------------------------------------
def tls_inventory(directory: Path) -> Path:
    """inventory/lab.py with db1 on pgBackRest's TLS transport (beside a link to the same
    group_data, so every other setting is the lab's)."""
    (directory / "group_data").symlink_to(ROOT / "inventory" / "group_data")
    path = directory / "lab_tls.py"
    path.write_text("from pgops.lab.inventory import backup_servers as _backup, db_servers as _db\n"
                    "_hosts, _data = _db()\n"
                    "db_servers = ([(n, {**h, **({'pg_backup_transport': 'tls'} if n == 'db1' "
                    "else {})}) for n, h in _hosts], _data)\n"
                    "backup_servers = _backup()\n")
    return path


def methods(hs: Hosts, backups: backup.Backups, pm: int, tls_inv: Path) -> dict:
    """name -> (run, set-up, tear-down): run returns (seconds, bytes written); the set-up and
    tear-down are not timed."""
    db1 = hs.lab.host("db1").address

    def pgbackrest(extra: str = "", backups: backup.Backups = backups):
        def run() -> tuple[float, int]:
            t0 = time.monotonic()
            if extra:
                backup.pgbackrest(backups, "db1", f"--type=full {extra} backup")
                seconds = time.monotonic() - t0
            else:  # pgops's own call, as `pgops backup --type full` runs it
                seconds = backup.take(backups, "db1", "full")["seconds"]
            return seconds, backup.info(backups, "db1")["backups"][-1]["repo_size"]
        return run

    def basebackup(options: str):
        def run() -> tuple[float, int]:
            hs.sh("backup1", f"rm -rf {BASEBACKUP_DIR}")
            s = hs.timed("backup1", f"{BIN}/pg_basebackup -h {db1} -U bench_repl -D {BASEBACKUP_DIR} "
                                    f"-c fast -X stream {options}")
            written = int(hs.sh("backup1", f"du -sb {BASEBACKUP_DIR} | cut -f1"))
            hs.sh("backup1", f"rm -rf {BASEBACKUP_DIR}")
            return s, written
        return run

    def raw() -> tuple[float, int]:
        return hs.timed("db1", f"cd {PGDATA} && find . -path ./pg_wal -prune -o -type f -print0 "
                               "| xargs -0 cat | wc -c"), 0

    none = lambda: None  # noqa: E731
    return {
        f"pgBackRest, pgops config (process-max {pm})": (pgbackrest(), none, none),
        "pgBackRest, process-max 1": (pgbackrest("--process-max=1"), none, none),
        "pg_basebackup -Fp (plain)": (basebackup("-Fp"), none, none),
        "pg_basebackup -Ft -Z client-lz4": (basebackup("-Ft -Z client-lz4"), none, none),
        "pg_basebackup -Ft -Z server-lz4": (basebackup("-Ft -Z server-lz4"), none, none),
        "raw read: cat data files on db1": (raw, none, none),
        "pgops pgBackRest over TLS (pg_backup_transport)": (
            pgbackrest(backups=backup.connect(tls_inv, "db1")),
            lambda: (pgops("deploy", "-i", str(tls_inv)), allow_replication(hs)),
            lambda: (pgops("deploy"), allow_replication(hs))),
    }


def throughput(hs: Hosts, backups: backup.Backups, pm: int, rounds: int, tls_inv: Path) -> tuple[dict, bool]:
    runs = methods(hs, backups, pm, tls_inv)
    names = list(runs)
    seconds: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    written: dict[str, int] = {}
    cold = True
    for r in range(rounds):  # interleaved, order rotated: drift hits every method alike
        for name in names[r % len(names):] + names[:r % len(names)]:
            run, set_up, tear_down = runs[name]
            set_up()
            cold &= hs.drop_caches("db1", "backup1")
            say(f"round {r + 1}/{rounds}: {name}")
            c0 = hs.cpu_seconds("db1", "backup1")
            s, w = run()
            c1 = hs.cpu_seconds("db1", "backup1")
            tear_down()
            if c0 is not None and c1 is not None:
                cpu[name].append(c1 - c0)
            seconds[name].append(s)
            written[name] = w
    return {n: (statistics.median(seconds[n]), seconds[n], written[n],
                statistics.median(cpu[n]) if cpu[n] else None) for n in names}, cold


# -- restores ------------------------------------------------------------------------------
def restores(hs: Hosts, backups: backup.Backups) -> dict:
    """Restore the latest backup into a scratch directory on db2, then delta restores."""
    cmd = (f"runuser -u postgres -- pgbackrest --stanza=db1 --pg1-path={SCRATCH} "
           "--archive-mode=off")
    hs.sh("db2", f"rm -rf {SCRATCH} && install -d -o postgres -g postgres -m 700 {SCRATCH}")
    out = {}
    hs.drop_caches("db2", "backup1")
    out["restore"] = hs.timed("db2", f"{cmd} restore")
    out["restored_bytes"] = data_bytes(hs, "db2", SCRATCH)
    hs.drop_caches("db2", "backup1")
    out["delta_same"] = hs.timed("db2", f"{cmd} --delta restore")
    say("30 s of pgbench on db1, then an incremental backup")
    hs.sh("db1", f"runuser -u postgres -- {BIN}/pgbench -n -c 4 -j 2 -T 30 bench >/dev/null")
    incr = backup.take(backups, "db1", "incr")
    out["incr_delta"], out["incr_repo"] = incr["delta"], incr["repo_size"]
    hs.drop_caches("db2", "backup1")
    out["delta_changed"] = hs.timed("db2", f"{cmd} --delta restore")
    hs.sh("db2", f"rm -rf {SCRATCH}")
    return out


# -- PITR RTO ------------------------------------------------------------------------------
def pitr(hs: Hosts, backups: backup.Backups, seconds: int) -> dict:
    """A fixed pgbench load after the full backup, then restore to its end onto db2."""
    lsn = hs.psql("db1", "select pg_current_wal_lsn()")
    hs.sh("db1", f"runuser -u postgres -- {BIN}/pgbench -n -c 2 -j 2 -R 100 -T {seconds} bench "
                 ">/dev/null")
    target = time.time()
    wal = int(hs.psql("db1", f"select pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn}')"))
    restore.archive_past(backups, "db1")  # as an operator's target would be: already archived
    rp = restore.plan(backups, "db1", restore.iso(target), onto="db2")
    hs.drop_caches("db2", "backup1")
    try:
        r = restore.execute(backups, rp)
    finally:
        restore.cleanup(backups, rp)
    return {"rto": r["seconds"], "estimate": rp.estimate_s, "wal": wal,
            "backup_size": rp.backup["size"]}


# -- RPO -----------------------------------------------------------------------------------
WRITER = r"""
import os, sys, time, psycopg
pause = float(sys.argv[1])
with psycopg.connect(os.environ["BENCH_URL"], autocommit=True) as c:
    n = 0
    while True:
        n += 1
        c.execute("insert into bench_rpo (n, at) values (%s, %s)", (n, time.time()))
        print(n, time.time(), flush=True)  # n is committed: the client has the answer
        if pause:
            time.sleep(pause)
"""

LIMITS = ("max_connections", "max_worker_processes", "max_wal_senders",
          "max_prepared_transactions", "max_locks_per_transaction")


def restore_latest(hs: Hosts, name: str, port: int, limits: str) -> float:
    """What an operator does once db1 is gone: the latest recoverable point onto db2 (a new
    Debian cluster, as pgops restores beside), replayed to the end of the archive, promoted."""
    data = f"/var/lib/postgresql/17/{name}"
    t0 = time.monotonic()
    hs.sh("db2", f"pg_createcluster 17 {name} --port {port} >/dev/null && "
                 f"pg_ctlcluster 17 {name} stop 2>/dev/null; find {data} -mindepth 1 -delete")
    hs.sh("db2", f"printf '%s' {shlex.quote(limits)} > /etc/postgresql/17/{name}/conf.d/50-restore.conf")
    hs.sh("db2", f"runuser -u postgres -- pgbackrest --stanza=db1 --pg1-path={data} "
                 "--archive-mode=off --target-timeline=current restore", timeout=7200)
    hs.sh("db2", f"systemctl start postgresql@17-{name}")
    deadline = time.monotonic() + 900
    while hs.lab.ssh("db2", f"cd / && runuser -u postgres -- psql -XAtq -p {port} "
                            "-c 'select pg_is_in_recovery()'", check=False).stdout.strip() != "f":
        if time.monotonic() > deadline:
            sys.exit(f"db2: cluster {name} did not finish recovery:\n" + hs.sh(
                "db2", f"tail -n 20 /var/log/postgresql/postgresql-17-{name}.log"))
        time.sleep(0.2)
    return time.monotonic() - t0


def archive_all(hs: Hosts, timeout: float = 300) -> None:
    """A commit, a WAL switch, and wait until that segment is in the repository."""
    count = "select archived_count from pg_stat_archiver"
    before = int(hs.psql("db1", count))
    hs.psql("db1", "select txid_current()")
    hs.psql("db1", "select pg_switch_wal()")
    deadline = time.monotonic() + timeout
    while int(hs.psql("db1", count)) <= before:
        if time.monotonic() > deadline:
            sys.exit("db1: the WAL switch was not archived in time")
        time.sleep(0.2)


def wait_up(hs: Hosts, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while hs.lab.ssh("db1", "cd / && runuser -u postgres -- psql -XAtq -c 'select 1'",
                     check=False, timeout=30).stdout.strip() != "1":
        if time.monotonic() > deadline:
            sys.exit("db1 did not come back after `docker start`")
        time.sleep(1)


def rpo(hs: Hosts, url: str, limits: str, run: int, load: bool, pause: float,
        seconds: float, check_pgops: bool = False) -> dict:
    """Commit numbered rows (and pgbench if `load`), kill db1's container, restore the
    latest point onto db2 and compare."""
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("drop table if exists bench_rpo")
        c.execute("create table bench_rpo (n bigint primary key, at double precision)")
    archive_all(hs)  # the empty table is in the archive: only rows can be lost
    pgb = None
    if load:
        pgb = subprocess.Popen([*hs.lab.ssh_args(hs.lab.host("db1")),
                                f"cd / && runuser -u postgres -- {BIN}/pgbench -n -c 4 -j 2 "
                                f"-T {int(seconds) + 600} bench"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Answers go to a file: a pipe nobody reads until the end would fill and stall the writer.
    answers = tempfile.TemporaryFile("w+")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(pause)],
                              env={**os.environ, "BENCH_URL": url}, stdout=answers,
                              stderr=subprocess.PIPE, text=True)
    time.sleep(seconds)
    arch = hs.psql("db1", "select coalesce(extract(epoch from now() - last_archived_time), -1), "
                          "archived_count from pg_stat_archiver").split("|")
    killed_at = time.time()
    subprocess.run(["docker", "kill", hs.container("db1")], check=True, capture_output=True)
    time.sleep(3)
    writer.terminate()
    _, err = writer.communicate(timeout=60)
    answers.seek(0)
    out = answers.read()
    if pgb:
        pgb.terminate()
        pgb.wait(timeout=60)
    # A line cut short by the terminate is not an answer the client saw.
    acked = {int(f[0]): float(f[1]) for f in (line.split() for line in out.splitlines())
             if len(f) == 2}
    if not acked:
        sys.exit(f"the writer committed nothing:\n{err[-2000:]}")
    last_acked = max(acked)

    pgops_restore = None
    if check_pgops:  # can pgops restore once the primary's host is gone?
        r = subprocess.run([PGOPS, "restore", "--to", restore.iso(killed_at - 10), "--host", "db1",
                            "--onto", "db2", "--plan"], cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
        pgops_restore = ("ok" if r.returncode == 0
                         else (r.stderr.strip() or r.stdout.strip()).splitlines()[-1])

    name, port = f"rpo_{run}", 5440 + run
    hs.drop_caches("db2", "backup1")
    rto = restore_latest(hs, name, port, limits)
    last = int(hs.psql("db2", "select coalesce(max(n), 0) from bench_rpo", db="app", port=port))
    hs.sh("db2", f"pg_dropcluster 17 {name} --stop")
    return {
        "load": load, "seconds": seconds, "acked": last_acked, "restored": last,
        "lost_tx": last_acked - last,
        # Seconds of acknowledged commits missing (all of them: counted from the first).
        "lost_s": acked[last_acked] - acked[last if last else min(acked)],
        "commit_rate": last_acked / (acked[last_acked] - acked[1]) if last_acked > 1 else 0,
        "archive_age_s": float(arch[0]), "rto": rto, "pgops_restore": pgops_restore,
    }


# -- the run -------------------------------------------------------------------------------
def allow_replication(hs: Hosts) -> None:
    """The bench's hostssl replication line for backup1 on db1, again after a `pgops deploy`
    (which owns pg_hba.conf and rewrites it)."""
    line = f"hostssl replication bench_repl {hs.lab.host('backup1').address}/32 scram-sha-256"
    hs.sh("db1", f"grep -qxF '{line}' {HBA} || {{ echo '{line}' >> {HBA} && runuser -u postgres "
                 "-- psql -XAtqc 'select pg_reload_conf()' >/dev/null; }")


def setup_basebackup(hs: Hosts) -> None:
    """pg_basebackup on backup1: the client package, a replication role, one hostssl line."""
    password = os.urandom(12).hex()
    hs.sh("backup1", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
                     "postgresql-client-17 >/dev/null", timeout=900)
    hs.lab.ssh("db1", "cd / && runuser -u postgres -- psql -XAtq -f -",
               input=f"create role bench_repl login replication password '{password}';\n")
    allow_replication(hs)
    db1 = hs.lab.host("db1").address
    hs.lab.ssh("backup1", "umask 077 && cat > /root/.pgpass",
               input=f"{db1}:5432:replication:bench_repl:{password}\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="10,50,100,200",
                    help="pgbench scales for the RTO rows; the last is used for everything else")
    ap.add_argument("--tenants", type=int, default=30, help="pgops seed --tenants")
    ap.add_argument("--kb-per-tenant", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the throughput comparison")
    ap.add_argument("--cpus", type=float, default=2, help="CPUs per lab host (PGOPS_LAB_CPUS)")
    ap.add_argument("--load-seconds", type=int, default=20, help="pgbench -R 100 before each PITR")
    ap.add_argument("--rpo-seconds", type=float, default=30, help="writing under load before the kill")
    ap.add_argument("--light-seconds", type=float, default=90, help="light writing before the kill")
    ap.add_argument("--keep", action="store_true", help="keep the bench lab afterwards")
    a = ap.parse_args()
    scales = [int(x) for x in a.scales.split(",")]
    started = time.monotonic()
    lab = Lab("bench")
    hs = Hosts(lab)
    quiet = lambda m: None  # noqa: E731
    # Never stop the engine: other labs may run on it.
    lab.down(say=quiet, stop_engine=False)
    tls_inv = None
    try:
        say(f"lab up (db1, db2, backup1; {a.cpus:g} CPUs / 2 GiB each) and deploy")
        pgops("lab", "up", "--hosts", "2", env={**os.environ, "PGOPS_LAB_CPUS": f"{a.cpus:g}"})
        pgops("deploy")
        setup_basebackup(hs)
        tls_inv = tls_inventory(Path(tempfile.mkdtemp(prefix="pgops-bench-")))
        say(f"seeding {a.tenants} tenants x {a.kb_per_tenant} knowledge-base rows")
        pgops("seed", "--tenants", str(a.tenants), "--kb-per-tenant", str(a.kb_per_tenant))
        kb = hs.psql("db1", "select pg_total_relation_size('knowledge_base'), count(*) "
                            "from knowledge_base", db="app").split("|")
        backups = backup.connect(INVENTORY, "db1")
        conf = hs.sh("backup1", "grep -E '^(process-max|compress-type|repo1-cipher-type)=' "
                                "/etc/pgbackrest/pgbackrest.conf")
        repo_conf = dict(line.split("=", 1) for line in conf.split())
        pm = int(repo_conf["process-max"])

        rto_rows, thr, cold = [], {}, True
        for i, scale in enumerate(scales):
            say(f"pgbench scale {scale}")
            init_pgbench(hs, backups, scale)
            size = data_bytes(hs)
            if i == len(scales) - 1:
                thr, cold = throughput(hs, backups, pm, a.rounds, tls_inv)
                full_s = thr[next(iter(thr))][0]
            else:
                hs.drop_caches("db1", "backup1")
                full_s = backup.take(backups, "db1", "full")["seconds"]
            say(f"PITR at scale {scale}")
            rto_rows.append({"scale": scale, "size": size, "full_s": full_s,
                             **pitr(hs, backups, a.load_seconds)})
        main_size = size

        say("restore and delta restore")
        rs = restores(hs, backups)

        say("RPO: settings in force")
        settings = dict(line.split("|") for line in hs.psql(
            "db1", "select name, setting || coalesce(unit, '') from pg_settings where name in "
                   "('archive_mode', 'archive_timeout', 'synchronous_commit', 'wal_segment_size', "
                   "'checkpoint_timeout', 'max_wal_size') order by name").splitlines())
        db_conf = hs.sh("db1", "grep -E '^(archive-async|process-max|compress-type)=' "
                               "/etc/pgbackrest/pgbackrest.conf").split()
        limits = "".join(f"{line.replace('|', ' = ')}\n" for line in hs.psql(
            "db1", "select name, setting from pg_settings where name in "
                   f"({', '.join(repr(x) for x in LIMITS)})").splitlines())
        url = inventory_target(None, "db1", "migrator", None).url
        # Light load first, on a primary that never crashed; then under load; then light load
        # again right after a crash restart (archive_timeout then waits for a checkpoint).
        scenarios = [("writer only, 10/s", False, 0.1, a.light_seconds, False),
                     ("writer + pgbench -c 4", True, 0, a.rpo_seconds, True),
                     ("10/s, just after restart", False, 0.1, a.light_seconds, True)]
        rpo_rows = []
        for run, (label, load, pause, seconds, restart) in enumerate(scenarios, 1):
            if restart:
                say("docker start db1 (crash recovery)")
                subprocess.run(["docker", "start", hs.container("db1")], check=True,
                               capture_output=True)
                wait_up(hs)
            say(f"RPO: {label} for {seconds:g} s, then docker kill db1")
            rpo_rows.append({"label": label, **rpo(hs, url, limits, run, load, pause, seconds,
                                                        check_pgops=run == 1)})
        elapsed = time.monotonic() - started

        # -- report ------------------------------------------------------------------------
        scale = scales[-1]
        print(f"data: pgbench scale {scale} + knowledge base {int(kb[1])} vectors "
              f"({int(kb[0]) / MB:.0f} MB with its HNSW index): data directory {main_size / MB:.0f} MB "
              f"(pg_wal excluded; MB = 10^6 bytes)")
        print(f"hosts: {a.cpus:g} CPUs / 2 GiB each on a {os.cpu_count()}-core machine; "
              f"repository {repo_conf['compress-type']}, {repo_conf['repo1-cipher-type']}, "
              f"process-max {pm}; page cache of db1 and backup1 "
              f"{'reclaimed before each run' if cold else 'NOT reclaimed (no cgroup knob)'}")
        print()
        print(f"full backup of db1, median of {a.rounds}                seconds     MB/s   "
              "written MB   CPU s  MB/CPU s  runs")
        for name, (s, runs, w, c) in thr.items():
            cpu = f"{c:7.1f} {main_size / MB / c:9.0f}" if c else f"{'-':>7} {'-':>9}"
            print(f"  {name:<45} {s:7.2f} {main_size / MB / s:8.0f}   {w / MB if w else 0:10.0f} "
                  f"{cpu}  {[round(x, 1) for x in runs]}")
        names = list(thr)
        rate = {n: main_size / MB / thr[n][0] for n in names}
        ours, plain, client, server, raw = (rate[n] for n in (names[0], names[2], names[3], names[4],
                                                              names[5]))
        tls = rate[names[6]]
        literal, fastest = max(plain, client), max(plain, client, server)
        print("  ratios (goal >= 1)                        over SSH   over TLS")
        for label, base in (("/ pg_basebackup plain", plain),
                            ("/ pg_basebackup --compress=lz4 (client)", client),
                            ("/ faster of those two (the issue's forms)", literal),
                            ("/ pg_basebackup server-side lz4", server),
                            ("/ fastest pg_basebackup form measured", fastest),
                            ("/ raw read", raw)):
            print(f"  {label:<42} {ours / base:6.2f} x {tls / base:8.2f} x")
        print(f"  over TLS / over SSH                        {tls / ours:6.2f} x")
        print()
        rb = rs["restored_bytes"]
        print("restore on db2 into a scratch directory (latest backup)    seconds     MB/s")
        print(f"  restore (empty directory)                           {rs['restore']:7.2f} "
              f"{rb / MB / rs['restore']:8.0f}")
        print(f"  delta restore over that unchanged copy              {rs['delta_same']:7.2f} "
              f"{rb / MB / rs['delta_same']:8.0f}")
        print(f"  delta restore after 30 s pgbench + incr             {rs['delta_changed']:7.2f} "
              f"{rb / MB / rs['delta_changed']:8.0f}   (incr: {rs['incr_delta'] / MB:.0f} MB "
              f"changed, {rs['incr_repo'] / MB:.0f} MB in the repository)")
        print(f"  ratio restore / delta (unchanged, changed)          "
              f"{rs['restore'] / rs['delta_same']:5.2f} x, {rs['restore'] / rs['delta_changed']:5.2f} x")
        print()
        print(f"PITR onto db2 (pgops.backup.restore: restore + replay + promote + connect), "
              f"after {a.load_seconds} s of pgbench -R 100")
        print("  scale  data MB  full backup s  MB/s  WAL replayed MB  RTO s  plan estimate s")
        for r in rto_rows:
            mbps = r["size"] / MB / r["full_s"]
            print(f"  {r['scale']:5d} {r['size'] / MB:8.0f} {r['full_s']:14.2f} {mbps:5.0f}"
                  f" {r['wal'] / MB:16.1f} {r['rto']:6.1f} {r['estimate']:16.1f}")
        print()
        print("RPO: docker kill of db1 while a client commits numbered rows; latest point restored onto db2")
        print(f"  settings: {', '.join(f'{k}={v}' for k, v in settings.items())}; "
              f"db1 pgBackRest {', '.join(db_conf)}")
        print("  load                      commits/s  acked  restored  lost tx  lost s  "
              "last archived, s before kill  restore-latest s")
        for r in rpo_rows:
            print(f"  {r['label']:<25} {r['commit_rate']:9.0f} {r['acked']:6d} {r['restored']:9d} "
                  f"{r['lost_tx']:8d} {r['lost_s']:7.1f} {r['archive_age_s']:29.1f} {r['rto']:17.1f}")
        print(f"  pgops restore --plan with db1 down: {rpo_rows[0]['pgops_restore']}")
        print()
        print(f"bench run time {elapsed / 60:.1f} min")
    finally:
        if tls_inv:
            shutil.rmtree(tls_inv.parent, ignore_errors=True)
        if not a.keep:
            lab.down(say=quiet, stop_engine=False)


if __name__ == "__main__":
    main()
