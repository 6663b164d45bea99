"""Bad input is refused with one clear message and nothing changes on any host."""

from __future__ import annotations

import pytest

from tests.lab.conftest import fingerprint, pgops


@pytest.fixture
def unchanged(lab, first_deploy):
    before = fingerprint(lab)
    yield
    assert fingerprint(lab) == before, "a refused deploy changed a host"


@pytest.mark.parametrize(
    ("group_data", "message"),
    [
        ({"pg_major": 19}, "pg_major: 19 is not a supported PostgreSQL major"),
        ({"pg_hba_rules": [{"database": "app", "user": "app", "address": "10.1.2.300/24"}]},
         "pg_hba_rules.0.address: '10.1.2.300/24' is not a valid network"),
        ({"pg_roles": [{"name": "app", "member_of": ["readers"]}]},
         "pg_roles.0.member_of: role 'readers' is not defined in pg_roles"),
        ({"pg_databases": [{"name": "app", "owner": "ghost"}]},
         "pg_databases.0.owner: role 'ghost' is not defined in pg_roles"),
        ({"pg_secrets_file": "/nonexistent/secrets.env"},
         "secret PGOPS_ROLE_APP_PASSWORD is not set"),
        ({"pg_hba_rules": [{"address": "10.0.0.0/8", "method": "trust"}]},
         "pg_hba_rules.0.method"),
    ],
    ids=["unknown-major", "bad-cidr", "undefined-role", "undefined-owner", "missing-secret",
         "trust-over-tcp"],
)
def test_invalid_config_refused_before_any_host(write_inventory, unchanged, group_data, message):
    inv = write_inventory(**group_data)
    run = pgops("deploy", "-i", str(inv), check=False)
    assert run.rc == 2, run.out
    assert message in run.out
    assert f"{inv}: host db1:" in run.out  # names the file and the host
    assert "Traceback" not in run.out


def test_major_the_distribution_lacks_is_refused(write_inventory, unchanged):
    inv = write_inventory(pg_major=16)
    run = pgops("deploy", "-i", str(inv), check=False)
    assert run.rc != 0
    assert "pg_major 16 is not packaged by debian trixie (it ships 17)" in run.out


def test_unreachable_host_stops_everything(lab, write_inventory, unchanged):
    ghost = str(lab.subnet.network_address + 99)  # inside the lab network, nobody there
    inv = write_inventory(extra_hosts=[["db9", {"ssh_hostname": ghost, "ssh_user": "root",
                                                "ssh_connect_timeout": 3}]])
    run = pgops("deploy", "-i", str(inv), check=False)
    assert run.rc == 2
    assert f"unreachable over SSH, nothing was changed on any host: db9 ({ghost}:22)" in run.out


def test_unreachable_host_stops_pyinfra_native_run(lab, write_inventory, unchanged):
    import subprocess
    import sys
    from pathlib import Path

    from pgops import PROJECT_ROOT

    ghost = str(lab.subnet.network_address + 99)
    inv = write_inventory(extra_hosts=[["db9", {"ssh_hostname": ghost, "ssh_user": "root",
                                                "ssh_connect_timeout": 3}]])
    r = subprocess.run([str(Path(sys.executable).parent / "pyinfra"), str(inv), "deploy.py", "-y"],
                       cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert "db9" in r.stdout + r.stderr


def test_bad_hba_rule_refused_and_old_file_kept(lab, write_inventory, first_deploy, secrets):
    hba = "/etc/postgresql/17/main/pg_hba.conf"
    before = lab.ssh("db1", f"cat {hba}").stdout
    inv = write_inventory(pg_hba_extra=["hostssl all all 10.9.0.0/16 not-a-method"])
    run = pgops("deploy", "-i", str(inv), "--limit", "db1", check=False)
    assert run.rc != 0
    assert "pg_hba.conf refused, previous file kept" in run.out
    assert 'invalid authentication method "not-a-method"' in run.out
    assert lab.ssh("db1", f"cat {hba}").stdout == before
    from tests.lab.conftest import connect

    with connect(lab, "db1", "app", secrets["PGOPS_ROLE_APP_PASSWORD"], sslmode="require") as c:
        assert c.execute("select 1").fetchone()[0] == 1


def test_limit_to_an_unknown_host_is_refused(first_deploy):
    r = pgops("deploy", "--limit", "db7", check=False)
    assert r.rc == 2 and "--limit db7: no such host in inventory/lab.py" in r.out
