"""Each host's pgBackRest role, decided from the inventory's values alone (pgops.backup.roles)."""

import pytest

from pgops.backup import backrest, roles, rules, timers
from pgops.server.cluster import PG_HOME
from pgops.settings import load_settings
from pgops.settings.inventory import BACKUP_GROUP, DB_GROUP

ENV = {"PGOPS_BACKUP_CIPHER_PASS": "cipher", "PGOPS_BACKUP_S3_KEY": "key",
       "PGOPS_BACKUP_S3_KEY_SECRET": "key-secret"}
S3 = {"repo2-type": "s3", "repo2-s3-bucket": "b", "repo2-s3-endpoint": "s3.example",
      "repo2-s3-region": "eu"}
DB, REPO = [DB_GROUP], [BACKUP_GROUP]


def fleet(**over):
    """db1 (SSH) and db2 (TLS, PostgreSQL 16) backed up on backup1; db3 keeps its own
    repository; db4 has no backups. `over`: host -> settings that replace its own."""
    data = {
        "db1": {"pg_backup_host": "backup1", "pg_backup_timers": {}},
        "db2": {"pg_backup_host": "backup1", "pg_backup_transport": "tls", "pg_major": 16,
                "pg_backup_tls_dir": "/ca", "pg_backup_timers": {"drill": None, "incr": "*:0/30"}},
        "db3": {"pg_backup_host": "local", "pgbackrest": S3,
                "pg_backup_timers": {"full": "Sun *-*-* 02:00:00", "diff": None, "incr": None,
                                     "drill": "daily", "status": None}},
        "db4": {},
    }
    data.update(over)
    return {n: load_settings(n, d, environ=ENV) for n, d in data.items()}


ADDRESSES = {"db1": "10.0.0.11", "db2": "db2", "db3": "db3.example", "db4": "10.0.0.14",
             "backup1": "10.0.0.9", "backup2": "backup2"}
CPUS = {"db1": 4, "db2": 1, "db3": 16, "db4": 2, "backup1": 8}


def role(name, groups, dbs=None):
    dbs = fleet() if dbs is None else dbs
    return roles.backup_role(name, groups, dbs, ADDRESSES, CPUS)


def test_a_database_host_with_a_repository_host_pushes_wal_to_it_over_ssh():
    r = role("db1", DB)
    assert (r.db, r.local, r.repo) == (True, False, False)
    assert (r.user, r.home) == ("postgres", PG_HOME)
    assert r.dirs == (backrest.SPOOL, backrest.LOG)
    assert r.peers == (roles.Peer("backup1", rules.REPO_HOME, ["10.0.0.9", "backup1"]),)
    assert r.ssh_names == ["10.0.0.9", "backup1"]
    assert r.config == roles.DbConfig("db1", fleet()["db1"], "10.0.0.9", 2)
    assert "repo1-host=10.0.0.9" in r.config.render()
    assert r.secrets == {} and r.stanzas == () and r.tls is None
    assert r.names == ("10.0.0.11", "db1")
    # Its own stanza with no timers: timers left from an earlier deploy go.
    assert r.timers == {"db1": {}} and r.jobs == [] and r.timer_units == []
    assert r.drill_majors == () and not r.install_binaries and r.drill_packages == []
    assert roles.cores_needed("db1", DB, fleet()) == ["db1"]


def test_a_tls_database_host_uses_its_own_ca_settings():
    r = role("db2", DB)
    assert r.tls == fleet()["db2"] and str(r.tls.tls_dir) == "/ca"
    assert r.config.process_max == 1  # min(cores, 2)
    assert r.names == ("db2",)


def test_a_repository_host_serves_two_database_hosts_one_over_tls_one_over_ssh():
    dbs = fleet()
    r = role("backup1", REPO, dbs)
    assert (r.db, r.local, r.repo) == (False, False, True)
    assert (r.user, r.home) == (backrest.REPO_USER, rules.REPO_HOME)
    assert r.dirs == backrest.DIRS
    assert r.peers == (roles.Peer("db1", PG_HOME, ["10.0.0.11", "db1"]),
                       roles.Peer("db2", PG_HOME, ["db2"]))
    assert r.config == roles.RepoConfig({"db1": ("10.0.0.11", dbs["db1"]), "db2": ("db2", dbs["db2"])},
                                        8, {"db1": 4, "db2": 1})
    conf = r.config.render()
    assert "process-max=8" in conf and "[db1:backup]\nprocess-max=2" in conf
    assert "tls-server-auth=db2=db1,db2" in conf and "pg1-host-type=tls" in conf
    assert list(r.secrets) == ["db1", "db2"] and r.stanzas == ("db1", "db2")
    assert r.tls == dbs["db2"]  # the TLS server here, with db2's CA
    assert roles.cores_needed("backup1", REPO, dbs) == ["backup1", "db1", "db2"]


def test_a_repository_host_whose_database_hosts_use_ssh_has_no_tls():
    dbs = fleet(db2={"pg_backup_host": "backup1"})
    assert role("backup1", REPO, dbs).tls is None


def test_a_local_repository_keeps_its_secrets_and_stanza_without_ssh():
    dbs = fleet()
    r = role("db3", DB, dbs)
    assert (r.db, r.local, r.repo) == (True, True, False)
    assert (r.user, r.home) == ("postgres", PG_HOME)
    assert r.dirs == backrest.DIRS
    assert r.peers == () and r.ssh_names == []
    assert r.config == roles.LocalConfig("db3", dbs["db3"], 2)
    assert "repo2-type=s3" in r.config.render()
    assert r.secrets == {"db3": dbs["db3"]} and r.stanzas == ("db3",)
    assert "repo2-s3-key=key" in backrest.secrets_conf(dict(r.secrets))
    assert r.tls is None
    # Drills restore on the database host itself: no PostgreSQL to install for them.
    assert r.drill_majors == (17,) and not r.install_binaries and r.drill_packages == []


@pytest.mark.parametrize("name, groups", [("db4", DB), ("backup2", REPO), ("web1", []),
                                          ("backup1", [])])
def test_a_host_with_no_backups_has_no_role(name, groups):
    """No pg_backup_host; a repository host nobody names; a host in no group; and a host
    named by pg_backup_host that is not in the repository hosts' group."""
    assert roles.backup_role(name, groups, fleet(), ADDRESSES, {}) is None
    assert roles.cores_needed(name, groups, fleet()) == []


def test_timers_per_stanza_in_stanza_then_job_order():
    r = role("backup1", REPO)
    assert r.timers == {"db1": timers.wanted(fleet()["db1"].pg_backup_timers),
                        "db2": {"full": "Sun *-*-* 01:00:00", "diff": "Mon..Sat *-*-* 01:00:00",
                                "incr": "*:0/30", "status": "*:0/5"}}
    assert r.jobs == sorted(rules.JOBS)
    assert [t.unit for t in r.timer_units] == [
        "pgops-full@db1.timer", "pgops-diff@db1.timer", "pgops-incr@db1.timer",
        "pgops-drill@db1.timer", "pgops-status@db1.timer",
        "pgops-full@db2.timer", "pgops-diff@db2.timer", "pgops-incr@db2.timer",
        "pgops-status@db2.timer"]
    assert r.timer_units[7] == roles.Timer("db2", "incr", "*:0/30")
    assert r.calendars == sorted({"Sun *-*-* 01:00:00", "Mon..Sat *-*-* 01:00:00", "hourly",
                                  "*-*-* 04:30:00", "*:0/5", "*:0/30"})


def test_a_stanza_without_pg_backup_timers_gets_none():
    dbs = fleet(db1={"pg_backup_host": "backup1"})
    r = role("backup1", REPO, dbs)
    assert r.timers["db1"] == {} and [t.stanza for t in r.timer_units] == ["db2"] * 4


def test_drill_majors_are_those_of_stanzas_with_a_drill_timer():
    dbs = fleet(db2={"pg_backup_host": "backup1", "pg_major": 16, "pg_backup_timers": {}},
                db4={"pg_backup_host": "backup1", "pg_major": 15})  # no timers at all
    r = role("backup1", REPO, dbs)
    assert r.drill_majors == (16, 17) and r.install_binaries
    assert r.drill_packages == ["postgresql-16", "postgresql-16-pgvector",
                                "postgresql-17", "postgresql-17-pgvector"]
    no_drills = fleet(db1={"pg_backup_host": "backup1", "pg_backup_timers": {"drill": None}})
    assert role("backup1", REPO, no_drills).drill_packages == []


def test_stale_units_are_those_present_and_no_longer_asked_for():
    present = roles.unit_names(["/etc/systemd/system/pgops-full@db1.timer",
                                "/etc/systemd/system/pgops-drill@db1.timer",
                                "/etc/systemd/system/pgops-drill@db9.timer",
                                "/etc/systemd/system/pgops-drill@.service",
                                "/etc/systemd/system/pgops-status@.service"])
    assert roles.unit_names(None) == set()
    wanted = {"db1": {"full": "daily"}, "db2": {}}
    assert roles.stale_timers(wanted, present) == ["pgops-drill@db1.timer"]  # db9: not a stanza here
    assert roles.stale_services(["full"], present) == ["pgops-drill@.service", "pgops-status@.service"]
    assert roles.stale_services(["drill", "status"], present) == []


def test_pure_renderings():
    unit = roles.tls_unit("pgbackrest")
    assert "User=pgbackrest" in unit and "ExecStart=/usr/bin/pgbackrest server" in unit
    assert roles.TLS_UNIT == f"/etc/systemd/system/{backrest.TLS_SERVICE}"
    assert "create_main_cluster = false" in roles.NO_MAIN_CLUSTER
    assert roles.drill_packages([]) == []


def test_the_role_is_frozen():
    r = role("db1", DB)
    with pytest.raises(AttributeError):
        r.user = "root"  # type: ignore[misc]
