"""Point-in-time restore, proven: a writer commits numbered rows while a full and a
differential backup run; restored to times between commits, the copy holds exactly the rows
committed by then. Copies never archive into the repository; in-place restore needs --yes."""

from __future__ import annotations

import json
import subprocess
import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from pgops.backup.restore import iso
from pgops.client.targets import inventory_target
from pgops.lab.pitr import Writer, fresh_table
from tests.lab.conftest import BIN, PROJECT_ROOT, pgops

PSQL = "cd / && runuser -u postgres -- psql -XAtq"


def sql(lab, host: str, query: str, port: int = 5432, db: str = "app") -> str:
    return lab.ssh(host, f"{PSQL} -p {port} -d {db} -c \"{query}\"").stdout.strip()


def archive_all(lab, host: str) -> None:
    """Switch WAL and wait until the segment is in the repository."""
    before = int(sql(lab, host, "select archived_count from pg_stat_archiver", db="postgres"))
    sql(lab, host, "select txid_current()", db="postgres")  # a commit, then the switch closing it
    sql(lab, host, "select pg_switch_wal()", db="postgres")
    deadline = time.monotonic() + 60
    while int(sql(lab, host, "select archived_count from pg_stat_archiver", db="postgres")) <= before:
        assert time.monotonic() < deadline, "WAL was not archived within 60 s"
        time.sleep(0.5)


def fresh_probe_table(host: str) -> str:
    """An empty pitr_probe table in the host's app database; returns the migrator's URL."""
    url = inventory_target(None, host, "migrator", None).url
    fresh_table(url)
    return url


@pytest.fixture(scope="module")
def history(lab, first_deploy):
    """Full backup, then 40 rows written 0.25 s apart with a diff backup in the middle."""
    url = fresh_probe_table("db1")
    pgops("backup", "--type", "full", "--host", "db1")
    w = Writer(url, 40)
    w.start()
    while len(w.done) < 15:
        time.sleep(0.1)
    diff = pgops("backup", "--type", "diff", "--host", "db1")
    w.join()
    assert w.error is None, w.error
    archive_all(lab, "db1")
    [st] = json.loads(pgops("backup", "list", "--host", "db1", "--json").stdout)
    diff_stop = st["backups"][-1]["stop"]
    assert st["backups"][-1]["type"] == "diff" and "diff backup" in diff.out
    return w, diff_stop


def restored_rows(lab, result: dict) -> list[int]:
    out = sql(lab, result["host"], "select coalesce(string_agg(n::text, ',' order by n), '') "
                                   "from pitr_probe", port=result["port"])
    return [int(x) for x in out.split(",") if x]


def drop(lab, result: dict) -> None:
    """The copy dropped as the restore's output tells the user to: nothing of it is left."""
    major, name = result["cluster"].split("/")
    lab.ssh(result["host"], f"pg_dropcluster {major} {name} --stop")
    left = lab.ssh(result["host"], f"ls -d /etc/postgresql/{major}/{name} "
                                   f"{result['data_directory']} 2>/dev/null; true").stdout
    assert left.strip() == "", f"pg_dropcluster left {left}"


def restores_exactly(lab, k: int, to: str, *args: str, env: dict | None = None) -> None:
    """`pgops restore ARGS --to TO --json`, TO between rows k and k+1, gives a copy holding
    exactly rows 1..k; the copy is dropped."""
    result = json.loads(pgops("restore", *args, "--to", to, "--json", env=env).stdout)
    try:
        assert restored_rows(lab, result) == list(range(1, k + 1)), f"target after row {k}"
    finally:
        drop(lab, result)


def test_restore_is_exact_at_several_times(lab, history):
    w, diff_stop = history
    after_diff = next(k for k in sorted(w.done) if w.done[k] > diff_stop + 0.3 and k < 40)
    # (Random targets over a longer history: bench/pitr_soak.py, sampled by test_pitr_soak.py.)
    for k in (after_diff, 33):
        target = w.gap_after(k)
        r = pgops("restore", "--to", iso(target), "--host", "db1", "--json")
        result = json.loads(r.stdout)
        try:
            assert result["port"] != 5432
            assert result["data_directory"].startswith("/var/lib/postgresql/17/restore_")
            assert restored_rows(lab, result) == list(range(1, k + 1)), f"target after row {k}"
            assert result["verify"]["schema_version"] >= 3
            assert sql(lab, result["host"], "select pg_is_in_recovery()", port=result["port"]) == "f"
            assert sql(lab, result["host"], "show archive_mode", port=result["port"]) == "off"
            # Applications can be pointed at it, as its output says: over the network, TLS,
            # the application's role and password (the host's access, not Debian's default).
            info = conninfo_to_dict(inventory_target(None, "db1", "migrator", None).url)
            info.update(host=result["address"], port=result["port"], connect_timeout=5)
            assert info["sslmode"] == "verify-full"  # the host's certificate, not snakeoil
            with psycopg.connect(**info) as c:
                assert c.execute("select count(*) from pitr_probe").fetchone()[0] == k
                assert c.pgconn.ssl_in_use
        finally:
            drop(lab, result)
        assert "restore plan" in r.out and "expected about" in r.out


def test_copies_never_archive_into_the_repository(lab, history):
    listing = lab.ssh("backup1", "find /var/lib/pgbackrest/archive/db1 -name '*.history' "
                                 "-o -name '00000002*' | head").stdout
    assert listing.strip() == "", f"a restored copy archived into the repository: {listing}"
    # The live cluster still archives, and a later restore of it is still exact.
    w, _ = history
    archive_all(lab, "db1")
    restores_exactly(lab, 20, iso(w.gap_after(20)), "--host", "db1")


def test_two_restores_at_once_on_one_host_make_two_copies(lab, history):
    """A timer's drill and a user's restore may overlap on a host: each copy has its own name
    and port (reserved while it is restored, before it is a cluster), and each is exact."""
    w, _ = history
    targets = {k: iso(w.gap_after(k)) for k in (12, 27)}
    runs = {k: subprocess.Popen([str(BIN / "pgops"), "restore", "--to", t, "--host", "db1", "--json"],
                                cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for k, t in targets.items()}
    results = {}
    for k, p in runs.items():
        out, errs = p.communicate(timeout=600)
        assert p.returncode == 0, errs[-3000:]
        results[k] = json.loads(out)
    try:
        assert len({r["cluster"] for r in results.values()}) == 2, results
        assert len({r["port"] for r in results.values()}) == 2, results
        for k, r in results.items():
            assert restored_rows(lab, r) == list(range(1, k + 1)), f"target after row {k}"
    finally:
        for r in results.values():
            drop(lab, r)


def test_time_outside_the_window_is_refused(history):
    r = pgops("restore", "--to", "2001-01-01T00:00:00Z", "--host", "db1", check=False)
    assert r.rc == 2 and "is outside the recoverable window of db1" in r.out
    r = pgops("restore", "--to", "yesterday-ish", "--host", "db1", check=False)
    assert r.rc == 2 and "not a time" in r.out


def test_in_place_needs_yes_then_works_and_backups_continue(lab, first_deploy):
    url = fresh_probe_table("db2")
    pgops("backup", "--type", "full", "--host", "db2")
    w = Writer(url, 12)
    w.run()
    archive_all(lab, "db2")
    target = iso(w.gap_after(6))
    started = sql(lab, "db2", "select pg_postmaster_start_time()")
    refused = pgops("restore", "--to", target, "--host", "db2", "--in-place", check=False)
    assert refused.rc == 2 and "add --yes" in refused.out
    assert sql(lab, "db2", "select pg_postmaster_start_time()") == started  # nothing happened
    r = json.loads(pgops("restore", "--to", target, "--host", "db2", "--in-place", "--yes",
                         "--json").stdout)
    assert r["in_place"] and r["port"] == 5432
    assert sql(lab, "db2", "select string_agg(n::text, ',' order by n) from pitr_probe") == "1,2,3,4,5,6"
    assert sql(lab, "db2", "select timeline_id from pg_control_checkpoint()", db="postgres") != "1"
    # Archiving and backups go on, on the new timeline.
    archive_all(lab, "db2")
    assert "incr backup" in pgops("backup", "--type", "incr", "--host", "db2").out
    assert sql(lab, "db2", "select failed_count from pg_stat_archiver", db="postgres") == "0"


def test_restore_latest_onto_another_host_while_the_source_is_down(lab, first_deploy):
    """The 3 a.m. case: db2 is gone (Postgres stopped, SSH down). Its backups are still in the
    repository: `--to latest` restores everything archived onto db1, and restoring beside
    on the dead host is refused with the way out."""
    url = fresh_probe_table("db2")
    w = Writer(url, 8, pause=0.1)
    w.run()
    assert w.error is None, w.error
    archive_all(lab, "db2")
    container = lab.host("db2").container
    lab.ssh("db2", "systemctl stop postgresql@17-main")
    subprocess.run(["docker", "exec", container, "systemctl", "stop", "ssh.service"], check=True)
    try:
        beside = pgops("restore", "--host", "db2", "--to", "latest", check=False)
        assert beside.rc == 2 and "db2 is unreachable" in beside.out and "--onto" in beside.out
        plan = pgops("restore", "--host", "db2", "--onto", "db1", "--to", "latest", "--plan")
        assert "the end of the archive" in plan.out and "db2 is unreachable" in plan.out
        result = json.loads(pgops("restore", "--host", "db2", "--onto", "db1", "--to", "latest",
                                  "--json").stdout)
        try:
            assert result["host"] == "db1"
            assert restored_rows(lab, result) == list(range(1, 9))
        finally:
            drop(lab, result)
    finally:
        subprocess.run(["docker", "exec", container, "systemctl", "start", "ssh.service"], check=True)
        deadline = time.monotonic() + 30
        while lab.ssh("db2", "true", check=False).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        lab.ssh("db2", "systemctl start postgresql@17-main")
