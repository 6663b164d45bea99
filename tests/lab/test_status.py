"""`pgops status` with backup health and metrics, restore drills, and a repository host that
goes away for a while: WAL queues, the status alerts, archiving catches up, nothing is lost."""

from __future__ import annotations

import json
import time

from pgops.lab import engine
from tests.lab.conftest import REUSED, pgops

PSQL = "cd / && runuser -u postgres -- psql -XAtq -d postgres -c"


def archiver(lab, host: str = "db1") -> dict:
    out = lab.ssh(host, f"{PSQL} \"select archived_count, failed_count, "
                        "coalesce(extract(epoch from last_archived_time), 0), "
                        "coalesce(extract(epoch from last_failed_time), 0) from pg_stat_archiver\"").stdout
    a, f, la, lf = out.strip().split("|")
    return {"archived": int(a), "failed": int(f), "last_archived": float(la), "last_failed": float(lf)}


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
    text = metrics.read_text()
    assert 'pgops_backup_age_seconds{host="db1",type="full"}' in text
    assert 'pgops_up{host="db2"} 1' in text
    assert "backups" in pgops("status").stdout  # the human table too
    strict = pgops("status", "--max-backup-age", "0.0001", check=False)
    assert strict.rc == 1 and "no backup within" in strict.stdout


def test_drill_restores_checks_records_and_cleans_up(lab, first_deploy):
    r = pgops("drill", "--host", "db1", "--json")
    [entry] = json.loads(r.stdout)
    assert entry["ok"] and entry["amcheck"] == "ok" and entry["cleaned_up"]
    assert entry["rto_s"] > 0 and entry["verify"]["schema_version"] >= 3
    clusters = lab.ssh("db1", "pg_lsclusters -h | awk '{print $2}'").stdout.split()
    assert clusters == ["main"]
    [row] = [x for x in json.loads(pgops("status", "--json", check=False).stdout) if x["host"] == "db1"]
    assert row["backup"]["last_drill"]["ok"] is True


def test_repository_down_archiving_queues_and_catches_up(lab, first_deploy):
    repo = engine.client().containers.get(lab.host("backup1").container)
    before = archiver(lab)
    repo.exec_run(["systemctl", "stop", "ssh"])
    try:
        deadline = time.monotonic() + 120
        while archiver(lab)["failed"] == before["failed"]:
            lab.ssh("db1", f"{PSQL} 'select txid_current()' -c 'select pg_switch_wal()'")
            assert time.monotonic() < deadline, "archiving never noticed the repository was gone"
            time.sleep(2)
        down = pgops("status", "--json", check=False)
        assert down.rc == 1
        alerts = [a for row in json.loads(down.stdout) for a in row.get("backup", {}).get("alerts", [])]
        assert alerts, "status must alert while the repository is down"
    finally:
        repo.exec_run(["systemctl", "start", "ssh"])
    deadline = time.monotonic() + 180
    while True:
        now = archiver(lab)
        if now["archived"] > before["archived"] and now["last_archived"] > now["last_failed"]:
            break
        assert time.monotonic() < deadline, f"archiving did not catch up: {now}"
        time.sleep(2)
    verify = lab.ssh("backup1", "cd / && runuser -u pgbackrest -- pgbackrest --stanza=db1 verify "
                                "--log-level-console=info")
    assert "status: ok" in verify.stdout or "verify command end: completed successfully" in verify.stdout
    assert "missing" not in verify.stdout.lower() or "missing: 0" in verify.stdout.lower()
    assert pgops("status", "--json", check=False).rc == 0


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
