"""pgBackRest over its own TLS transport (pg_backup_transport = "tls") for db1 while db2
stays on SSH: certificates from pgops's CA, a TLS server on db1 and backup1, backups, WAL
archiving, an exact point-in-time restore and a drill over it; back on SSH afterwards, with
no server left behind."""

from __future__ import annotations

import json

import pytest

from pgops.backup.backrest import TLS_SERVICE
from tests.lab.conftest import pgops, results, variant_inventory
from tests.lab.test_restore import Writer, archive_all, drop, fresh_probe_table, restores_exactly


def active(lab, host: str) -> str:
    return lab.ssh(host, f"systemctl is-active {TLS_SERVICE}", check=False).stdout.strip()


@pytest.fixture(scope="module")
def tls(lab, first_deploy, tmp_path_factory):
    inv = variant_inventory(tmp_path_factory.mktemp("tls"), "tls",
                            host_data={"db1": {"pg_backup_transport": "tls"}})
    try:
        yield inv, pgops("deploy", "-i", str(inv))
    finally:
        back = pgops("deploy", check=False)
    assert back.rc == 0, back.out[-3000:]
    assert active(lab, "db1") != "active" and active(lab, "backup1") != "active"
    assert "tls" not in lab.ssh("backup1", "cat /etc/pgbackrest/pgbackrest.conf").stdout
    again = pgops("backup", "--type", "incr", "--host", "db1", check=False)  # over SSH again
    assert again.rc == 0, again.out[-3000:]


def test_tls_servers_run_and_a_second_deploy_changes_nothing(lab, tls):
    inv, first = tls
    assert active(lab, "db1") == "active" and active(lab, "backup1") == "active"
    assert active(lab, "db2") != "active"
    repo = lab.ssh("backup1", "cat /etc/pgbackrest/pgbackrest.conf").stdout
    assert "tls-server-auth=db1=db1,db2\n" in repo and repo.count("pg1-host-type=tls") == 1
    key = lab.ssh("db1", "stat -c '%U %a' /etc/pgbackrest/tls/host.key").stdout.split()
    assert key == ["postgres", "600"]
    again = pgops("deploy", "-i", str(inv))
    changed = {op: r for op, r in results(again.out).items() if r[0] != "-" and r[2] != r[0]}
    assert not changed, changed
    assert "PRIVATE KEY" not in first.out + again.out


def test_backup_pitr_and_drill_over_tls(lab, tls):
    inv = tls[0]
    url = fresh_probe_table("db1")
    pgops("backup", "-i", str(inv), "--type", "full", "--host", "db1")
    began = lab.ssh("backup1", "grep 'backup command begin' /var/log/pgbackrest/db1-backup.log "
                               "| tail -1").stdout
    assert "--pg1-host-type=tls" in began, began
    w = Writer(url, 10, pause=0.2)
    w.run()
    assert w.error is None, w.error
    archive_all(lab, "db1")  # archive-push from db1 through backup1's TLS server
    restores_exactly(lab, 6, str(w.gap_after(6)), "-i", str(inv), "--host", "db1")
    [drill] = json.loads(pgops("drill", "-i", str(inv), "--host", "db1", "--json").stdout)
    assert drill["ok"] and drill["amcheck"] == "ok", drill


def test_an_ssh_hosts_backup_restores_onto_the_tls_host(lab, tls):
    inv = tls[0]
    pgops("backup", "-i", str(inv), "--type", "full", "--host", "db2")
    result = json.loads(pgops("restore", "-i", str(inv), "--host", "db2", "--onto", "db1",
                              "--to", "latest", "--json").stdout)
    try:
        assert result["host"] == "db1"
        assert lab.ssh("db1", f"cd / && runuser -u postgres -- psql -XAtq -p {result['port']} "
                              "-c 'select pg_is_in_recovery()'").stdout.strip() == "f"
    finally:
        drop(lab, result)
