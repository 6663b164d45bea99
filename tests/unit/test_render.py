"""Human output of `pgops restore` and `pgops drill`, drawn by cli.render from their results."""

from __future__ import annotations

from pgops.cli import render

RESULT = {"host": "db2", "address": "10.0.0.12", "port": 5433, "cluster": "17/restore_20270115080000",
          "data_directory": "/var/lib/postgresql/17/restore_20270115080000",
          "target_time": "2027-01-15T08:00:00.000000+00:00", "backup": "F", "in_place": False,
          "seconds": 12.34, "verify": {"connected": True, "schema_version": 3,
                                       "row_counts": {"public.a": 2, "public.b": 5}}}


def test_a_restore_beside_says_how_to_switch_over_and_remove_the_copy(capsys):
    render.restore_result("db1", RESULT)
    assert capsys.readouterr().out.splitlines() == [
        "restored db1 to 2027-01-15T08:00:00.000000+00:00 on 10.0.0.12:5433 in 12.3 s; "
        "schema version 3, 7 rows in 2 tables",
        "the restored copy runs on 10.0.0.12:5433 (cluster 17/restore_20270115080000); point "
        "applications at it, or restore in place with `pgops restore --to "
        "'2027-01-15T08:00:00.000000+00:00' --host db1 --in-place --yes`; remove it with "
        "`pg_dropcluster 17 restore_20270115080000 --stop` on db2"]


def test_a_restore_in_place_says_only_what_was_restored(capsys):
    render.restore_result("db1", {**RESULT, "host": "db1", "cluster": "17/main", "in_place": True})
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith("restored db1 to ")


def test_drill_results(capsys):
    render.drill_results([
        {"host": "db1", "target_time": "t1", "ok": True, "rto_s": 9.5,
         "verify": {"row_counts": {"public.a": 2}}},
        {"host": "db2", "target_time": "t2", "ok": False, "rto_s": None, "error": "boom"}])
    assert capsys.readouterr().out.splitlines() == [
        "db1: drill to t1 ok; RTO 9.5 s; 2 rows checked",
        "db2: drill to t2 FAILED: boom; RTO - s; 0 rows checked"]


def test_status_shows_pg_wal_and_its_disk_with_the_alert(capsys):
    wal = {"wal_bytes": 48 * 2**20, "fs_size_bytes": 100 * 2**30, "fs_free_bytes": 5 * 2**30,
           "fs_used_percent": 95.0}
    render.status([{"host": "db1", "address": "10.0.0.11", "up": True, "wal": wal,
                    "alerts": ["pg_wal's filesystem is 95% full"]},
                   {"host": "db2", "address": "10.0.0.12", "up": False}], "lab")
    out = capsys.readouterr().out
    [line] = [x for x in out.splitlines() if "db1" in x and "95%" in x]
    assert "48" in line and "pg_wal's" in line and "pg_wal and its disk" in out
    assert not [x for x in out.splitlines() if "db2" in x and "%" in x]  # down: no disk row
