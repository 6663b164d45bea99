"""The cross-host checks of settings.inventory (pure, on a settings dict), validate_inventory's
empty-group message, inventory_target's choice of host, role and database, and the inventory's
name inside pyinfra's process."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from pgops import pki
from pgops.client.targets import inventory_target
from pgops.errors import ConfigError, PgopsError
from pgops.server.pgconf import SERVER_CA
from pgops.settings import Settings
from pgops.settings.inventory import (
    DEFAULT_INVENTORY,
    INVENTORY_NAME_ENV,
    _inventory_name,
    load_inventory,
    shared_ca_problems,
    unknown_backup_host_problems,
    validate_inventory,
)

# --- unknown_backup_host_problems ---------------------------------------------------------


def test_backup_host_in_the_backup_group_local_or_none_passes():
    settings = {"db1": Settings(pg_backup_host="backup1"), "db2": Settings(pg_backup_host="local"),
                "db3": Settings()}
    assert unknown_backup_host_problems(settings, {"backup1"}, "inv.py") == []


def test_unknown_backup_host_names_host_group_and_known_hosts():
    settings = {"db1": Settings(pg_backup_host="backup9"), "db2": Settings(pg_backup_host="backup1")}
    assert unknown_backup_host_problems(settings, {"backup2", "backup1"}, "inv.py") == [
        "inv.py: host db1: pg_backup_host: 'backup9' is not a host of group backup_servers "
        "(have: backup1, backup2) nor 'local'"
    ]


def test_unknown_backup_host_without_backup_hosts_says_none():
    [problem] = unknown_backup_host_problems({"db1": Settings(pg_backup_host="b")}, set(), "inv.py")
    assert "(have: none)" in problem


# --- shared_ca_problems -------------------------------------------------------------------


def tls(repo: str, ca: Path) -> Settings:
    return Settings(pg_backup_host=repo, pg_backup_transport="tls", pg_backup_tls_dir=ca)


def test_tls_hosts_of_one_repository_host_must_share_a_ca(tmp_path):
    settings = {"db2": tls("backup1", tmp_path / "b"), "db1": tls("backup1", tmp_path / "a"),
                "db3": tls("backup1", tmp_path / "a")}
    assert shared_ca_problems(settings, "inv.py") == [
        "inv.py: pg_backup_tls_dir: the TLS database hosts of backup1 must share one CA directory "
        f"(have db1, db3: {tmp_path / 'a'}; db2: {tmp_path / 'b'})"
    ]


def test_each_repository_host_may_have_its_own_ca(tmp_path):
    settings = {"db1": tls("backup1", tmp_path / "a"), "db2": tls("backup2", tmp_path / "b")}
    assert shared_ca_problems(settings, "inv.py") == []


def test_ssh_hosts_need_no_shared_ca(tmp_path):
    settings = {"db1": tls("backup1", tmp_path / "a"),
                "db2": Settings(pg_backup_host="backup1", pg_backup_tls_dir=tmp_path / "b")}
    assert shared_ca_problems(settings, "inv.py") == []


def test_ca_problems_are_sorted_by_repository_host(tmp_path):
    settings = {"db1": tls("r2", tmp_path / "a"), "db2": tls("r2", tmp_path / "b"),
                "db3": tls("r1", tmp_path / "a"), "db4": tls("r1", tmp_path / "b")}
    problems = shared_ca_problems(settings, "inv.py")
    assert [p.split(" must ")[0][-2:] for p in problems] == ["r1", "r2"]


# --- validate_inventory and inventory_target on a real inventory file ---------------------

INVENTORY = '''
_data = {"pg_roles": [{"name": "app"}, {"name": "grp", "login": False},
                      {"name": "nopw", "password": False}],
         "pg_databases": [{"name": "appdb", "owner": "app"}], "pg_app_database": "appdb",
         "pg_migration_role": "app", "pg_port": 5433}
db_servers = ([("db1", {"ssh_hostname": "10.0.0.1"}), "db2", ("db3", {"pg_app_database": None})],
              _data)
'''


@pytest.fixture(autouse=True)
def server_ca(tmp_path, monkeypatch) -> Path:
    """pgops's PostgreSQL CA where these inventories' settings look for it (HOME's state)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ca = tmp_path / "home" / ".local" / "state" / "pgops" / "postgres-pki"
    pki.ca_file(ca, SERVER_CA)
    return ca / "ca.crt"


@pytest.fixture
def inventory_file(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PGOPS_ROLE_APP_PASSWORD", "s3cret")
    path = tmp_path / "inv.py"
    path.write_text(INVENTORY)
    return path


def conninfo(url: str) -> dict:
    return psycopg.conninfo.conninfo_to_dict(url)


def test_validate_inventory_without_database_hosts(tmp_path):
    path = tmp_path / "inv.py"
    path.write_text("backup_servers = ['backup1']\n")
    with pytest.raises(ConfigError) as e:
        validate_inventory(load_inventory(path), "inv.py")
    assert e.value.problems == [
        "inv.py: no hosts in group db_servers (a group is a list of host names or (name, data) "
        "tuples; pyinfra ignores anything else)"
    ]


def test_inventory_target_defaults_to_the_first_database_host(inventory_file, server_ca):
    target = inventory_target(inventory_file, None, "app", None)
    assert conninfo(target.url) == {
        "host": "10.0.0.1", "port": "5433", "dbname": "appdb", "user": "app",
        "sslmode": "verify-full", "sslrootcert": str(server_ca),
        "application_name": "pgops", "password": "s3cret"}
    assert target.label == "db1 (Postgres 10.0.0.1:5433) database appdb as app"
    assert target.source == f"inventory {inventory_file}"


def test_inventory_target_named_host_database_and_role_without_password(inventory_file, server_ca):
    target = inventory_target(inventory_file, "db2", "nopw", "other")
    assert conninfo(target.url) == {
        "host": "db2", "port": "5433", "dbname": "other", "user": "nopw",
        "sslmode": "verify-full", "sslrootcert": str(server_ca), "application_name": "pgops"}
    assert target.label == "db2 (Postgres db2:5433) database other as nopw"


def test_without_the_servers_ca_here_a_target_is_refused_by_name(inventory_file, server_ca):
    server_ca.unlink()
    with pytest.raises(PgopsError) as e:
        inventory_target(inventory_file, None, "app", None)
    assert str(e.value) == (
        f"{inventory_file} [db1]: the CA that verifies the server, {server_ca}, is not on this "
        "machine: `pgops deploy` issues it with the servers' certificates (or give pg_tls_ca_file)")


CLUSTER = '''
_data = {"pg_roles": [{"name": "app"}, {"name": "migrator"}], "pg_ha_cluster": "main",
         "pg_databases": [{"name": "app", "owner": "migrator"}], "pg_app_database": "app"}
db_servers = ([("db1", {"ssh_hostname": "10.0.0.1"}), ("db2", {"ssh_hostname": "10.0.0.2"})], _data)
etcd_servers = ["db1", "db2", ("e3", {"ssh_hostname": "10.0.0.3"})]
'''


def test_a_cluster_target_is_its_endpoint_for_clients_and_its_leader_for_migrations(
        tmp_path, monkeypatch):
    for name in ("APP", "MIGRATOR", "REPLICATOR", "REWINDER", "PGBOUNCER"):
        monkeypatch.setenv(f"PGOPS_ROLE_{name}_PASSWORD", "pw")
    monkeypatch.setenv("PGOPS_PATRONI_API_PASSWORD", "pw")
    path = tmp_path / "cluster.py"
    path.write_text(CLUSTER)
    pooled = inventory_target(path, None, "app", None, pooled=True)
    assert conninfo(pooled.url)["host"] == "10.0.0.1,10.0.0.2"
    assert conninfo(pooled.url)["port"] == "5000,5000"
    assert pooled.label.startswith("cluster main's read-write endpoint (HAProxy :5000 on db1, db2)")
    direct = inventory_target(path, None, "migrator", None)
    assert conninfo(direct.url)["port"] == "5432,5432"
    assert conninfo(direct.url)["target_session_attrs"] == "read-write"
    # A named member is that member, as asked.
    assert conninfo(inventory_target(path, "db2", "app", None).url)["host"] == "10.0.0.2"


def test_with_a_proxy_group_clients_enter_through_it_and_a_bad_proxy_is_named(tmp_path, monkeypatch):
    for name in ("APP", "MIGRATOR", "REPLICATOR", "REWINDER", "PGBOUNCER"):
        monkeypatch.setenv(f"PGOPS_ROLE_{name}_PASSWORD", "pw")
    monkeypatch.setenv("PGOPS_PATRONI_API_PASSWORD", "pw")
    path = tmp_path / "cluster.py"
    path.write_text(CLUSTER + 'proxy_servers = [("proxy1", {"ssh_hostname": "10.0.0.9"})]\n')
    pooled = inventory_target(path, None, "app", None, pooled=True)
    assert (conninfo(pooled.url)["host"], conninfo(pooled.url)["port"]) == ("10.0.0.9", "5000")
    assert pooled.label.startswith("cluster main's read-write endpoint (HAProxy :5000 on proxy1)")
    assert conninfo(inventory_target(path, None, "migrator", None).url)["host"] == "10.0.0.1,10.0.0.2"
    path = tmp_path / "bad_proxies.py"
    path.write_text(CLUSTER + 'proxy_servers = [("proxy1", {"pg_ha_cluster": "other"}), "db2"]\n')
    with pytest.raises(ConfigError) as e:
        validate_inventory(load_inventory(path), str(path))
    assert e.value.problems == [
        f"{path}: proxy_servers: db2 is a database host; a proxy host is another host (cluster "
        "members run HAProxy already)",
        f"{path}: proxy_servers: proxy1: pg_ha_cluster: 'other' is not a cluster of the "
        "inventory (have: main)"]


def test_a_dsn_target_says_where_it_came_from(tmp_path, monkeypatch):
    from pgops.client.targets import dsn_target

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PGHOST", raising=False)
    monkeypatch.delenv("PGDATABASE", raising=False)
    assert dsn_target(None) is None
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://app:pw@127.0.0.1:5432/app\n")
    t = dsn_target(None)
    assert t.source == f"DATABASE_URL in {tmp_path / '.env'} (a .env file in the current directory)"
    assert "pw" not in t.label
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@h/db")
    assert dsn_target(None).source == "DATABASE_URL in the environment"
    assert dsn_target("host=h").source == "-d"


def test_inventory_target_group_role_gets_no_password(inventory_file):
    assert "password" not in conninfo(inventory_target(inventory_file, "db1", "grp", None).url)


def test_inventory_target_unknown_host(inventory_file):
    with pytest.raises(PgopsError, match=f"^no database host 'db9' in {inventory_file}$"):
        inventory_target(inventory_file, "db9", "app", None)


def test_inventory_target_unknown_role(inventory_file):
    with pytest.raises(PgopsError) as e:
        inventory_target(inventory_file, "db2", "ghost", None)
    assert str(e.value) == f"role 'ghost' is not in pg_roles of {inventory_file} [db2]"


def test_inventory_target_without_database(inventory_file):
    with pytest.raises(PgopsError) as e:
        inventory_target(inventory_file, "db3", "app", None)
    assert str(e.value) == f"{inventory_file} [db3]: no database given and pg_app_database is not set"


# --- the inventory's name inside pyinfra's process ---------------------------------------


def test_the_inventory_name_is_pgops_deploys_else_the_default_inventory(monkeypatch):
    monkeypatch.setenv(INVENTORY_NAME_ENV, "inventory/production.py")
    assert _inventory_name() == "inventory/production.py"
    monkeypatch.delenv(INVENTORY_NAME_ENV)
    monkeypatch.delenv("PGOPS_INVENTORY", raising=False)
    assert _inventory_name() == str(DEFAULT_INVENTORY)
    monkeypatch.setenv("PGOPS_INVENTORY", "/srv/inv/prod.py")
    assert _inventory_name() == "/srv/inv/prod.py"
