"""Faults on the single-host lab, each printing its figure: `kill -9` of pgBackRest and of the
postmaster during a full backup; the network between a database host and the repository cut
(iptables inside the host) while a small pg_wal volume fills; the repository full; a database
host restarted. After each:
the repository verifies clean, backups go on, and a point-in-time restore across the fault
holds exactly the rows committed by then."""

from __future__ import annotations

import json
import re
import threading
import time

from pgops.backup.backrest import REPO_USER
from pgops.backup.restore import iso
from pgops.backup.rules import REPO_HOME
from pgops.lab import Lab
from pgops.lab.faults import LAB_CLUSTER, docker
from tests.lab.conftest import pgops
from tests.lab.test_restore import archive_all, fresh_probe_table, restores_exactly, sql

#: On `host`, wait for a process whose command line matches `pattern` (pgrep -f), let it run
#: `delay` s, then kill -9 `target` (a pid or $(...)); prints "killed <pid>" or exits 1.
KILL_DURING = r"""
for i in $(seq 1 600); do
  p=$(pgrep -f -- '{pattern}' | head -1)
  if [ -n "$p" ]; then sleep {delay}; t={target}; kill -9 $t && echo "killed $t" && exit 0; fi
  sleep 0.05
done
exit 1
"""


def verify(lab: Lab, stanza: str) -> str:
    """`pgbackrest verify` of a stanza on the repository host: checksums of every backup file
    and archived WAL segment; fails the test on any error."""
    out = lab.ssh("backup1", f"cd / && runuser -u pgbackrest -- pgbackrest --stanza={stanza} verify "
                             "--log-level-console=info").stdout
    assert "verify command end: completed successfully" in out, out[-2000:]
    return out


def insert(lab: Lab, host: str, first: int, last: int) -> float:
    """Commit rows first..last of pitr_probe, one transaction each; the time after the last."""
    sql(lab, host, f"do \\$\\$ begin for i in {first}..{last} loop insert into pitr_probe (n) values (i); "
                   "commit; end loop; end \\$\\$")
    return time.time()


def backup_killed(lab: Lab, on: str, pattern: str, target: str, delay: float) -> tuple[object, str]:
    """Start `pgops backup --type full --host db1`, kill -9 `target` on `on` once a process
    matching `pattern` has run `delay` s: (the pgops run, the killer's output)."""
    killer: dict[str, str] = {}
    script = KILL_DURING.format(pattern=pattern, delay=delay, target=target)
    t = threading.Thread(target=lambda: killer.update(out=lab.ssh(on, script, check=False).stdout))
    t.start()
    time.sleep(0.5)  # the killer is watching
    run = pgops("backup", "--type", "full", "--host", "db1", check=False)
    t.join(timeout=60)
    return run, killer.get("out", "")


def test_kill_9_during_a_full_backup_fails_it_cleanly_and_loses_nothing(lab, first_deploy):
    fresh_probe_table("db1")
    insert(lab, "db1", 1, 5)
    pgops("backup", "--type", "full", "--host", "db1")  # the base the restore below starts from
    insert(lab, "db1", 6, 10)
    before = json.loads(pgops("backup", "list", "--host", "db1", "--json").stdout)[0]["backups"]

    # pgBackRest killed on the repository host, where the backup command runs.
    run, killed = backup_killed(lab, "backup1", r"^pgbackrest .*--type=full backup$",
                                "$p", delay=0.3)
    print(f"kill -9 of pgBackRest during a full backup: {killed.strip()}; pgops exit {run.rc}: "
          f"{run.out.strip().splitlines()[-1]}")
    assert killed.startswith("killed") and run.rc != 0 and "failed" in run.out, (killed, run.out)
    assert "db1" in run.out and "Traceback" not in run.out
    insert(lab, "db1", 11, 15)

    # The postmaster killed on the database host while its side of the backup runs.
    pid = f"$(head -1 {LAB_CLUSTER.data}/postmaster.pid)"
    started = time.monotonic()
    run, killed = backup_killed(lab, "db1", r"^/usr/bin/pgbackrest .*backup:remote$", pid, delay=0.3)
    assert killed.startswith("killed") and run.rc != 0 and "failed" in run.out, (killed, run.out)
    assert "db1" in run.out and "Traceback" not in run.out
    deadline = time.monotonic() + 60  # systemd starts it again (pgops's drop-in)
    while lab.ssh("db1", "cd / && runuser -u postgres -- pg_isready -q", check=False).returncode:
        assert time.monotonic() < deadline, "PostgreSQL did not come back after its postmaster was killed"
        time.sleep(0.5)
    back = time.monotonic() - started
    print(f"kill -9 of the postmaster during a full backup: pgops exit {run.rc}: "
          f"{run.out.strip().splitlines()[-1]}; PostgreSQL serving again {back:.1f} s after the kill")
    t = insert(lab, "db1", 16, 20)
    time.sleep(0.2)
    insert(lab, "db1", 21, 25)
    archive_all(lab, "db1")

    # No failed backup is listed as one; the repository is consistent; the next one works.
    after = json.loads(pgops("backup", "list", "--host", "db1", "--json").stdout)[0]["backups"]
    assert [b["label"] for b in after] == [b["label"] for b in before]
    verify(lab, "db1")
    assert "full backup" in pgops("backup", "--type", "full", "--host", "db1").out
    # A restore from the backup before both faults, replaying WAL across them, is exact.
    restores_exactly(lab, 20, iso(t + 0.1), "--host", "db1")


WALVOL = "/var/lib/postgresql/pgops-fault-walvol"
WALVOL_MB = 384
#: pg_wal on a small volume of its own (a tmpfs), the server restarted on it.
WAL_ON_VOLUME = f"""set -e
systemctl stop {{unit}}
mkdir -p {WALVOL} && mount -t tmpfs -o size={WALVOL_MB}m,mode=700 tmpfs {WALVOL}
chown postgres:postgres {WALVOL}
cp -a {{data}}/pg_wal/. {WALVOL}/ && mv {{data}}/pg_wal {{data}}/pg_wal.pgops-fault
ln -s {WALVOL} {{data}}/pg_wal
systemctl start {{unit}}
"""
#: Back to pg_wal in the data directory, with the WAL the volume holds now.
WAL_BACK = f"""set -e
systemctl stop {{unit}}
if [ -L {{data}}/pg_wal ]; then
  rm {{data}}/pg_wal && rm -rf {{data}}/pg_wal.pgops-fault && mkdir -m 700 {{data}}/pg_wal
  cp -a {WALVOL}/. {{data}}/pg_wal/ && chown -R postgres:postgres {{data}}/pg_wal
fi
umount {WALVOL} 2>/dev/null || true
systemctl start {{unit}}
"""
#: WAL kept no longer than needed (pgops's defaults keep 1 GB), so that once archiving
#: catches up a checkpoint gives the volume back.
SMALL_WAL = ("alter system set min_wal_size = '64MB'", "alter system set max_wal_size = '128MB'",
             "select pg_reload_conf()")
DEFAULT_WAL = ("alter system reset min_wal_size", "alter system reset max_wal_size",
               "select pg_reload_conf()")


def each(lab: Lab, host: str, statements: tuple[str, ...]) -> None:
    """Statements one at a time (ALTER SYSTEM refuses a transaction block)."""
    lab.ssh(host, "cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 "
                  + " ".join(f'-c "{s}"' for s in statements))


def walvol_used(lab: Lab, host: str) -> float:
    out = lab.ssh(host, f"df --output=pcent {WALVOL} | tail -1").stdout
    return float(out.strip().rstrip("%"))


def failed_pushes(lab: Lab, host: str) -> int:
    return int(sql(lab, host, "select failed_count from pg_stat_archiver", db="postgres"))


def ready_segments(lab: Lab, host: str) -> int:
    return int(sql(lab, host, "select count(*) from pg_ls_archive_statusdir() where name like '%.ready'",
                   db="postgres"))


def test_repository_cut_off_wal_queues_on_a_small_volume_status_warns_then_catches_up(lab, first_deploy,
                                                                                     tmp_path):
    host, repo = "db2", lab.host("backup1").address
    unit, data = LAB_CLUSTER.service, LAB_CLUSTER.data
    block = f"OUTPUT -d {repo} -j DROP"
    fresh_probe_table(host)
    pgops("backup", "--type", "full", "--host", host)
    lab.ssh(host, "command -v iptables >/dev/null || DEBIAN_FRONTEND=noninteractive "
                  "apt-get install -y -qq --no-install-recommends iptables >/dev/null")
    each(lab, host, SMALL_WAL)
    lab.ssh(host, WAL_ON_VOLUME.format(unit=unit, data=data))
    try:
        insert(lab, host, 1, 5)
        failed = failed_pushes(lab, host)
        lab.ssh(host, f"iptables -I {block}")  # silent: no reset, no ICMP
        cut = time.monotonic()
        try:
            insert(lab, host, 6, 10)
            t = insert(lab, host, 11, 15)
            time.sleep(0.2)
            insert(lab, host, 16, 20)
            # No autovacuum on it: its WAL would go on filling the volume behind the test's back.
            sql(lab, host, "create table if not exists pgops_fault_filler (x text) "
                           "with (autovacuum_enabled = off)")
            while (used := walvol_used(lab, host)) < 92:  # WAL that cannot be archived piles up
                assert used < 98
                sql(lab, host, "insert into pgops_fault_filler select md5(random()::text) "
                               "from generate_series(1, 60000)")
            deadline = time.monotonic() + 150  # pgBackRest gives up on a push after 60 s
            while failed_pushes(lab, host) == failed:
                assert time.monotonic() < deadline, "archiving never failed while cut off"
                time.sleep(2)
            metrics = tmp_path / "pgops.prom"
            st = pgops("status", "--json", "--metrics-file", str(metrics), check=False)
            [row] = [r for r in json.loads(st.stdout) if r["host"] == host]
            print(f"repository cut off from {host}: pg_wal's volume {used:.0f}% full after "
                  f"{time.monotonic() - cut:.0f} s, {ready_segments(lab, host)} segments waiting; "
                  f"status exit {st.rc}: {row['alerts']}")
            assert st.rc == 1 and any("pg_wal's filesystem is" in a for a in row["alerts"]), row
            assert any("WAL archiving is failing" in a for a in row["backup"]["alerts"]), row
            assert row["wal"]["fs_size_bytes"] == WALVOL_MB * 2**20 and row["wal"]["fs_used_percent"] > 90
            assert f'pgops_server_alerts{{host="{host}"}} 1' in metrics.read_text()
            assert sql(lab, host, "select count(*) from pitr_probe") == "20"  # still serving
        finally:
            lab.ssh(host, f"iptables -D {block}")
        healed = time.monotonic()
        sql(lab, host, "select txid_current(); select pg_switch_wal()", db="postgres")  # wakes the archiver
        deadline = healed + 240
        while ready_segments(lab, host):
            assert time.monotonic() < deadline, f"archiving did not catch up: {ready_segments(lab, host)}"
            time.sleep(2)
        caught_up = time.monotonic() - healed
        sql(lab, host, "drop table pgops_fault_filler; checkpoint", db="app")
        sql(lab, host, "checkpoint", db="postgres")
        print(f"after the cut ({healed - cut:.0f} s): archive caught up in {caught_up:.0f} s; "
              f"pg_wal's volume {walvol_used(lab, host):.0f}% full after a checkpoint")
        assert walvol_used(lab, host) < 90
        st = pgops("status", "--json", check=False)
        [row] = [r for r in json.loads(st.stdout) if r["host"] == host]
        assert row["alerts"] == [], row
    finally:
        lab.ssh(host, WAL_BACK.format(unit=unit, data=data))
        each(lab, host, DEFAULT_WAL)
        sql(lab, host, "drop table if exists pgops_fault_filler")
    archive_all(lab, host)
    verify(lab, host)
    restores_exactly(lab, 15, iso(t + 0.1), "--host", host)


REPO_FULL = "/var/lib/pgops-fault-repo"
#: The repository's archive of one stanza moved onto a small volume of its own (a tmpfs with
#: `free_mb` left once what it holds is copied there), bound over its directory.
REPO_ON_VOLUME = f"""set -e
d={{archive}}; used_kib=$(du -sk "$d" | cut -f1)
mkdir -p {REPO_FULL}
mount -t tmpfs -o size=$((used_kib * 11 / 10 / 1024 + {{free_mb}}))m,mode=750 tmpfs {REPO_FULL}
cp -a "$d"/. {REPO_FULL}/
chown {{user}}:{{user}} {REPO_FULL}
mount --bind {REPO_FULL} "$d"
df -m --output=size,avail {REPO_FULL} | tail -1
"""
#: Space freed: the archive back in the repository's own directory, with what reached the volume.
REPO_BACK = f"""set -e
d={{archive}}
if mountpoint -q "$d"; then umount "$d"; fi
if mountpoint -q {REPO_FULL}; then
  find {REPO_FULL} -name '*.pgbackrest.tmp' -delete
  cp -a -n {REPO_FULL}/. "$d"/ && umount {REPO_FULL}
fi
"""


def test_a_full_repository_stops_archiving_status_alerts_then_it_catches_up(lab, first_deploy,
                                                                           tmp_path):
    host = "db2"
    archive = f"{REPO_HOME}/archive/{host}"
    fresh_probe_table(host)
    pgops("backup", "--type", "full", "--host", host)
    insert(lab, host, 1, 5)
    failed = failed_pushes(lab, host)
    size_mb, free_mb = lab.ssh("backup1", REPO_ON_VOLUME.format(archive=archive, free_mb=16,
                                                              user=REPO_USER)).stdout.split()
    full_at = time.monotonic()
    try:
        t = insert(lab, host, 6, 10)
        sql(lab, host, "create table if not exists pgops_fault_filler (x text) "
                       "with (autovacuum_enabled = off)")
        deadline = time.monotonic() + 240
        while failed_pushes(lab, host) == failed:  # WAL that no longer fits in the repository
            assert time.monotonic() < deadline, "archiving never failed on a full repository"
            sql(lab, host, "insert into pgops_fault_filler select md5(random()::text) "
                           "from generate_series(1, 60000)")
            sql(lab, host, "select pg_switch_wal()", db="postgres")
            time.sleep(1)
        avail_mb = int(lab.ssh("backup1", f"df -m --output=avail {REPO_FULL} | tail -1").stdout)
        log = lab.ssh(host, f"grep -h 'unable to write .{archive}/' /var/log/pgbackrest/*.log "
                            "| tail -1", check=False).stdout.strip()
        metrics = tmp_path / "pgops.prom"
        st = pgops("status", "--json", "--metrics-file", str(metrics), check=False)
        [row] = [r for r in json.loads(st.stdout) if r["host"] == host]
        print(f"repository full ({host}'s archive on a {size_mb} MiB volume, {free_mb} MiB free): "
              f"archiving failed after {time.monotonic() - full_at:.0f} s, "
              f"{ready_segments(lab, host)} segments waiting; status exit {st.rc}: "
              f"{row['backup']['alerts']}; {avail_mb} MiB left; pgBackRest: {log[-200:]}")
        # pgBackRest's write into the repository failed, with less left than a segment needs.
        assert "FileWriteError" in log and avail_mb < 10, (avail_mb, log)
        assert st.rc == 1 and any("WAL archiving is failing" in a for a in row["backup"]["alerts"]), row
        assert re.search(rf'pgops_alerts{{host="{host}"[^}}]*}} [1-9]', metrics.read_text())
        assert sql(lab, host, "select count(*) from pitr_probe") == "10"  # still serving
        insert(lab, host, 11, 15)
    finally:
        lab.ssh("backup1", REPO_BACK.format(archive=archive))
        freed = time.monotonic()
    sql(lab, host, "drop table if exists pgops_fault_filler")
    sql(lab, host, "select txid_current(); select pg_switch_wal()", db="postgres")  # wakes the archiver
    deadline = freed + 240
    while ready_segments(lab, host):
        assert time.monotonic() < deadline, f"archiving did not catch up: {ready_segments(lab, host)}"
        time.sleep(2)
    print(f"space freed: archiving caught up in {time.monotonic() - freed:.0f} s")
    archive_all(lab, host)
    verify(lab, host)
    st = pgops("status", "--json", check=False)
    [row] = [r for r in json.loads(st.stdout) if r["host"] == host]
    assert not any("archiving" in a for a in row["backup"]["alerts"]), row
    restores_exactly(lab, 10, iso(t + 0.1), "--host", host)


def test_a_restarted_database_host_serves_archives_and_backs_up_again(lab, first_deploy):
    """`docker restart` of a single database host: PostgreSQL comes back by itself (enabled
    unit), with the rows committed before; WAL archiving and backups go on."""
    host, unit = "db2", LAB_CLUSTER.service
    fresh_probe_table(host)
    insert(lab, host, 1, 5)
    t0 = time.monotonic()
    docker("restart", lab.host(host).container)
    deadline = t0 + 180
    while lab.ssh(host, f"systemctl is-active {unit}", check=False).stdout.strip() != "active":
        assert time.monotonic() < deadline, lab.ssh(host, f"systemctl status {unit}", check=False).stdout
        time.sleep(1)
    serving = time.monotonic() - t0
    assert sql(lab, host, "select count(*) from pitr_probe") == "5"
    t = insert(lab, host, 6, 10)
    archive_all(lab, host)
    incr = pgops("backup", "--type", "incr", "--host", host)
    print(f"{host} restarted: {unit} active again {serving:.1f} s after `docker restart`; "
          f"archiving and an incremental backup ({incr.seconds:.1f} s) went on")
    restores_exactly(lab, 10, iso(t + 0.1), "--host", host)
