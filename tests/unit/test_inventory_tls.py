"""validate_inventory: the TLS database hosts of one repository host share one CA."""

import pytest

from pgops.errors import ConfigError
from pgops.settings.inventory import load_inventory, validate_inventory

INVENTORY = '''
_data = {{"pg_roles": [{{"name": "o", "password": False}}], "pg_backup_host": "backup1",
         "pg_backup_transport": "tls"}}
db_servers = ([("db1", {{"pg_backup_tls_dir": "{a}"}}), ("db2", {{"pg_backup_tls_dir": "{b}"}})], _data)
backup_servers = ["backup1"]
'''


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    monkeypatch.setenv("PGOPS_BACKUP_CIPHER_PASS", "s3cret-pass")

    def write(a: str, b: str):
        path = tmp_path / "inv.py"
        path.write_text(INVENTORY.format(a=a, b=b))
        return load_inventory(path), str(path)
    return write


def test_tls_hosts_of_one_repository_host_with_different_cas_are_refused(inventory, tmp_path):
    inv, name = inventory(tmp_path / "ca-a", tmp_path / "ca-b")
    with pytest.raises(ConfigError) as e:
        validate_inventory(inv, name)
    [problem] = e.value.problems
    assert "pg_backup_tls_dir: the TLS database hosts of backup1 must share one CA" in problem
    assert f"db1: {tmp_path / 'ca-a'}" in problem and f"db2: {tmp_path / 'ca-b'}" in problem


def test_tls_hosts_sharing_a_ca_pass(inventory, tmp_path):
    inv, name = inventory(tmp_path / "ca", tmp_path / "ca")
    assert set(validate_inventory(inv, name)) == {"db1", "db2"}
