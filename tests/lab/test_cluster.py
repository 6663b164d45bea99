"""A Patroni cluster on the lab: three database hosts (also the etcd members) deployed from
bare hosts by `pgops up --cluster`, then checked on the hosts. Its own lab (`testha`), booted
once for this file and removed after it."""

from __future__ import annotations

import json
import os
import time

import psycopg
import pytest

from pgops.lab import Lab
from pgops.settings import read_secrets_file
from tests.lab.conftest import REUSED, pgops, results

pytestmark = pytest.mark.lab

ENV = {"PGOPS_LAB": "testha"}
MEMBERS = ("db1", "db2", "db3")


@pytest.fixture(scope="module")
def cluster():
    """`pgops up --cluster` on a fresh `testha` lab: (lab, the run)."""
    the_lab = Lab(ENV["PGOPS_LAB"])
    if not REUSED:
        pgops("lab", "down", env=ENV, check=False)
    up = pgops("up", "--cluster", env=ENV)
    yield the_lab, up
    if not os.environ.get("PGOPS_KEEP_LAB"):
        pgops("lab", "down", env=ENV, check=False)


def status() -> dict:
    return json.loads(pgops("cluster", "status", "--json", env=ENV).stdout)


def secret(lab: Lab, role: str) -> str:
    return read_secrets_file(lab.secrets_file)[f"PGOPS_ROLE_{role.upper()}_PASSWORD"]


def multi_host(lab: Lab, role: str, attrs: str) -> psycopg.Connection:
    """The libpq multi-host connection applications use (`pgops cluster status` prints it)."""
    lab.require_network()
    hosts = ",".join(lab.host(m).address for m in MEMBERS)
    return psycopg.connect(host=hosts, dbname="app", user=role, password=secret(lab, role),
                           sslmode="require", target_session_attrs=attrs, connect_timeout=5)


def test_a_cluster_deploys_from_bare_hosts_with_one_leader_and_streaming_replicas(cluster):
    _lab, up = cluster
    assert "cluster main: leader" in up.stdout
    (c,) = status()["clusters"]
    roles = sorted(m["role"] for m in c["members"])
    assert roles == ["leader", "replica", "replica"], c
    assert {m["state"] for m in c["members"] if m["role"] == "replica"} == {"streaming"}
    assert len({m["timeline"] for m in c["members"]}) == 1
    assert all(m["lag_bytes"] is not None and m["lag_bytes"] < 16 * 2**20 for m in c["members"])
    assert set(c["urls"]) == {"read-write", "prefer-standby", "read-only"}
    etcd = status()["etcd"]
    assert len(etcd) == 3 and all(e["healthy"] for e in etcd)


def test_second_deploy_changes_nothing(cluster):
    second = pgops("deploy", env=ENV)
    rows = results(second.out)
    assert rows, second.out
    changed = [op for op, (success, error, _) in rows.items() if (success, error) != ("-", "-")]
    assert changed == [], second.out[-3000:]
    print(f"cluster: pgops up {cluster[1].seconds:.1f} s, no-op re-deploy {second.seconds:.1f} s")


def test_patroni_owns_the_postmaster_and_debian_unit_stays_off(cluster):
    lab, _ = cluster
    for m in MEMBERS:
        assert lab.ssh(m, "systemctl is-active patroni@17-main").stdout.strip() == "active"
        off = lab.ssh(m, "systemctl is-enabled postgresql@17-main", check=False).stdout.strip()
        assert off == "disabled"
        assert lab.ssh(m, "cat /etc/postgresql/17/main/start.conf").stdout.strip() == "manual"
        checksums = lab.ssh(m, "cd / && runuser -u postgres -- psql -XAtc 'show data_checksums'")
        assert checksums.stdout.strip() == "on"


def test_writes_reach_every_replica_and_pgvector_searches_there_with_hnsw(cluster):
    lab, _ = cluster
    seed = pgops("seed", "--tenants", "2", "-d",
                 f"postgresql://migrator:{secret(lab, 'migrator')}@{lab.host('db1').address}"
                 f",{lab.host('db2').address},{lab.host('db3').address}/app?sslmode=require"
                 "&target_session_attrs=read-write", env=ENV)
    assert seed.rc == 0
    with multi_host(lab, "migrator", "read-write") as c:
        leader_count = c.execute("select count(*) from knowledge_base").fetchone()[0]
        c.execute("select pg_current_wal_lsn()")
    assert leader_count > 0
    for m in MEMBERS:
        with psycopg.connect(host=lab.host(m).address, dbname="app", user="migrator",
                             password=secret(lab, "migrator"), sslmode="require",
                             connect_timeout=5) as c:
            if not c.execute("select pg_is_in_recovery()").fetchone()[0]:
                continue
            deadline = time.monotonic() + 30
            while c.execute("select count(*) from knowledge_base").fetchone()[0] < leader_count:
                assert time.monotonic() < deadline, f"{m} did not catch up"
                time.sleep(0.5)
            c.execute("set enable_seqscan = off")
            q = ("select id from knowledge_base order by embedding <=> "
                 "(select embedding from knowledge_base limit 1) limit 5")
            plan = "\n".join(r[0] for r in c.execute("explain " + q).fetchall())
            assert "knowledge_base_embedding_hnsw_idx" in plan, plan
            assert len(c.execute(q).fetchall()) == 5


def test_read_only_url_reaches_a_standby_and_read_write_the_leader(cluster):
    lab, _ = cluster
    leader = status()["clusters"][0]["leader"]
    with multi_host(lab, "app", "read-write") as c:
        assert not c.execute("select pg_is_in_recovery()").fetchone()[0]
        assert c.info.host == lab.host(leader).address
    with multi_host(lab, "app", "read-only") as c:
        assert c.execute("select pg_is_in_recovery()").fetchone()[0]
