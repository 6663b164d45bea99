"""A deployed single host moves into a Patroni cluster: db1 is deployed alone and holds
data; then db1, db2 and db3 are given one `pg_ha_cluster` and deployed. db1 keeps its data
and leads; db2 and db3 clone it. Its own small lab (`testjoin`, no repository host)."""

from __future__ import annotations

import json
import os
import time

import psycopg
import pytest

from pgops.lab import Lab
from pgops.settings import read_secrets_file
from tests.lab.conftest import PROJECT_ROOT, REUSED, pgops, results

pytestmark = pytest.mark.lab

ENV = {"PGOPS_LAB": "testjoin"}
ROWS = 5000


@pytest.fixture(scope="module")
def lab():
    the_lab = Lab(ENV["PGOPS_LAB"])
    if not REUSED:
        pgops("lab", "down", env=ENV, check=False)
    pgops("lab", "up", "--cluster", "--no-backup", env=ENV)
    yield the_lab
    if not os.environ.get("PGOPS_KEEP_LAB"):
        pgops("lab", "down", env=ENV, check=False)


def _single_db1_inventory(directory) -> str:
    """The lab's inventory with db1 alone and no cluster: a single host, as before, that
    turns PgBouncer on (a single host's choice)."""
    (directory / "group_data").symlink_to(PROJECT_ROOT / "inventory" / "group_data")
    path = directory / "single.py"
    path.write_text(
        "from pgops.lab.inventory import db_servers as _db\n"
        "_hosts, _data = _db()\n"
        "_data.pop('pg_ha_cluster', None)\n"
        "_data['pg_pooler'] = True\n"
        "db_servers = ([h for h in _hosts if h[0] == 'db1'], _data)\n")
    return str(path)


def _count(lab: Lab, member: str) -> str:
    return lab.ssh(member, "cd / && runuser -u postgres -- psql -XAt -d app -c "
                           "'select count(*), sum(n) from kept'", check=False).stdout.strip()


def test_a_deployed_single_host_keeps_its_data_and_leads_the_cluster_it_moves_into(lab, tmp_path):
    single_inventory = _single_db1_inventory(tmp_path)
    pgops("deploy", "-i", single_inventory, env=ENV)
    lab.ssh("db1", "cd / && runuser -u postgres -- psql -XAtq -d app -c "
                   f"'create table kept (n int primary key); insert into kept "
                   f"select generate_series(1, {ROWS})'")
    started = lab.ssh("db1", "cd / && runuser -u postgres -- psql -XAt -c "
                             "'select pg_postmaster_start_time()'").stdout.strip()
    want = f"{ROWS}|{ROWS * (ROWS + 1) // 2}"
    assert _count(lab, "db1") == want
    # The single host's PgBouncer serves its clients on 6432, from its own Postgres.
    password = read_secrets_file(lab.secrets_file)["PGOPS_ROLE_APP_PASSWORD"]
    with psycopg.connect(host=lab.host("db1").address, port=6432, dbname="app", user="app",
                         password=password, sslmode="require", connect_timeout=5) as c:
        assert c.execute("select host(inet_server_addr())").fetchone() == ("127.0.0.1",)
    # `pgops status` shows that PgBouncer's pools: the server connection just used stays pooled.
    single = pgops("status", "--json", "-i", single_inventory, env=ENV, check=False)
    [row] = json.loads(single.stdout)
    [pool] = [p for p in row["pooler"]["pools"] if (p["database"], p["user"]) == ("app", "app")]
    assert row["pooler"]["port"] == 6432 and pool["sv_active"] + pool["sv_idle"] >= 1, row["pooler"]

    pgops("deploy", env=ENV)  # the lab's inventory: db1, db2, db3 in cluster main

    st = json.loads(pgops("cluster", "status", "--json", env=ENV, check=False).stdout)
    (c,) = st["clusters"]
    assert c["leader"] == "db1", c  # the member that held data leads
    deadline = time.monotonic() + 60
    while {_count(lab, m) for m in ("db1", "db2", "db3")} != {want}:
        assert time.monotonic() < deadline, {m: _count(lab, m) for m in ("db1", "db2", "db3")}
        time.sleep(1)
    # Patroni restarted db1's postmaster once, when it took the cluster over.
    now = lab.ssh("db1", "cd / && runuser -u postgres -- psql -XAt -c "
                         "'select pg_postmaster_start_time()'").stdout.strip()
    assert now != started
    again = results(pgops("deploy", env=ENV).out)  # and then nothing more to do
    assert again and [op for op, (ok, error, _) in again.items() if (ok, error) != ("-", "-")] == []
    # db1's PgBouncer now reaches the leader through its HAProxy, as every member's does.
    with psycopg.connect(host=lab.host("db2").address, port=5000, dbname="app", user="app",
                         password=password, sslmode="require", connect_timeout=5) as c:
        assert c.execute("select host(inet_server_addr()), pg_is_in_recovery()").fetchone() == (
            lab.host("db1").address, False)
