"""A database host that keeps its own repository (pg_backup_host = "local"): no repository
host, no SSH trust; backups, an exact point-in-time restore and a drill all work on it, and
switching back to the repository host takes the passphrase off it again."""

from __future__ import annotations

import json

import pytest

from tests.lab.conftest import pgops, results, variant_inventory
from tests.lab.test_restore import Writer, archive_all, fresh_probe_table, restores_exactly


@pytest.fixture(scope="module")
def local(lab, first_deploy, tmp_path_factory):
    local = {"pg_backup_host": "local", "pg_backup_timers": {
        "full": None, "diff": None, "incr": None, "status": "*:0/5", "drill": "04:30"}}
    inv = variant_inventory(tmp_path_factory.mktemp("local"), "local", host_data={"db2": local})
    try:
        yield inv, pgops("deploy", "-i", str(inv))
    finally:
        back = pgops("deploy", check=False)
        pgops("backup", "--type", "full", "--host", "db2", check=False)
    assert back.rc == 0, back.out[-3000:]
    r = lab.ssh("db2", "test -e /etc/pgbackrest/conf.d/secrets.conf", check=False)
    assert r.returncode == 1, "the passphrase stayed on db2 after it moved back to backup1"


def test_local_repository_deploys_idempotently(lab, local):
    inv, first = local
    assert "Stanza db2" in first.out
    conf = lab.ssh("db2", "cat /etc/pgbackrest/pgbackrest.conf").stdout
    assert "repo1-host" not in conf and "repo1-path=/var/lib/pgbackrest" in conf
    assert "[db2]" not in lab.ssh("backup1", "cat /etc/pgbackrest/pgbackrest.conf").stdout
    again = pgops("deploy", "-i", str(inv))
    changed = {op: r for op, r in results(again.out).items() if r[0] != "-" and r[2] != r[0]}
    assert not changed, changed


def test_backup_pitr_and_drill_on_a_local_repository(lab, local):
    inv = local[0]
    url = fresh_probe_table("db2")
    b = pgops("backup", "-i", str(inv), "--type", "full", "--host", "db2")
    assert "full backup" in b.out
    w = Writer(url, 10, pause=0.2)
    w.run()
    assert w.error is None, w.error
    archive_all(lab, "db2")
    [st] = json.loads(pgops("backup", "list", "-i", str(inv), "--host", "db2", "--json").stdout)
    assert st["repository"] == "local" and st["status"] == "ok"
    found = lab.ssh("db2", "ls /var/lib/pgbackrest/backup/db2").stdout
    assert st["backups"][-1]["label"] in found
    restores_exactly(lab, 6, str(w.gap_after(6)), "-i", str(inv), "--host", "db2")
    onto = pgops("restore", "-i", str(inv), "--host", "db2", "--onto", "db1", "--to",
                 str(w.gap_after(6)), check=False)
    assert onto.rc == 2 and "keeps its repository locally" in onto.out
    [drill] = json.loads(pgops("drill", "-i", str(inv), "--host", "db2", "--json").stdout)
    assert drill["ok"] and drill["amcheck"] == "ok", drill


def test_timers_run_on_the_database_host_as_postgres(lab, local):
    assert "User=postgres" in lab.ssh("db2", "cat /etc/systemd/system/pgops-drill@.service").stdout
    for job in ("drill", "status"):
        r = lab.ssh("db2", f"systemctl start pgops-{job}@db2.service", check=False, timeout=900)
        line = lab.ssh("db2", f"journalctl -q -o cat -u pgops-{job}@db2.service | grep '^{{' "
                              "| tail -1").stdout
        assert r.returncode == 0 and json.loads(line)["ok"], (r.stderr, line)
    r = lab.ssh("db2", "ls /var/lib/postgresql/17", check=True)
    assert r.stdout.split() == ["main"]  # the drill's copy is gone, the cluster untouched
