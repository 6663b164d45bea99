"""The CLI's answer to bad inventories: one clear line naming the file, exit 2, no traceback."""

import subprocess
import sys
from pathlib import Path

PGOPS = str(Path(sys.executable).parent / "pgops")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PGOPS, *args], capture_output=True, text=True, timeout=60)


def test_inventory_with_an_error_names_file_and_line(tmp_path):
    inv = tmp_path / "broken.py"
    inv.write_text("db_servers = ['db1']\nx = undefined_name\n")
    r = run("deploy", "-i", str(inv))
    assert r.returncode == 2
    assert f"inventory {inv} line 2: NameError" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_inventory_file():
    r = run("deploy", "-i", "/nonexistent/inventory.py")
    assert r.returncode == 2
    assert "inventory /nonexistent/inventory.py does not exist" in r.stderr


def test_inventory_without_database_hosts(tmp_path):
    inv = tmp_path / "empty.py"
    inv.write_text("db_servers = [['db1', {}]]  # lists are ignored by pyinfra\n")
    r = run("deploy", "-i", str(inv))
    assert r.returncode == 2
    assert "no hosts in group db_servers" in r.stderr
