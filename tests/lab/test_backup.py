"""pgBackRest in repository-host mode on the lab: stanza, backups of each type, WAL
archiving, the recoverable window, and encryption at rest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from pgops.facts.system import HasAesInstructions
from tests.lab.conftest import pgops, sql
from tests.lab.test_restore import drop


def listing(host: str = "db1") -> dict:
    [st] = json.loads(pgops("backup", "list", "--host", host, "--json").stdout)
    return st


def wait_archived(lab, host: str, before: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        count, failed = sql(lab, host, "select archived_count, failed_count from pg_stat_archiver").split("|")
        if int(count) > before:
            return {"archived": int(count), "failed": int(failed)}
        if time.monotonic() > deadline:
            raise AssertionError(f"{host}: no WAL archived within {timeout} s (failed {failed})")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def full(first_deploy):
    return pgops("backup", "--type", "full", "--host", "db1")


def test_deploy_created_the_stanzas_and_archiving_works(lab, first_deploy):
    assert "Stanza db1" in first_deploy.out and "Stanza db2" in first_deploy.out
    for h in ("db1", "db2"):
        assert sql(lab, h, "show archive_mode") == "on"
        before = int(sql(lab, h, "select archived_count from pg_stat_archiver"))
        sql(lab, h, "select txid_current()")  # a commit, so the switch has something to close
        sql(lab, h, "select pg_switch_wal()")
        state = wait_archived(lab, h, before)
        assert state["failed"] == 0


def test_pgbackrest_ssh_prefers_aes_gcm_where_the_cpu_has_aes(lab, first_deploy):
    """The repository host's connections to db1 and db1's to it negotiate AES-GCM (when this
    machine's CPU has AES instructions); root's SSH keeps OpenSSH's defaults."""
    fact = HasAesInstructions()
    aes = fact.process(lab.ssh("backup1", fact.command()).stdout.splitlines())
    want = "aes128-gcm@openssh.com" if aes else "chacha20-poly1305@openssh.com"
    db1, repo = lab.host("db1").address, lab.host("backup1").address
    for h, user, peer in (("backup1", "pgbackrest", f"postgres@{db1}"),
                          ("db1", "postgres", f"pgbackrest@{repo}")):
        r = lab.ssh(h, f"cd / && runuser -u {user} -- ssh -v -o BatchMode=yes {peer} "
                       "pgbackrest version 2>&1", check=False)
        assert "pgBackRest" in r.stdout and f"client->server cipher: {want}" in r.stdout, r.stdout
    root = lab.ssh("backup1", f"ssh -G {db1} | grep '^ciphers '").stdout
    assert not root.split()[1].startswith("aes128-gcm"), root


def test_archive_timeout_switches_wal_from_the_start_after_a_restart(lab, first_deploy):
    """Without pgops's drop-in, PostgreSQL 17 switches no WAL for archive_timeout until the
    first timed checkpoint after a start (checkpoint_timeout, 300 s here)."""
    sql(lab, "db2", "create table archive_probe (i int)")
    sql(lab, "db2", "alter system set archive_timeout = '5s'")
    try:
        lab.ssh("db2", "systemctl restart postgresql@17-main")
        first = sql(lab, "db2", "select pg_walfile_name(pg_current_wal_lsn())")
        deadline = time.monotonic() + 40
        while True:  # a write a second: WAL worth switching for
            now = sql(lab, "db2", "insert into archive_probe values (1); "
                                  "select pg_walfile_name(pg_current_wal_lsn())")
            if now != first:
                break
            assert time.monotonic() < deadline, f"db2: no WAL switch within 40 s of a restart ({now})"
            time.sleep(1)
    finally:
        sql(lab, "db2", "alter system reset archive_timeout")
        sql(lab, "db2", "select pg_reload_conf()")
        sql(lab, "db2", "drop table archive_probe")


def test_full_diff_incr_backups_and_the_window(lab, full):
    assert "db1: full backup" in full.out
    sql(lab, "db1", "create table if not exists probe_rows (n int)")
    sql(lab, "db1", "insert into probe_rows select generate_series(1, 1000)")
    assert "diff backup" in pgops("backup", "--type", "diff", "--host", "db1").out
    sql(lab, "db1", "insert into probe_rows select generate_series(1, 1000)")
    assert "incr backup" in pgops("backup", "--type", "incr", "--host", "db1").out
    st = listing()
    types = [b["type"] for b in st["backups"]]
    assert types[-3:] == ["full", "diff", "incr"], types
    for b in st["backups"]:
        assert b["start"] <= b["stop"] and b["size"] > 0 and b["wal_start"] and b["wal_stop"]
    w = st["window"]
    assert w["earliest"] == min(b["stop"] for b in st["backups"])
    assert w["earliest"] <= w["latest"]
    assert st["status"] == "ok" and st["archiver"]["failed_count"] == 0


def test_repository_is_encrypted_at_rest(lab, full):
    marker = f"pgops-plaintext-marker-{os.urandom(8).hex()}"
    sql(lab, "db1", "create table if not exists enc_probe (v text)")
    sql(lab, "db1", f"insert into enc_probe select '{marker}' from generate_series(1, 200)")
    sql(lab, "db1", "checkpoint")
    # The marker really is on disk in the cluster (so the check below could fail)...
    found = lab.ssh("db1", f"grep -rl {marker} /var/lib/postgresql/17/main/base | head -1").stdout
    assert found.strip()
    pgops("backup", "--type", "incr", "--host", "db1")
    sql(lab, "db1", "select pg_switch_wal()")
    time.sleep(2)
    # ...and nowhere in the repository, whose files are all OpenSSL-encrypted.
    r = lab.ssh("backup1", f"grep -rl {marker} /var/lib/pgbackrest", check=False)
    assert r.returncode == 1 and r.stdout == "", r.stdout
    heads = lab.ssh("backup1", "find /var/lib/pgbackrest/backup /var/lib/pgbackrest/archive -type f "
                               "\\( -name '*.lz4' -o -name 'bundle' -o -name '*-*' \\) | head -20 | "
                               "while read f; do head -c 8 \"$f\"; echo; done").stdout.split()
    assert heads and set(heads) == {"Salted__"}, heads


def test_the_passphrase_lives_only_on_the_repository_host(lab, first_deploy, secrets):
    passphrase = secrets["PGOPS_BACKUP_CIPHER_PASS"]
    assert passphrase not in first_deploy.out
    for h in ("db1", "db2"):
        r = lab.ssh(h, f"grep -rl -- '{passphrase}' /etc /var/lib/postgresql /var/log 2>/dev/null",
                    check=False)
        assert r.stdout == "", f"{h} holds the passphrase: {r.stdout}"
    mode = lab.ssh("backup1", "stat -c '%U:%G %a' /etc/pgbackrest/conf.d/secrets.conf").stdout.strip()
    assert mode == "root:pgbackrest 640"


def test_backup_of_a_host_without_backups_is_refused(first_deploy, write_inventory):
    inv = write_inventory(pg_backup_host=None)
    r = pgops("backup", "-i", str(inv), check=False)
    assert r.rc == 2 and "no database host" in r.out and "pg_backup_host" in r.out


def test_pg_backup_host_must_be_a_backup_server(first_deploy, write_inventory):
    inv = write_inventory(pg_backup_host="nosuchhost")
    r = pgops("deploy", "-i", str(inv), check=False)
    assert r.rc == 2
    assert "pg_backup_host: 'nosuchhost' is not a host of group backup_servers" in r.out


def test_retention_expires_old_fulls_and_keeps_pitr_coverage(lab, first_deploy):
    """repo1-retention-full=2 (pgops's default): a new full expires the oldest full with the
    WAL only it needed; the window starts at the oldest kept backup and a restore there works."""
    before = [b["label"] for b in listing("db2")["backups"]]
    taken = []
    for _ in range(3):
        sql(lab, "db2", "select txid_current()")
        pgops("backup", "--type", "full", "--host", "db2")
        taken.append(listing("db2")["backups"][-1]["label"])
    st = listing("db2")
    fulls = [b for b in st["backups"] if b["type"] == "full"]
    assert [b["label"] for b in fulls] == taken[-2:], (before, taken, fulls)
    assert not set(before) & {b["label"] for b in st["backups"]}
    # The oldest kept backup is restorable to a point in time: its WAL was kept.
    oldest = fulls[0]
    assert st["window"]["earliest"] == oldest["stop"]
    archive = lab.ssh("backup1", "ls /var/lib/pgbackrest/archive/db2/17-1/*/ | grep -v history "
                                 "| sort | head -1").stdout.strip()
    assert archive[:24] <= oldest["wal_start"], (archive, oldest)
    r = pgops("restore", "--host", "db2", "--to", str(oldest["stop"] + 1), "--json")
    result = json.loads(r.stdout)
    try:
        assert result["verify"]["schema_version"]
    finally:
        drop(lab, result)


def test_a_backup_taken_under_write_load_restores_and_passes_amcheck(lab, first_deploy):
    """pgbench writes on db1 for the whole of a full backup; the drill restores the latest
    point (backup plus the WAL written during it) and pg_amcheck finds nothing."""
    pg = "cd / && runuser -u postgres -- /usr/lib/postgresql/17/bin/pgbench"
    lab.ssh("db1", "cd / && runuser -u postgres -- createdb pgbench_load 2>/dev/null || true")
    lab.ssh("db1", f"{pg} -q -i -s 5 pgbench_load")
    load = subprocess.Popen([*lab.ssh_args(lab.host("db1")), f"{pg} -c 4 -j 1 -T 25 -n pgbench_load"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3)
        backup = pgops("backup", "--type", "full", "--host", "db1")
        assert load.poll() is None, "the load ended before the backup did: not a backup under load"
    finally:
        out, _ = load.communicate(timeout=120)
    tps = re.search(r"tps = ([\d.]+)", out)
    assert load.returncode == 0 and tps and float(tps.group(1)) > 0, out
    assert "full backup" in backup.out
    try:
        [drill] = json.loads(pgops("drill", "--host", "db1", "--point", "latest", "--json").stdout)
        assert drill["ok"] and drill["amcheck"] == "ok", drill
        assert drill["verify"]["row_counts"], drill
    finally:
        lab.ssh("db1", "cd / && runuser -u postgres -- dropdb --if-exists pgbench_load")
