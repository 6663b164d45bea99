"""The lab fixture: boots the `test` lab once per session with the real `pgops` command,
deploys it, and removes it at the end. For debugging: PGOPS_KEEP_LAB=1 keeps it at the end,
PGOPS_REUSE_LAB=1 starts from the kept one instead of a fresh lab."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
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


def fingerprint(lab: Lab) -> dict[str, str]:
    """What a failed deploy must leave untouched on every host."""
    out = {}
    for h in lab.hosts():
        if h.role != "db":
            out[h.name] = lab.ssh(h, "md5sum /etc/pgbackrest/pgbackrest.conf 2>&1; true").stdout
            continue
        r = lab.ssh(h, "md5sum /etc/postgresql/17/main/conf.d/50-pgops.conf "
                       "/etc/postgresql/17/main/pg_hba.conf; cd / && runuser -u postgres -- "
                       "psql -XAtc 'select pg_postmaster_start_time(), "
                       "(select string_agg(rolname||rolconnlimit, chr(44) order by rolname) "
                       "from pg_roles)'")
        out[h.name] = r.stdout
    return out
