"""The lab fixture: boots the `test` lab once per session with the real `pgops` command,
deploys it, and removes it at the end. For debugging: PGOPS_KEEP_LAB=1 keeps it at the end,
PGOPS_REUSE_LAB=1 starts from the kept one instead of a fresh lab."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from pgops import PROJECT_ROOT
from pgops.lab import Lab
from pgops.settings import read_secrets_file

BIN = Path(sys.executable).parent


@dataclass
class Run:
    rc: int
    out: str  # stdout and stderr
    seconds: float
    stdout: str


def pgops(*args: str, env: dict | None = None, check: bool = True) -> Run:
    """Run the real `pgops` command line, as a user would."""
    t0 = time.monotonic()
    r = subprocess.run([str(BIN / "pgops"), *args], cwd=PROJECT_ROOT, capture_output=True,
                       text=True, env={**os.environ, **(env or {})}, timeout=900)
    run = Run(r.returncode, r.stdout + r.stderr, time.monotonic() - t0, r.stdout)
    if check and r.returncode != 0:
        # A URL's password never reaches a test report (CI logs are kept).
        shown = re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", " ".join(args))
        shown = re.sub(r"(password=)\S+", r"\1***", shown)  # and a keyword DSN's
        raise AssertionError(f"pgops {shown} exited {r.returncode}:\n{run.out[-4000:]}")
    return run


def results(out: str) -> dict[str, tuple[str, str, str]]:
    """pyinfra's results table: operation -> (success, error, no change)."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^\s{4}(.+?)\s{2,}(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", line)
        if m:
            rows[m.group(1).strip()] = (m.group(3), m.group(4), m.group(5))
    return rows


_UP: list[Run] = []


@pytest.fixture(scope="session")
def lab() -> Lab:
    """`pgops up` (the README's main job: lab up, deploy, status) on a fresh `test` lab."""
    the_lab = Lab(os.environ.get("PGOPS_LAB", "test"))
    if not os.environ.get("PGOPS_REUSE_LAB"):
        pgops("lab", "down", check=False)  # a fresh lab: the first deploy is a real first one
    _UP.append(pgops("up", "--hosts", "2"))
    yield the_lab
    if not os.environ.get("PGOPS_KEEP_LAB"):
        pgops("lab", "down", check=False)


@pytest.fixture(scope="session")
def first_deploy(lab) -> Run:
    return _UP[0]


REUSED = bool(os.environ.get("PGOPS_REUSE_LAB"))


#: The cluster lab: `pgops up --cluster --proxy` on three database hosts (etcd members too),
#: a repository host and a proxy host, shared by the modules that test a cluster and its
#: endpoint.
CLUSTER_ENV = {"PGOPS_LAB": "testha"}


@pytest.fixture(scope="session")
def cluster():
    """`pgops up --cluster` on a fresh `testha` lab: (lab, the run). Removed after the last
    test that uses it (pytest_runtest_teardown), so it does not outlive its tests."""
    the_lab = Lab(CLUSTER_ENV["PGOPS_LAB"])
    if not REUSED:
        pgops("lab", "down", env=CLUSTER_ENV, check=False)
    up = pgops("up", "--cluster", "--proxy", env=CLUSTER_ENV)
    yield the_lab, up
    _cluster_lab_down()


def _cluster_lab_down() -> None:
    if not os.environ.get("PGOPS_KEEP_LAB"):
        pgops("lab", "down", env=CLUSTER_ENV, check=False)


def pytest_runtest_teardown(item, nextitem) -> None:
    """The cluster lab goes as soon as the tests that use it are done (they run in a row:
    their modules sort together), before later modules boot labs of their own."""
    if "cluster" in getattr(item, "fixturenames", ()) and (
            nextitem is None or "cluster" not in getattr(nextitem, "fixturenames", ())):
        _cluster_lab_down()


@pytest.fixture(scope="session")
def secrets(lab) -> dict[str, str]:
    return read_secrets_file(lab.secrets_file)



def connect(lab: Lab, host: str, user: str, password: str, **kw) -> psycopg.Connection:
    lab.require_network()
    return psycopg.connect(host=lab.host(host).address, dbname="app", user=user,
                           password=password, connect_timeout=5, **kw)


def variant_inventory(directory: Path, name: str = "variant", host_data: dict | None = None,
                      extra_hosts: list | None = None, etcd: list[str] | None = None,
                      **group_data) -> Path:
    """A lab inventory variant beside a link to the real group_data, so it gets the same
    defaults as inventory/lab.py: extra group data, data of some hosts, extra hosts, other
    etcd members (names of the lab's hosts; default: the lab's)."""
    link = directory / "group_data"
    if not link.exists():
        link.symlink_to(PROJECT_ROOT / "inventory" / "group_data")
    path = directory / f"{name}.py"
    path.write_text(
        "from pgops.lab.inventory import backup_servers as _backup, db_servers as _db\n"
        f"_hosts, _data = _db(**{group_data!r})\n"
        f"_host_data = {host_data or {}!r}\n"
        "db_servers = ([(n, {**h, **_host_data.get(n, {})}) for n, h in _hosts]\n"
        f"              + [tuple(h) for h in {extra_hosts or []!r}], _data)\n"
        "backup_servers = _backup()\n"
        "from pgops.lab.inventory import etcd_servers as _etcd\n"
        f"etcd_servers = [h for h in _etcd() if {etcd!r} is None or h[0] in ({etcd!r} or ())]\n"
        "from pgops.lab.inventory import proxy_servers as _proxy\n"
        "proxy_servers = _proxy()\n"
    )
    return path


@pytest.fixture
def write_inventory(lab, tmp_path):
    """variant_inventory in the test's own temporary directory."""

    def write(name: str = "variant", extra_hosts: list | None = None, **group_data) -> Path:
        return variant_inventory(tmp_path, name, extra_hosts=extra_hosts, **group_data)

    return write


PSQL = "cd / && runuser -u postgres -- psql -XAtq"


def sql(lab, host: str, query: str, db: str = "postgres") -> str:
    """One query as postgres on a lab host, its unaligned output."""
    return lab.ssh(host, f"{PSQL} -d {db} -c \"{query}\"").stdout.strip()


#: One SSH round trip per host: what a refused command must leave exactly as it was.
DB_PRINT = f"""
dpkg-query -W -f '${{Package}} ${{Version}}\\n' | md5sum
find /etc/postgresql /etc/pgbackrest -type f -print0 2>/dev/null | sort -z | xargs -0 md5sum
{PSQL} -c "select md5(string_agg(concat_ws(' ', rolname, rolsuper, rolcanlogin, rolconnlimit,
    rolpassword, rolvaliduntil), ',' order by rolname)) from pg_authid"
{PSQL} -c "select md5(string_agg(concat_ws(' ', line_number, type, database, user_name, address,
    auth_method, error), ',' order by line_number)) from pg_hba_file_rules"
for d in $({PSQL} -c "select datname from pg_database where datallowconn and not datistemplate
    order by 1"); do echo "$d $({PSQL} -d $d -c "select string_agg(version || ':' || sha256, ','
    order by version) from pgops.schema_history" 2>/dev/null)"; done
{PSQL} -c "select pg_postmaster_start_time(), (select string_agg(datname, ',' order by datname)
    from pg_database)"
"""
REPO_PRINT = """
dpkg-query -W -f '${Package} ${Version}\\n' | md5sum
find /etc/pgbackrest -type f -print0 2>/dev/null | sort -z | xargs -0 md5sum
ls /var/lib/pgbackrest/backup/*/ 2>/dev/null | grep -v '^backup.info\\|^latest'
"""


def fingerprint(lab: Lab) -> dict[str, str]:
    """What a refused command must leave untouched on every host, read in one SSH round trip
    per host: packages, /etc/postgresql and /etc/pgbackrest, pg_authid, pg_hba_file_rules, each
    database's schema history, the databases, when Postgres started, the backups."""

    def one(h) -> tuple[str, str]:
        script = DB_PRINT if h.role == "db" else REPO_PRINT
        return h.name, lab.ssh(h, script).stdout

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(one, lab.hosts()))
