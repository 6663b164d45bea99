"""Bad input that needs more than one line of the corpus (test_bad_input_corpus.py): an
unreachable host, for pgops and for a plain pyinfra run, and a pg_hba rule Postgres refuses
(the previous file kept, clients still served)."""

from __future__ import annotations

import pytest

from tests.lab.conftest import fingerprint, pgops


@pytest.fixture
def unchanged(lab, first_deploy):
    before = fingerprint(lab)
    yield
    assert fingerprint(lab) == before, "a refused deploy changed a host"


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
