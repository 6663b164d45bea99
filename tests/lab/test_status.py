"""`pgops status` with backup health and metrics, and restore drills. (A repository cut off
for a while, with the status alerting, is in test_faults.py.)"""

from __future__ import annotations

import json

from tests.lab.conftest import REUSED, pgops


def test_status_reports_backup_health_and_metrics(lab, first_deploy, tmp_path):
    if not REUSED:
        assert "first full backup" in first_deploy.out  # `pgops up` starts the lab healthy
    metrics = tmp_path / "pgops.prom"
    r = pgops("status", "--json", "--metrics-file", str(metrics), check=False)
    rows = json.loads(r.stdout)
    assert r.rc == 0, [row.get("backup", {}).get("alerts") for row in rows]
    for row in rows:
        b = row["backup"]
        assert row["role"] == "primary" and b["alerts"] == []
        assert b["backup_age_s"]["full"] is not None and b["repo_size_bytes"] > 0
        assert b["rpo_estimate_s"] is not None and b["rpo_estimate_s"] < 600
        # pg_wal and the disk under it, read on the host.
        wal = row["wal"]
        assert wal["wal_bytes"] >= 16 * 2**20 and row["alerts"] == [], row  # a segment at least
        assert 0 < wal["fs_free_bytes"] < wal["fs_size_bytes"] and 0 < wal["fs_used_percent"] < 90
    text = metrics.read_text()
    assert 'pgops_backup_age_seconds{host="db1",type="full"}' in text
    assert 'pgops_up{host="db2"} 1' in text and 'pgops_server_alerts{host="db1"} 0' in text
    assert 'pgops_wal_disk_free_bytes{host="db1"} ' in text
    assert "backups" in pgops("status").stdout  # the human table too
    strict = pgops("status", "--max-backup-age", "0.0001", check=False)
    assert strict.rc == 1 and "no backup within" in strict.stdout
    tight = pgops("status", "--json", "--max-wal-disk-used", "1", check=False)  # any disk is fuller
    assert tight.rc == 1 and all("pg_wal's filesystem is" in r["alerts"][0] for r in json.loads(tight.stdout))


def test_drill_restores_checks_records_and_cleans_up(lab, first_deploy):
    r = pgops("drill", "--host", "db1", "--json")
    [entry] = json.loads(r.stdout)
    assert entry["ok"] and entry["amcheck"] == "ok" and entry["cleaned_up"]
    assert entry["rto_s"] > 0 and entry["verify"]["schema_version"] >= 3
    clusters = lab.ssh("db1", "pg_lsclusters -h | awk '{print $2}'").stdout.split()
    assert clusters == ["main"]
    [row] = [x for x in json.loads(pgops("status", "--json", check=False).stdout) if x["host"] == "db1"]
    assert row["backup"]["last_drill"]["ok"] is True


def test_schedule_run_fires_real_jobs_and_scripts_run_one(lab, first_deploy):
    before = len(json.loads(pgops("backup", "list", "--host", "db1", "--json").stdout)[0]["backups"])
    r = pgops("schedule", "run", "--jobs", "incr,status", "--incr", "5s", "--status", "3s", "--for", "30")
    runs = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    incr = [x for x in runs if x["job"] == "incr"]
    status = [x for x in runs if x["job"] == "status"]
    assert len(incr) >= 2 and all(x["ok"] for x in incr), incr
    assert status and all(x["ok"] for x in status), status
    after = len(json.loads(pgops("backup", "list", "--host", "db1", "--json").stdout)[0]["backups"])
    assert after >= before + len(incr)
    import subprocess

    from pgops import PROJECT_ROOT

    once = subprocess.run([str(PROJECT_ROOT / "scripts" / "pgops-status")], capture_output=True, text=True,
                          timeout=300)
    assert once.returncode == 0 and json.loads(once.stdout)["ok"] is True
