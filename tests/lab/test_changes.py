"""Changes after the first deploy: password rotation, reload vs restart, secrets kept out."""

from __future__ import annotations

import psycopg
import pytest

from tests.lab.conftest import connect, pgops, results

START_TIME = "cd / && runuser -u postgres -- psql -XAtc 'select pg_postmaster_start_time()'"


def show(lab, setting: str) -> str:
    return lab.ssh("db1", f"cd / && runuser -u postgres -- psql -XAtc 'show {setting}'").stdout.strip()


def test_password_rotation_takes_effect_and_is_checked_not_reset(lab, first_deploy, secrets):
    old = secrets["PGOPS_ROLE_APP_PASSWORD"]
    new = "rotated-" + old[::-1]
    env = {"PGOPS_ROLE_APP_PASSWORD": new}  # the environment wins over the secrets file
    try:
        rotate = pgops("deploy", "--limit", "db1", env=env)
        assert results(rotate.out)["Roles, databases and extensions | Role app"][0] == "1"
        # Neither the password nor its verifier is in pyinfra's output.
        assert new not in rotate.out and "SCRAM-SHA-256$" not in rotate.out
        assert "<scram-verifier>" in rotate.out or "Role app" in rotate.out
        with connect(lab, "db1", "app", new, sslmode="require") as c:
            assert c.execute("select current_user").fetchone()[0] == "app"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(lab, "db1", "app", old, sslmode="require")
        again = pgops("deploy", "--limit", "db1", env=env)
        assert results(again.out)["Roles, databases and extensions | Role app"] == ("-", "-", "1")
        # Nothing on the host logged the plaintext.
        logs = lab.ssh("db1", "cat /var/log/postgresql/*.log; journalctl --no-pager -q 2>/dev/null",
                       check=False).stdout
        assert new not in logs
    finally:
        pgops("deploy", "--limit", "db1")
    with connect(lab, "db1", "app", old, sslmode="require") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_reload_only_setting_does_not_restart(lab, first_deploy, write_inventory):
    before = lab.ssh("db1", START_TIME).stdout
    inv = write_inventory(pg_settings={"work_mem": "7MB", "log_min_duration_statement": "750ms"})
    run = pgops("deploy", "-i", str(inv), "--limit", "db1")
    assert "reload is enough for: log_min_duration_statement, work_mem" in run.out
    assert show(lab, "work_mem") == "7MB"
    assert lab.ssh("db1", START_TIME).stdout == before


def test_restart_only_setting_restarts(lab, first_deploy, write_inventory):
    before = lab.ssh("db1", START_TIME).stdout
    inv = write_inventory(pg_settings={"max_connections": 120})
    run = pgops("deploy", "-i", str(inv), "--limit", "db1")
    assert "restart needed for: max_connections" in run.out
    assert show(lab, "max_connections") == "120"
    assert lab.ssh("db1", START_TIME).stdout != before
    # Back to the inventory's settings: a restart again (max_connections), and then no-op.
    pgops("deploy", "--limit", "db1")
    assert show(lab, "max_connections") == "100"
    rows = results(pgops("deploy", "--limit", "db1").out)
    assert rows["Configure PostgreSQL | PostgreSQL settings (tuned)"] == ("-", "-", "1")


def test_tuning_reads_the_cgroup_limit(lab, first_deploy):
    # Lab hosts get 2 GiB under a machine with far more: shared_buffers is 1/4 of 2 GiB.
    assert show(lab, "shared_buffers") == "512MB"
    assert show(lab, "effective_cache_size") == "1536MB"
    assert show(lab, "password_encryption") == "scram-sha-256"
    assert show(lab, "ssl") == "on"


def _role(lab, name: str) -> str:
    sql = (f"select rolcreatedb, rolcreaterole, rolconnlimit, coalesce((select string_agg("
           f"g.rolname, chr(44)) from pg_auth_members m join pg_roles g on g.oid = m.roleid "
           f"where m.member = r.oid), '') from pg_roles r where rolname = '{name}'")
    return lab.ssh("db1", f"cd / && runuser -u postgres -- psql -XAtc \"{sql}\"").stdout.strip()


def test_roles_are_promoted_and_demoted_to_match(lab, first_deploy, write_inventory):
    assert _role(lab, "app") == "f|f|80|app_rw"
    promoted = write_inventory(pg_roles=[
        {"name": "migrator", "connection_limit": 10},
        {"name": "app", "createdb": True, "createrole": True, "connection_limit": 5,
         "member_of": ["migrator"]},
    ])
    pgops("deploy", "-i", str(promoted), "--limit", "db1")
    assert _role(lab, "app") == "t|t|5|migrator"
    # Back to the inventory's roles: attributes and membership are taken away again.
    pgops("deploy", "--limit", "db1")
    assert _role(lab, "app") == "f|f|80|app_rw"
