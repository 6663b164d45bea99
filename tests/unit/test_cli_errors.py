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


def test_a_stray_env_file_is_named_as_the_target_and_in_the_connection_error(tmp_path):
    """A developer's .env left in the current directory aims client commands at its
    DATABASE_URL: the command says so first, and the failure names it again."""
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://app:pw@127.0.0.1:1/app\n")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("DATABASE_URL", "PGHOST", "PGDATABASE", "PGOPS_ENV")}
    r = subprocess.run([PGOPS, "migrate", "status"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path, env=env)
    assert r.returncode != 0
    where = f"DATABASE_URL in {tmp_path / '.env'} (a .env file in the current directory)"
    first = r.stderr.splitlines()[0]
    assert first.startswith("target: ") and "host=127.0.0.1 port=1" in first and where in first
    assert "Connection refused" in r.stderr or "connection refused" in r.stderr.lower()
    assert f"from {where}" in r.stderr.splitlines()[-1]
    assert "pw@" not in r.stderr
