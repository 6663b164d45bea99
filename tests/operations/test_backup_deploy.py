"""The backup deploy planned on a fake fleet (deploy_plan): which operations each host gets,
by the names the lab tests match on, in pyinfra's order, with one call site per step so that
each step runs on every host before the next (keys before trust)."""

from __future__ import annotations

import pytest

import pgops.deploys.backup as backup_deploy
from pgops import pki
from pgops.backup import timers
from pgops.errors import ConfigError
from pgops.remote import address
from pgops.settings import load_settings
from pgops.settings.inventory import BACKUP_GROUP, DB_GROUP
from tests.operations.deploy_plan import Recorder, Scenario, any_changed, describe, plan

ENV = {"PGOPS_BACKUP_CIPHER_PASS": "cipher", "PGOPS_BACKUP_S3_KEY": "k",
       "PGOPS_BACKUP_S3_KEY_SECRET": "ks"}
U = timers.UNIT_DIR
TLS_UNIT = "/etc/systemd/system/pgops-pgbackrest-server.service"
S3 = {"repo2-type": "s3", "repo2-s3-bucket": "b", "repo2-s3-endpoint": "e", "repo2-s3-region": "r"}


def fleet(bad_calendars=()) -> Scenario:
    """db1 (SSH, once TLS, stale timers) and db2 (TLS) on backup1; db3 keeps its own
    repository in S3; db4, backup2 (named by nobody) and web1 have no backups."""
    sc = Scenario()
    sc.add("db1", [DB_GROUP], {"ssh_hostname": "10.0.0.11", "pg_backup_host": "backup1",
                               "pg_backup_timers": {}},
           installed=("pgbackrest", "openssh-client"), aes=False, cpus=4,
           files=(TLS_UNIT, f"{U}/pgops-full@db1.timer", f"{U}/pgops-full@.service"))
    sc.add("db2", [DB_GROUP], {"pg_backup_host": "backup1", "pg_backup_transport": "tls",
                               "pg_backup_tls_dir": "/ca", "pg_major": 16,
                               "pg_backup_timers": {"drill": None, "incr": "*:0/30"}}, cpus=1)
    sc.add("db3", [DB_GROUP], {"ssh_hostname": "db3.example", "pg_backup_host": "local", "pgbackrest": S3,
                               "pg_backup_timers": {"full": "Sun *-*-* 02:00:00", "diff": None,
                                                    "incr": None, "drill": "daily", "status": None}},
           files=(f"{U}/pgops-incr@db3.timer", f"{U}/pgops-incr@.service", f"{U}/pgops-status@.service"),
           cpus=16)
    sc.add("db4", [DB_GROUP], {"ssh_hostname": "10.0.0.14"})
    sc.add("backup1", [BACKUP_GROUP], {"ssh_hostname": "10.0.0.9"}, cpus=8, bad_calendars=bad_calendars,
           files=(f"{U}/pgops-drill@db2.timer", f"{U}/pgops-drill@.service", f"{U}/pgops-incr@db2.timer"))
    sc.add("backup2", [BACKUP_GROUP], {})
    sc.add("web1", [], {"ssh_hostname": "10.0.0.30"})
    return sc


@pytest.fixture
def recorder(monkeypatch) -> Recorder:
    rec = Recorder(backup_deploy.__file__)
    for module in ("apt", "apt_ops", "files", "accounts", "systemd", "units", "ops"):
        monkeypatch.setattr(backup_deploy, module, rec.module(module))
    monkeypatch.setattr(backup_deploy, "any_changed", any_changed)
    monkeypatch.setattr(pki, "host_files", lambda d, name, names: {
        "ca": f"CA in {d}", "cert": f"cert {name} {','.join(names)}", "key": f"key {name}"})
    return rec


def deploy(sc: Scenario) -> None:
    """What deploy.py passes: every database host's settings and every host's address."""
    dbs = {n: load_settings(n, h.data, environ=ENV) for n, h in sc.inventory.hosts.items()
           if DB_GROUP in h.groups}
    addresses = {n: address(h) for n, h in sc.inventory.hosts.items()}
    sc.run(backup_deploy.backups._inner, dbs, addresses)


def names(rec: Recorder, host: str) -> list[str]:
    return [c.name for op in plan(rec.calls) for c in op.calls if c.host == host]


COMMON = ["pgBackRest config directory", "Debian's legacy /etc/pgbackrest.conf moved aside"]


def test_a_database_host_with_a_repository_host(recorder):
    deploy(fleet())
    assert names(recorder, "db1") == [
        "Install pgBackRest", "pgBackRest directory /var/spool/pgbackrest",
        "pgBackRest directory /var/log/pgbackrest", *COMMON,
        "SSH key for pgBackRest", "SSH trust for pgBackRest", "No pgBackRest SSH cipher preference",
        "No repository secrets here", "Old passphrase file removed", "pgBackRest configuration",
        "pgBackRest TLS server stopped (not used)", "pgBackRest TLS server unit removed",
        "systemd reloaded (TLS server removed)", "No pgBackRest TLS files",
        "Timer pgops-full@db1.timer stopped (no longer configured)", "Timer pgops-full@db1.timer removed",
        "Service pgops-full@.service removed (no timer uses it)",
        "pgops-repo-job removed (no timers)", "pgops-repo-job's rules removed (no timers)"]
    trust = next(c for c in recorder.calls if c.host == "db1" and c.op == "ops.trust")
    assert trust.kwargs == {"user": "postgres", "home": "/var/lib/postgresql",
                            "peers": [("backup1", "/var/lib/pgbackrest", ["10.0.0.9", "backup1"])]}


def test_a_tls_database_host(recorder):
    deploy(fleet())
    assert names(recorder, "db2") == [
        "Update apt lists (pgBackRest missing)", "Install pgBackRest",
        "pgBackRest directory /var/spool/pgbackrest", "pgBackRest directory /var/log/pgbackrest",
        *COMMON, "SSH key for pgBackRest", "SSH trust for pgBackRest",
        "pgBackRest's SSH prefers AES-GCM (CPU has AES instructions)",
        "No repository secrets here", "Old passphrase file removed", "pgBackRest configuration",
        "pgBackRest TLS directory", "pgBackRest TLS ca", "pgBackRest TLS cert", "pgBackRest TLS key",
        "pgBackRest TLS server unit", "systemd reloaded (TLS server unit changed)",
        "pgBackRest TLS server running", "pgBackRest TLS server restarted (its files changed)",
        "pgops-repo-job removed (no timers)", "pgops-repo-job's rules removed (no timers)"]
    restart = next(c for c in recorder.calls if c.host == "db2" and "restarted" in c.name)
    assert restart.kwargs["_if"] == ("any_changed(pgBackRest TLS server unit, pgBackRest configuration, "
                                     "pgBackRest TLS ca, pgBackRest TLS cert, pgBackRest TLS key)")
    cert = next(c for c in recorder.calls if c.host == "db2" and c.name == "pgBackRest TLS cert")
    assert cert.kwargs["src"] == "cert db2 db2"


def test_a_local_repository(recorder):
    deploy(fleet())
    assert names(recorder, "db3") == [
        "Update apt lists (pgBackRest missing)", "Install pgBackRest",
        "pgBackRest directory /var/lib/pgbackrest", "pgBackRest directory /var/spool/pgbackrest",
        "pgBackRest directory /var/log/pgbackrest", *COMMON, "No pgBackRest SSH cipher preference",
        "Repository secrets (encryption passphrase, S3 keys)", "Old passphrase file removed",
        "pgBackRest configuration", "No pgBackRest TLS files", "Stanza db3",
        "Timer pgops-incr@db3.timer stopped (no longer configured)", "Timer pgops-incr@db3.timer removed",
        "Service pgops-incr@.service removed (no timer uses it)",
        "Service pgops-status@.service removed (no timer uses it)",
        "pgops-repo-job's rules (shared with pgops status)", "pgops-repo-job (the timers' job runner)",
        "Service pgops-drill@.service", "Service pgops-full@.service",
        "Timer pgops-full@db3.timer", "Timer pgops-drill@db3.timer", "systemd reloaded (pgops units changed)",
        "Timer pgops-full@db3.timer enabled", "Timer pgops-drill@db3.timer enabled"]


def test_a_repository_host_serving_a_tls_and_an_ssh_database_host(recorder):
    deploy(fleet())
    enabled = [f"Timer pgops-{j}@db1.timer" for j in ("full", "diff", "incr", "drill", "status")] + [
        f"Timer pgops-{j}@db2.timer" for j in ("full", "diff", "incr", "status")]
    assert names(recorder, "backup1") == [
        "Update apt lists (pgBackRest missing)", "Install pgBackRest", "Repository user",
        "pgBackRest directory /var/lib/pgbackrest", "pgBackRest directory /var/spool/pgbackrest",
        "pgBackRest directory /var/log/pgbackrest", *COMMON,
        "SSH key for pgBackRest", "SSH trust for pgBackRest",
        "pgBackRest's SSH prefers AES-GCM (CPU has AES instructions)",
        "Repository secrets (encryption passphrase, S3 keys)", "Old passphrase file removed",
        "pgBackRest configuration", "pgBackRest TLS directory", "pgBackRest TLS ca", "pgBackRest TLS cert",
        "pgBackRest TLS key", "pgBackRest TLS server unit", "systemd reloaded (TLS server unit changed)",
        "pgBackRest TLS server running", "pgBackRest TLS server restarted (its files changed)",
        "Stanza db1", "Stanza db2",
        "Timer pgops-drill@db2.timer stopped (no longer configured)", "Timer pgops-drill@db2.timer removed",
        "No main cluster on the repository host", "PostgreSQL binaries for drills",
        "pgops-repo-job's rules (shared with pgops status)", "pgops-repo-job (the timers' job runner)",
        *[f"Service pgops-{j}@.service" for j in ("diff", "drill", "full", "incr", "status")],
        *enabled, "systemd reloaded (pgops units changed)", *[f"{t} enabled" for t in enabled]]
    drill = next(c for c in recorder.calls if c.name == "PostgreSQL binaries for drills")
    assert drill.kwargs["packages"] == ["postgresql-17", "postgresql-17-pgvector"]
    stanza = next(c for c in recorder.calls if c.name == "Stanza db2")
    assert stanza.kwargs == {"stanza_name": "db2", "_sudo": True, "_sudo_user": "pgbackrest"}


def test_hosts_without_backups_get_nothing_and_read_no_fact(recorder):
    sc = fleet()
    deploy(sc)
    assert {c.host for c in recorder.calls} == {"db1", "db2", "db3", "backup1"}
    assert {host for host, *_ in sc.reads} == {"db1", "db2", "db3", "backup1"}


def test_each_step_is_one_operation_on_every_host_before_the_next(recorder):
    deploy(fleet())
    ops = plan(recorder.calls)
    lines = describe(ops)
    assert lines[:2] == ["Update apt lists (pgBackRest missing) [db2, db3, backup1]",
                         "Install pgBackRest [db1, db2, db3, backup1]"]
    for step in ("SSH key for pgBackRest [db1, db2, backup1]", "SSH trust for pgBackRest [db1, db2, backup1]",
                 "pgBackRest configuration [db1, db2, db3, backup1]",
                 "pgBackRest TLS server unit [db2, backup1]",
                 "Stanza db1 / Stanza db3 [db3, backup1]",
                 "systemd reloaded (pgops units changed) [db3, backup1]"):
        assert step in lines
    # Every host's key exists before any host's trust reads its peers' keys.
    assert lines.index("SSH key for pgBackRest [db1, db2, backup1]") + 1 == lines.index(
        "SSH trust for pgBackRest [db1, db2, backup1]")
    assert lines.index("pgBackRest configuration [db1, db2, db3, backup1]") < lines.index(
        "Stanza db1 / Stanza db3 [db3, backup1]")


def test_a_calendar_systemd_refuses_stops_the_plan(recorder):
    with pytest.raises(ConfigError, match=r"host backup1: pg_backup_timers: systemd refuses the "
                                          r"calendar\(s\) '\*:0/30'"):
        deploy(fleet(bad_calendars=("*:0/30",)))
    assert not any(c.host == "backup1" and c.name.startswith("Timer") for c in recorder.calls)


def test_a_ca_directory_that_cannot_be_written_is_a_config_error(recorder, monkeypatch):
    def refuse(d, name, names):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pki, "host_files", refuse)
    with pytest.raises(ConfigError, match="pg_backup_tls_dir: cannot keep pgops's CA in /ca: "
                                          "Permission denied"):
        deploy(fleet())
