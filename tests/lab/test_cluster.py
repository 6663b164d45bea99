"""A Patroni cluster on the lab: three database hosts (also the etcd members) deployed from
bare hosts by `pgops up --cluster`, then checked on the hosts. Its own lab (`testha`, the
`cluster` fixture), shared with test_cluster_endpoint.py."""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from pgops.lab import Lab
from pgops.settings import read_secrets_file
from tests.lab.conftest import CLUSTER_ENV as ENV
from tests.lab.conftest import pgops, results, sql, variant_inventory

pytestmark = pytest.mark.lab

MEMBERS = ("db1", "db2", "db3")


def status() -> dict:
    """`pgops cluster status --json` (its exit code says healthy or not; read both)."""
    run = pgops("cluster", "status", "--json", env=ENV, check=False)
    return {**json.loads(run.stdout), "rc": run.rc}


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
    deadline = time.monotonic() + 60  # a replica that just started runs before it streams
    while True:
        (c,) = status()["clusters"]
        if {m["state"] for m in c["members"] if m["role"] == "replica"} == {"streaming"}:
            break
        assert time.monotonic() < deadline, c
        time.sleep(1)
    roles = sorted(m["role"] for m in c["members"])
    assert roles == ["leader", "replica", "replica"], c
    assert {m["state"] for m in c["members"] if m["role"] == "replica"} == {"streaming"}
    assert len({m["timeline"] for m in c["members"]}) == 1
    assert all(m["lag_bytes"] is not None and m["lag_bytes"] < 16 * 2**20 for m in c["members"])
    assert set(c["urls"]) == {"read-write", "read-only", "direct read-write",
                              "direct prefer-standby", "direct read-only"}
    st = status()
    assert len(st["etcd"]) == 3 and all(e["healthy"] for e in st["etcd"])
    assert st["rc"] == 0


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
    seed = pgops("seed", "--tenants", "2", "-d",  # the password in the environment, not argv
                 f"postgresql://migrator@{lab.host('db1').address}"
                 f",{lab.host('db2').address},{lab.host('db3').address}/app?sslmode=require"
                 "&target_session_attrs=read-write",
                 env={**ENV, "PGPASSWORD": secret(lab, "migrator")})
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
    # pgops.client.db takes the URLs `pgops cluster status` prints, as applications do: the
    # endpoint's read-write port (HAProxy, PgBouncer) and read-only port.
    from pgops.client.db import DbSettings, make_pool

    urls = status()["clusters"][0]["urls"]
    for kind, standby in (("read-write", False), ("read-only", True)):
        url = urls[kind].replace("postgresql://", f"postgresql://app:{secret(lab, 'app')}@", 1)
        settings = DbSettings(url=url, pool_min=1, pool_max=2)
        assert settings.check()["server_version"].startswith("17")
        with make_pool(settings) as pool, pool.connection() as c:
            assert c.execute("select pg_is_in_recovery()").fetchone()[0] is standby


def test_cluster_status_writes_prometheus_metrics(cluster, tmp_path):
    metrics = tmp_path / "pgops_cluster.prom"
    pgops("cluster", "status", "--metrics-file", str(metrics), env=ENV)
    lines = metrics.read_text().splitlines()
    assert 'pgops_cluster_has_leader{cluster="main"} 1' in lines
    assert [x for x in lines if x.startswith("pgops_cluster_member_up{")] == [
        f'pgops_cluster_member_up{{cluster="main",member="{m}"}} 1' for m in MEMBERS]
    assert sum(x.startswith("pgops_cluster_member_leader{") and x.endswith(" 1") for x in lines) == 1
    assert sum(x.startswith("pgops_etcd_healthy{") and x.endswith(" 1") for x in lines) == 3


# -- leader changes under write load ---------------------------------------------------------
def _url(lab: Lab) -> str:
    hosts = ",".join(lab.host(m).address for m in MEMBERS)
    return (f"postgresql://migrator:{secret(lab, 'migrator')}@{hosts}/app?sslmode=require"
            "&target_session_attrs=read-write")


def wait_healthy(timeout: float = 180) -> dict:
    """The cluster with a leader and every member running or streaming, on one timeline, and
    every etcd member healthy: a fault test starts from the whole cluster (a member of etcd
    left down by the test before would let the next fault cost etcd its quorum)."""
    deadline = time.monotonic() + timeout
    while True:
        st = status()
        c = st["clusters"][0]
        states = {m["state"] for m in c["members"]}
        if c["leader"] and states <= {"running", "streaming"} and \
                len({m["timeline"] for m in c["members"]}) == 1 and \
                len(st["etcd"]) == len(MEMBERS) and all(e["healthy"] for e in st["etcd"]):
            return c
        assert time.monotonic() < deadline, f"cluster not healthy after {timeout} s: {st}"
        time.sleep(1)


def same_rows_everywhere(lab: Lab, timeout: float = 60) -> None:
    """Every member comes to hold exactly the leader's probe rows (replicas replay within
    `timeout`): no divergent commit survives anywhere."""
    from pgops.ha.writer import TABLE

    deadline = time.monotonic() + timeout
    while True:
        counts = {m: lab.ssh(m, f"cd / && runuser -u postgres -- psql -XAt -d app -c "
                                f"'select count(*), coalesce(sum(id), 0) from {TABLE}'"
                             ).stdout.strip() for m in MEMBERS}
        if len(set(counts.values())) == 1:
            return
        assert time.monotonic() < deadline, counts
        time.sleep(1)


def _why_no_writes(lab: Lab) -> str:
    """What each reachable member says when writes stopped: Patroni's and etcd's view,
    Patroni's journal's end, the synchronous standby names and what client backends wait on."""
    sql = ("select 'ssn=' || current_setting('synchronous_standby_names') || ' recovery=' || "
           "pg_is_in_recovery() union all select format('%s %s %s/%s %s', pid, state, "
           "wait_event_type, wait_event, left(query, 50)) from pg_stat_activity "
           "where backend_type = 'client backend' and pid <> pg_backend_pid()")
    said: list[str] = []

    def probe(what: str, read) -> None:  # a probe that fails says so: the fault's report stays
        try:
            said.append(f"{what}: {read()}")
        except Exception as e:
            said.append(f"{what}: could not read ({type(e).__name__}: {e})")

    def ssh(m: str, command: str) -> str:
        run = lab.ssh(m, command, check=False, timeout=20)
        return run.stdout.strip()[-2000:] or run.stderr.strip()[-300:]

    probe("status", lambda: json.dumps({k: v for k, v in status().items()
                                        if k in ("clusters", "etcd")}, default=str)[:4000])
    for m in MEMBERS:
        probe(m, lambda m=m: ssh(m, f"cd / && timeout 10 runuser -u postgres -- psql -XAt "
                                    f"-c \"{sql}\""))
        probe(f"{m} Patroni", lambda m=m: ssh(m, "journalctl -u 'patroni@*' -n 12 --no-pager "
                                                 "-o cat"))
    return "\n".join(said)


def fault(cluster, kind: str | None = None, inject=None, heal=None) -> tuple[float, int, str]:
    """Write through the read-write URL, inject a fault on the leader (one of the lab's
    FAULTS by kind, or `inject`), measure: (seconds until writes were accepted again,
    acknowledged rows missing, the new leader)."""
    from pgops.ha.writer import Writer
    from pgops.lab.faults import FAULTS

    if kind:
        inject, heal = FAULTS[kind]

    lab, _ = cluster
    old = wait_healthy()["leader"]
    writer = Writer(_url(lab)).start()
    assert writer.wait_writes(50, timeout=60), writer.errors
    t = time.monotonic()
    inject(lab, old)
    try:
        resumed = writer.wait_writes(50, timeout=120)
        writer.stop()
    finally:  # a failed check must not leave the next tests a member down
        if heal:
            heal(lab, old)
    assert resumed, (f"writes did not resume: {writer.errors}, then {writer.last_error!r}, "
                     f"outages {writer.outages}\n{_why_no_writes(lab)}")
    rto = writer.longest_gap(t)
    new = wait_healthy()
    missing = writer.missing()
    same_rows_everywhere(lab)
    return rto, len(missing), new["leader"]


def test_leader_container_killed_a_replica_takes_over_and_the_old_leader_rejoins(cluster):
    from pgops.endpoint import haproxy, pgbouncer
    from pgops.ha.etcd import SERVICE as ETCD
    from pgops.lab.faults import UNIT as PATRONI

    lab, _ = cluster
    old = wait_healthy()["leader"]
    rto, missing, leader = fault(cluster, "docker kill")
    print(f"docker kill of the leader: writes again after {rto:.1f} s, {missing} acknowledged "
          f"rows missing (asynchronous), new leader {leader}")
    assert missing * 64 <= 1048576  # within maximum_lag_on_failover's bytes, far above a row
    # The host came back (docker start: a boot) with every service of its own running.
    units = (PATRONI, ETCD, pgbouncer.SERVICE, haproxy.SERVICE)
    states = lab.ssh(old, f"systemctl is-active {' '.join(units)}", check=False).stdout.split()
    assert states == ["active"] * len(units), dict(zip(units, states, strict=False))
    # After an unplanned failover, with no redeploy, backups reach the new leader.
    out = pgops("backup", "--type", "incr", env=ENV).stdout
    assert "cluster main: incr backup" in out, out


def test_leader_postmaster_killed_patroni_recovers_without_loss(cluster):
    rto, missing, leader = fault(cluster, "kill -9 postmaster")
    print(f"kill -9 of the leader's postmaster: writes again after {rto:.1f} s, "
          f"{missing} rows missing, leader {leader}")
    assert missing == 0


def test_patroni_stopped_on_the_leader_hands_over_without_loss(cluster):
    rto, missing, leader = fault(cluster, "Patroni stopped")
    print(f"Patroni stopped on the leader: writes again after {rto:.1f} s, {missing} rows "
          f"missing, new leader {leader}")
    assert missing == 0


def test_switchover_to_a_named_member_loses_nothing(cluster):
    lab, _ = cluster
    target = next(m["member"] for m in wait_healthy()["members"] if m["role"] != "leader")
    plan = pgops("cluster", "switchover", "--to", target, "--plan", env=ENV)
    assert f"{target} is promoted" in plan.stdout
    rto, missing, leader = fault(
        cluster, inject=lambda lab, old: pgops("cluster", "switchover", "--to", target, env=ENV))
    print(f"switchover to {target}: writes paused {rto:.1f} s, {missing} rows missing")
    assert leader == target and missing == 0


def test_failover_and_reinit_refuse_without_yes_and_name_the_risk(cluster):
    lab, _ = cluster
    c = wait_healthy()
    replica = next(m["member"] for m in c["members"] if m["role"] != "leader")
    out = pgops("cluster", "failover", "--to", replica, env=ENV, check=False)
    assert out.rc == 2 and "needs --yes" in out.out and "may lose the commits" in out.out
    out = pgops("cluster", "reinit", c["leader"], "--yes", env=ENV, check=False)
    assert out.rc == 2 and "is the leader: switch over first" in out.out
    assert wait_healthy()["leader"] == c["leader"]  # nothing changed


def test_partitioned_leader_stops_taking_writes_and_rejoins_without_divergent_rows(cluster, tmp_path):
    """Cut the leader off from the other members (and their etcd members): a client writing to it
    directly must be refused within the TTL, a new leader is elected on the majority side,
    and once healed the old leader follows it with no row the others do not have."""
    from pgops.ha.writer import Writer

    lab, _ = cluster
    old = wait_healthy()["leader"]
    others = [m for m in MEMBERS if m != old]
    direct = (f"postgresql://migrator:{secret(lab, 'migrator')}@{lab.host(old).address}/app"
              "?sslmode=require")
    writer = Writer(direct).start()
    assert writer.wait_writes(50, timeout=60), writer.errors
    # Blackhole routes to the other members (the host image has iproute2, not iptables): no
    # packet of theirs is answered, while this machine still reaches the old leader.
    routes = [f"{lab.host(m).address}/32" for m in others]
    cut = "; ".join(f"ip route add blackhole {r}" for r in routes)
    t = time.monotonic()
    lab.ssh(old, cut)
    try:
        deadline = time.monotonic() + 90
        new = None
        while new in (None, old):
            assert time.monotonic() < deadline, "no new leader on the majority side"
            seen = json.loads(lab.ssh(others[0], _get("/cluster")).stdout or "null") or {}
            new = next((m["name"] for m in seen.get("members", []) if m["role"] == "leader"), None)
            time.sleep(1)
        refused_after = (writer.acked_at[-1] - t) if writer.acked_at else 0.0
        time.sleep(5)
        late = [a for a in writer.acked_at if a > t + refused_after + 0.001]
        writer.stop()
    finally:
        lab.ssh(old, "; ".join(f"ip route del blackhole {r}" for r in routes))
    print(f"partition: the isolated leader {old} took its last write {refused_after:.1f} s "
          f"after the cut; new leader {new}")
    assert late == []  # nothing accepted after it stopped
    assert refused_after <= 20 + 3 + 5  # ttl + loop_wait + retry slack
    deadline = time.monotonic() + 120
    while (now := wait_healthy())["leader"] != new or \
            {m["member"]: m["role"] for m in now["members"]}[old] == "leader":
        assert time.monotonic() < deadline, f"after healing: {now}"
        time.sleep(1)
    same_rows_everywhere(lab)


def primaries(lab: Lab) -> list[str]:
    """The members whose PostgreSQL answers as a primary (a writer)."""
    query = "cd / && runuser -u postgres -- psql -XAtc 'select pg_is_in_recovery()'"
    return [m for m in MEMBERS if lab.ssh(m, query, check=False).stdout.strip() == "f"]


def test_etcd_one_member_lost_writes_go_on_two_lost_no_writer_quorum_back_recovers(cluster):
    """One of three etcd members lost: the leader renews its key through the other two and
    writes go on. Two lost (the leader's own among them): no quorum, so no leader key can be
    renewed; with failsafe_mode off (Patroni's default; see the README) the leader demotes
    itself within the TTL and no member takes writes: none, rather than two. Quorum back:
    a leader is elected by itself and no acknowledged row is missing."""
    from pgops.ha.etcd import SERVICE
    from pgops.ha.writer import Writer

    lab, _ = cluster
    old = wait_healthy()["leader"]
    first, second = [m for m in MEMBERS if m != old][0], old
    writer = Writer(_url(lab)).start()
    try:
        assert writer.wait_writes(50, timeout=60), writer.errors
        lab.ssh(first, f"systemctl stop {SERVICE}")
        t = time.monotonic()
        time.sleep(25)  # past the TTL: the leader key was renewed without that member
        assert writer.wait_writes(20, timeout=10), writer.errors
        one_lost = writer.longest_gap(t)
        seen = status()
        healthy = sorted(e["endpoint"] for e in seen["etcd"] if e["healthy"])
        assert seen["clusters"][0]["leader"] == old and len(healthy) == 2, seen
        lab.ssh(second, f"systemctl stop {SERVICE}")
        t = time.monotonic()
        deadline = t + 20 + 3 + 2 * 5 + 15  # ttl + loop_wait + retries + slack
        while writers := primaries(lab):
            assert time.monotonic() < deadline, f"still taking writes without etcd quorum: {writers}"
            time.sleep(1)
        stopped = time.monotonic() - t
        last_ack = max(writer.acked_at)
        time.sleep(5)
        assert primaries(lab) == [] and max(writer.acked_at) == last_ack  # none, and it stays so
    finally:
        for m in (first, second):
            lab.ssh(m, f"systemctl start {SERVICE}")
    t = time.monotonic()
    assert writer.wait_writes(50, timeout=120), writer.errors
    back = writer.longest_gap(t)
    writer.stop()
    new = wait_healthy()
    missing = writer.missing()
    same_rows_everywhere(lab)
    print(f"etcd: one member lost, longest write pause {one_lost:.1f} s; two lost, the leader stopped "
          f"taking writes after {stopped:.1f} s; quorum back, writes again after {back:.1f} s "
          f"(leader {new['leader']}), {len(missing)} acknowledged rows missing")
    assert one_lost < 3 and missing == []


def test_a_replica_down_until_the_leader_dropped_its_wal_catches_up_from_the_repository(cluster):
    """A replica's Patroni stopped; its slot is dropped (Patroni's member_slots_ttl, lowered
    here to 0 from 30 min) and the leader writes and recycles WAL until the segment the
    replica needs next is gone from it. Started again, the replica takes what it missed from
    the pgBackRest archive and streams again, holding every row: it is not left broken."""
    from pgops.ha.patroni import conf_path
    from pgops.lab.faults import LAB_CLUSTER, UNIT

    lab, _ = cluster
    c = wait_healthy()
    leader = c["leader"]
    replica = next(m["member"] for m in c["members"] if m["role"] == "replica")

    def q(host: str, query: str, db: str = "postgres") -> str:
        return sql(lab, host, query, db)

    def ttl(value: str) -> None:
        lab.ssh(leader, f"cd / && runuser -u postgres -- patronictl -c {conf_path(LAB_CLUSTER)} "
                        f"edit-config --force --quiet -s member_slots_ttl={value}")

    q(leader, "create table if not exists wal_gone_probe (n int)", db="app")
    needed = q(leader, f"select pg_walfile_name(flush_lsn) from pg_stat_replication "
                       f"where application_name = '{replica}'")
    ttl("0")
    lab.ssh(replica, f"systemctl stop {UNIT}")
    try:
        deadline = time.monotonic() + 60
        while q(leader, f"select count(*) from pg_replication_slots where slot_name = '{replica}'") != "0":
            assert time.monotonic() < deadline, "the stopped member's slot was kept"
            time.sleep(1)
        for i in range(40):  # switched segments and checkpoints until that segment is gone
            if q(leader, f"select count(*) from pg_ls_waldir() where name = '{needed}'") == "0":
                break
            q(leader, f"insert into wal_gone_probe values ({i})", db="app")
            q(leader, "select pg_switch_wal()")
            if i % 4 == 3:
                q(leader, "checkpoint")
        assert q(leader, f"select count(*) from pg_ls_waldir() where name = '{needed}'") == "0", needed
        rows = q(leader, "select count(*) from wal_gone_probe", db="app")
    finally:
        ttl("null")
        t = time.monotonic()
        lab.ssh(replica, f"systemctl start {UNIT}")
    deadline = t + 180
    while True:
        c = status()["clusters"][0]
        [m] = [m for m in c["members"] if m["member"] == replica]
        held = (q(replica, "select count(*) from wal_gone_probe", db="app")
                if m["state"] == "streaming" else "")
        if held == rows:
            break
        assert time.monotonic() < deadline, (m, held, rows)
        time.sleep(2)
    restored = lab.ssh(replica, f"journalctl -u {UNIT} --since '-10min' | grep -c 'restored log file'",
                       check=False).stdout.strip()
    print(f"replica {replica} down until the leader had dropped WAL it needed ({needed}): "
          f"streaming with all {rows} rows {time.monotonic() - t:.1f} s after its start, "
          f"{restored} segments restored from the repository")
    assert int(restored or 0) > 0


def _get(path: str) -> str:
    from pgops.facts.patroni import get_command

    return get_command(path)


def test_synchronous_mode_from_the_settings_loses_no_acknowledged_row(cluster, tmp_path):
    lab, _ = cluster
    sync = variant_inventory(tmp_path, "sync", pg_ha_cluster="main",
                             pg_ha={"synchronous_mode": "on"})
    pgops("deploy", "-i", str(sync), env=ENV)
    try:
        deadline = time.monotonic() + 60
        while "sync" not in {m["sync"] for m in wait_healthy()["members"]}:
            assert time.monotonic() < deadline, "no synchronous standby"
            time.sleep(1)
        assert status()["clusters"][0]["synchronous_mode"] == "on"
        rto, missing, leader = fault(cluster, "docker kill")
        print(f"docker kill in synchronous mode: writes again after {rto:.1f} s, "
              f"{missing} acknowledged rows missing")
        assert missing == 0
    finally:
        pgops("deploy", env=ENV)  # back to the lab's asynchronous default
    deadline = time.monotonic() + 60
    while "sync" in {m["sync"] for m in wait_healthy()["members"]}:
        assert time.monotonic() < deadline, "still synchronous after deploying it off"
        time.sleep(1)


def test_even_etcd_members_are_refused_before_any_change(cluster, tmp_path):
    even = variant_inventory(tmp_path, "even", etcd=["db1", "db2"], pg_ha_cluster="main")
    out = pgops("deploy", "-i", str(even), env=ENV, check=False)
    assert out.rc == 2, out.out
    assert "etcd_servers: 2 members (db1, db2)" in out.out and "odd" in out.out
    assert "Starting operation" not in out.out


# -- backups follow the leader ------------------------------------------------------------
def _rows_at(lab: Lab, n_from: int, n_to: int) -> float:
    """Commit rows n_from..n_to of pitr_probe through the leader; the time after the last.
    Right after a failover the new leader may still be finishing its promotion (Patroni holds
    the key first): the connection is retried, as an application's pool would."""
    deadline = time.monotonic() + 30
    while True:
        try:
            c = multi_host(lab, "migrator", "read-write")
            break
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "no read-write member 30 s after a failover"
            time.sleep(0.5)
    with c:
        if n_from == 1:  # a fresh table (the lab may be reused)
            c.execute("drop table if exists pitr_probe")
            c.execute("create table pitr_probe (n int primary key)")
        for n in range(n_from, n_to + 1):
            c.execute("insert into pitr_probe values (%s)", (n,))
            c.commit()
    time.sleep(1.1)
    return time.time()


def test_backups_follow_the_leader_and_a_restore_before_and_after_a_failover_is_exact(cluster):
    """An unplanned failover (Patroni stopped on the leader: its key is released, a replica
    promotes), then backups against the new leader with no redeploy, and restores to a time
    before and one after the failover, exact to the row."""
    from datetime import UTC, datetime

    from pgops.lab.faults import FAULTS

    lab, _ = cluster
    stop_patroni, start_patroni = FAULTS["Patroni stopped"]
    listed = json.loads(pgops("backup", "list", "--json", env=ENV).stdout)
    assert [st["stanza"] for st in listed] == ["main"], listed  # one stanza for the cluster
    before = _rows_at(lab, 1, 10)
    _rows_at(lab, 11, 20)
    old = wait_healthy()["leader"]
    stop_patroni(lab, old)
    deadline = time.monotonic() + 60
    while status()["clusters"][0]["leader"] in (None, old):
        assert time.monotonic() < deadline, "no new leader after Patroni stopped on the old one"
        time.sleep(1)
    start_patroni(lab, old)
    after = _rows_at(lab, 21, 30)
    _rows_at(lab, 31, 40)
    for kind in ("full", "incr"):  # no redeploy: the repository host finds the new leader
        assert pgops("backup", "--type", kind, env=ENV).rc == 0
    st = json.loads(pgops("backup", "list", "--json", env=ENV).stdout)[0]
    assert [b["type"] for b in st["backups"][-2:]] == ["full", "incr"]
    for t, k in ((before, 10), (after, 30)):
        to = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        result = json.loads(pgops("restore", "--to", to, "--json", env=ENV).stdout)
        try:
            out = lab.ssh(result["host"], f"cd / && runuser -u postgres -- psql -XAt -p "
                                          f"{result['port']} -d app -c 'select count(*), "
                                          "max(n) from pitr_probe'").stdout.strip()
            assert out == f"{k}|{k}", f"restore to after row {k}: {out}"
        finally:
            major, name = result["cluster"].split("/")
            lab.ssh(result["host"], f"pg_dropcluster {major} {name} --stop")


def test_a_past_timelines_stray_segment_does_not_stop_archiving_on_the_leader(cluster):
    """After failovers a leader can hold a segment named for a past timeline, from where
    that timeline ended on (recycled or preallocated before the switch), which PostgreSQL
    marks for archiving. Seen in the lab after ~20 failovers: the archive held that
    timeline's own segment of the name, pgBackRest refused the other copy (different
    checksum), and no WAL was archived after it. Made here: the archive gets one copy (pushed
    directly), pg_wal another, marked ready. The leader's archiving must go on."""
    from pgops.backup.backrest import ARCHIVE_WAL
    from pgops.lab.faults import LAB_CLUSTER

    lab, _ = cluster
    leader = wait_healthy()["leader"]

    def sh(command: str) -> str:
        return lab.ssh(leader, f"cd {LAB_CLUSTER.data} && {command}").stdout.strip()

    def q(query: str) -> str:
        return sql(lab, leader, query)

    history = sh("ls pg_wal | grep -E '^[0-9A-F]{8}[.]history$' | tail -n 1")
    assert history, "no timeline history on the leader after the failover tests"
    ends = [line.split("\t")[:2] for line in sh(f"cat pg_wal/{history}").splitlines() if line]
    tli, end = ends[-1]  # the timeline before the current one, and where it ended
    size = int(q("select setting from pg_settings where name = 'wal_segment_size'"))
    hi, lo = (int(x, 16) for x in end.split("/"))
    segno = -(-((hi << 32) + lo) // size)  # the first segment wholly past its end
    per = 2**32 // size
    stray = f"{int(tli):08X}{segno // per:08X}{segno % per:08X}"
    done = sh(f"ls pg_wal | grep -E '^{int(history[:8], 16):08X}[0-9A-F]{{16}}$' | head -n 2").split()
    assert len(done) == 2, done  # two segments of the current timeline: two different contents
    failed = int(q("select failed_count from pg_stat_archiver"))
    # 45: a kept lab's earlier run left another copy there, which is the condition too.
    sh(f"install -d -o postgres /tmp/stray && cp pg_wal/{done[0]} /tmp/stray/{stray} && "
       f"chown postgres /tmp/stray/{stray} && {{ runuser -u postgres -- pgbackrest "
       f"--stanza=main --no-archive-async archive-push /tmp/stray/{stray} || [ $? = 45 ]; }}")
    sh(f"cp pg_wal/{done[1]} pg_wal/{stray} && chown postgres pg_wal/{stray} && "
       f"runuser -u postgres -- touch pg_wal/archive_status/{stray}.ready")
    def write_and_switch() -> None:
        """A segment completes: the archiver wakes and takes the ready ones, oldest first."""
        q("create table if not exists stray_probe (n int); insert into stray_probe values (1); "
          "select pg_switch_wal()")

    try:
        assert q("show archive_command").startswith(ARCHIVE_WAL)
        write_and_switch()
        deadline = time.monotonic() + 90
        while sh(f"ls pg_wal/archive_status/{stray}.ready 2>/dev/null || true"):
            assert time.monotonic() < deadline, (
                f"{stray} still waits to be archived: "
                f"{q('select failed_count, last_failed_wal from pg_stat_archiver')}")
            time.sleep(1)
        assert int(q("select failed_count from pg_stat_archiver")) == failed
        after = q("select pg_walfile_name(pg_current_wal_lsn())")
        write_and_switch()
        deadline = time.monotonic() + 90
        while q("select coalesce(last_archived_wal, '') from pg_stat_archiver") < after:
            assert time.monotonic() < deadline, "archiving stopped after the stray segment"
            time.sleep(1)
    finally:
        # Archived or not, the stray copy goes: left ready, it would stop archiving here.
        sh(f"rm -rf /tmp/stray pg_wal/archive_status/{stray}.ready "
           f"pg_wal/archive_status/{stray}.done pg_wal/{stray}")
        q("drop table if exists stray_probe")


def test_one_tenant_restored_through_the_leader_after_a_failover_leaves_the_other_alone(cluster):
    """`pgops tenant restore` on the cluster (run after the failover tests: the leader has
    moved): the copy is restored beside on a member, the rows applied through the read-write
    URL, replicated to every member; the other tenant's later change stays, no copy is left."""
    from datetime import UTC, datetime

    lab, _ = cluster
    leader = wait_healthy()["leader"]
    kb = "select id, md5(embedding::text) from knowledge_base where client_id = %s order by id"
    with multi_host(lab, "migrator", "read-write") as c:
        a, b = (r[0] for r in c.execute("select id from clients order by id limit 2"))
        a_kb = c.execute(kb, (a,)).fetchall()
        a_name = c.execute("select name from clients where id = %s", (a,)).fetchone()[0]
        assert a_kb, "the seeded tenant has knowledge base rows"
    time.sleep(1.1)
    t = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    time.sleep(1.1)
    with multi_host(lab, "migrator", "read-write") as c:
        c.execute("delete from knowledge_base where client_id = %s", (a,))
        c.execute("update clients set name = 'A broke it' where id = %s", (a,))
        c.execute("update clients set name = 'B after T' where id = %s", (b,))
        c.commit()
    r = pgops("tenant", "restore", str(a), "--to", t, "--apply", "--yes", "--json", env=ENV)
    assert json.loads(r.stdout)["applied"] is True, r.out[-3000:]
    with multi_host(lab, "migrator", "read-write") as c:
        assert c.info.host == lab.host(leader).address
        assert c.execute(kb, (a,)).fetchall() == a_kb
        assert c.execute("select name from clients where id = %s", (a,)).fetchone()[0] == a_name
        assert c.execute("select name from clients where id = %s", (b,)).fetchone()[0] == "B after T"
    for m in MEMBERS:  # replicated: every member holds A's rows back
        with psycopg.connect(host=lab.host(m).address, dbname="app", user="migrator",
                             password=secret(lab, "migrator"), sslmode="require",
                             connect_timeout=5) as c:
            deadline = time.monotonic() + 30
            while c.execute(kb, (a,)).fetchall() != a_kb:
                assert time.monotonic() < deadline, f"{m} does not hold tenant A's rows back"
                time.sleep(0.5)
        # No copy: no cluster, no data directory, no conf directory (with its scratch mark),
        # this one's or the earlier tests' (`pgops restore` copies dropped with pg_dropcluster).
        left = lab.ssh(m, "pg_lsclusters -h | awk '$2 ~ /^restore_/'; ls -d /var/lib/postgresql/17/"
                          "restore_* /etc/postgresql/17/restore_* 2>/dev/null || true").stdout.strip()
        assert left == "", f"{m}: {left}"


def test_one_tenant_exported_erased_and_loaded_back_through_the_leader(cluster, tmp_path):
    """`tenant export`, `erase --yes` and `load` on the cluster (the leader has moved): the
    erasure reaches every member and leaves the other tenants alone; the export, loaded back
    through the read-write multi-host URL, gives the tenant exactly its rows again."""
    from tests.lab.tenants import rows_of

    lab, _ = cluster
    wait_healthy()
    with multi_host(lab, "migrator", "read-write") as c:
        a, *others = (r[0] for r in c.execute("select id::text from clients order by id"))
        a_rows, others_rows = rows_of(c, a), {o: rows_of(c, o) for o in others}
    assert sum(map(len, a_rows.values())) > 5 and others_rows
    out = tmp_path / "a.sql"
    r = pgops("tenant", "export", a, "-o", str(out), env=ENV)
    assert f"exported tenant {a}" in r.out, r.out
    r = pgops("tenant", "erase", a, "--yes", env=ENV)
    assert f"erased tenant {a}" in r.out, r.out
    for m in MEMBERS:  # replicated: no row of A anywhere, the others as they were
        with psycopg.connect(host=lab.host(m).address, dbname="app", user="migrator",
                             password=secret(lab, "migrator"), sslmode="require",
                             connect_timeout=5) as c:
            deadline = time.monotonic() + 30
            while any(rows_of(c, a).values()):
                assert time.monotonic() < deadline, f"{m} still holds rows of tenant {a}"
                time.sleep(0.5)
            assert {o: rows_of(c, o) for o in others} == others_rows, m
    hosts = ",".join(lab.host(m).address for m in MEMBERS)
    dsn = f"host={hosts} dbname=app user=migrator sslmode=require target_session_attrs=read-write"
    r = pgops("tenant", "load", str(out), "--into", dsn,
              env={**ENV, "PGPASSWORD": secret(lab, "migrator")})
    assert "loaded tenant" in r.out and "warning" not in r.out, r.out
    with multi_host(lab, "migrator", "read-write") as c:
        assert rows_of(c, a) == a_rows
        assert {o: rows_of(c, o) for o in others} == others_rows


def test_in_place_cluster_restore_is_exact_on_every_member_on_a_new_timeline(cluster):
    """The whole cluster back to T: Patroni stopped, etcd state removed, the leader restored
    and promoted, every replica rebuilt on the new timeline; then a failover still works."""
    from datetime import UTC, datetime

    lab, _ = cluster
    t = _rows_at(lab, 1, 10)
    _rows_at(lab, 11, 20)  # committed after T: gone after the restore, on every member
    to = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    old_timeline = wait_healthy()["members"][0]["timeline"]
    plan = pgops("restore", "--to", to, "--in-place", "--plan", env=ENV).out
    assert "remove cluster main from etcd" in plan and "rebuilt as a replica" in plan, plan
    refused = pgops("restore", "--to", to, "--in-place", env=ENV, check=False)
    assert refused.rc != 0 and "every member of cluster main" in refused.out, refused.out
    result = json.loads(pgops("restore", "--to", to, "--in-place", "--yes", "--json",
                              env=ENV).stdout)
    timelines = set(result["timelines"].values())
    assert len(timelines) == 1 and timelines.pop() > old_timeline, result["timelines"]
    assert result["verify"]["row_counts"]["public.pitr_probe"] == 10
    c = wait_healthy()
    assert c["leader"] == result["host"]
    deadline = time.monotonic() + 60
    while True:  # replicas replay to the leader's end: exactly rows 1..10 everywhere
        rows = {m: lab.ssh(m, "cd / && runuser -u postgres -- psql -XAt -d app -c "
                              "'select count(*), max(n) from pitr_probe'").stdout.strip()
                for m in MEMBERS}
        if set(rows.values()) == {"10|10"}:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(1)
    # Archiving and failover work on the new timeline.
    rto, missing, leader = fault(cluster, "Patroni stopped")
    assert missing == 0 and leader != result["host"]
    assert pgops("backup", "--type", "incr", env=ENV).rc == 0


def test_limit_to_a_cluster_member_is_refused_before_any_change(cluster):
    out = pgops("deploy", "--limit", "db2", env=ENV, check=False)
    assert out.rc == 2, out.out
    assert "--limit db2: it is a member of cluster main" in out.out and "drop --limit" in out.out
    assert "Starting operation" not in out.out
