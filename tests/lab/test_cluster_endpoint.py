"""The clients' endpoint of the cluster lab (`testha`, shared with test_cluster.py): HAProxy's
read-write and read-only ports, PgBouncer's pools and password lookup, a switchover clients
see as a pause, a failover they reach again through the same port."""

from __future__ import annotations

import re
import threading
import time

import psycopg
import pytest

from pgops.lab import Lab
from tests.lab.conftest import CLUSTER_ENV as ENV
from tests.lab.conftest import pgops, variant_inventory
from tests.lab.exposure import ArgvSampler, probe_ports
from tests.lab.test_cluster import MEMBERS, secret, wait_healthy
from tests.lab.test_files_and_secrets import lab_secrets

pytestmark = pytest.mark.lab

RW, RO, POOLER = 5000, 5001, 6432
#: The lab's proxy group host (`pgops up --cluster --proxy`): HAProxy apart from the members.
PROXY = "proxy1"
ENTRANCES = (*MEMBERS, PROXY)


def through(lab: Lab, member: str, port: int, role: str, password: str | None = None,
            **kw) -> psycopg.Connection:
    """A connection as `role` to port `port` of `member` (one host and port, as most clients)."""
    lab.require_network()
    return psycopg.connect(host=lab.host(member).address, port=port, dbname="app", user=role,
                           password=password if password is not None else secret(lab, role),
                           sslmode="require", connect_timeout=5, **kw)


def served_by(conn: psycopg.Connection) -> tuple[str, bool]:
    """(the server's address, whether it is a replica) of a connection."""
    addr, replica = conn.execute("select host(inet_server_addr()), pg_is_in_recovery()").fetchone()
    return addr, replica


def leader_sql(lab: Lab, sql: str) -> str:
    """Run SQL as postgres on the current leader (peer authentication, on the host)."""
    leader = wait_healthy()["leader"]
    return lab.ssh(leader, f"cd / && runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 "
                           f"-d app -c \"{sql}\"").stdout.strip()


def status_with(metrics) -> dict:
    """`pgops cluster status --json --metrics-file` (and its exit code)."""
    import json

    run = pgops("cluster", "status", "--json", "--metrics-file", str(metrics), env=ENV, check=False)
    return {**json.loads(run.stdout), "rc": run.rc}


def on_host(lab: Lab, member: str, role: str, password: str, dbname: str,
            sql: str) -> tuple[int, str]:
    """psql on `member` to its Postgres over 127.0.0.1 as `role` (password from a pgpass
    file): (exit code, output)."""
    lab.ssh(member, "umask 077; cat > /root/.pgops-test-pgpass",
            input=f"127.0.0.1:5432:{dbname}:{role}:{password}\n")
    r = lab.ssh(member, f"cd / && PGPASSFILE=/root/.pgops-test-pgpass psql -XAt 'host=127.0.0.1 "
                        f"dbname={dbname} user={role} sslmode=require' -c \"{sql}\" 2>&1; "
                        "rc=$?; rm -f /root/.pgops-test-pgpass; exit $rc", check=False)
    return r.returncode, r.stdout.strip()


def test_rw_port_of_every_member_reaches_the_leader_and_ro_port_a_replica(cluster, tmp_path):
    lab, _ = cluster
    leader = wait_healthy()["leader"]
    leader_addr = lab.host(leader).address
    for m in ENTRANCES:  # each member's HAProxy and the proxy host's
        with through(lab, m, RW, "app") as c:
            assert served_by(c) == (leader_addr, False), m
        with through(lab, m, RO, "app") as c:
            addr, replica = served_by(c)
            assert replica and addr != leader_addr, m
    # Status shows each member's routes and pools, and exports them as metrics.
    metrics = tmp_path / "cluster.prom"
    st = status_with(metrics)
    assert st["rc"] == 0
    (c,) = st["clusters"]
    assert [e["member"] for e in c["endpoint"]] == list(ENTRANCES)
    for e in c["endpoint"]:
        assert [m for m, s in e["routes"]["rw"].items() if s == "UP"] == [leader], e
        assert leader not in [m for m, s in e["routes"]["ro"].items() if s == "UP"], e
        # Every member's PgBouncer answers; the proxy host has none, and no leader route.
        if e["proxy"]:
            assert e["pools"] is None and "leader" not in e["routes"], e
        else:
            assert e["pools"] is not None, e
        if e["member"] == leader:  # the rw port's clients were pooled there
            assert ("app", "app") in {(p["database"], p["user"]) for p in e["pools"]}, e
    # Applications are given the proxy host: one host and port, and the CA that verifies the
    # server there (its certificate names the proxy host too: a member's PgBouncer answers).
    url = c["urls"]["read-write"]
    ca = lab.dir / "postgres-pki" / "ca.crt"
    assert url == f"postgresql://{lab.host(PROXY).address}:{RW}/app?sslmode=verify-full&sslrootcert={ca}"
    with psycopg.connect(url, user="app", password=secret(lab, "app"), connect_timeout=5) as conn:
        assert conn.execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()[0]
    text = metrics.read_text()
    assert f'pgops_proxy_route_up{{cluster="main",member="db1",route="rw",server="{leader}"}} 1' in text
    assert f'pgops_pooler_up{{cluster="main",member="{leader}"}} 1' in text
    assert f'pgops_proxy_route_up{{cluster="main",member="{PROXY}",route="rw",server="{leader}"}} 1' in text


def _pooler_files(lab: Lab) -> dict[str, str]:
    """Each member's PgBouncer files (checksums) and the time its PgBouncer started."""
    return {m: lab.ssh(m, "md5sum /etc/pgbouncer/*; systemctl show -p ActiveEnterTimestamp "
                          "pgbouncer").stdout for m in MEMBERS}


def test_a_role_added_by_a_deploy_logs_in_through_pgbouncer_and_a_rotation_takes_effect(
        cluster, tmp_path):
    lab, _ = cluster
    before = _pooler_files(lab)
    roles = [{"name": "migrator", "login": True, "connection_limit": 10},
             {"name": "app_rw", "login": False},
             {"name": "app", "login": True, "connection_limit": 80, "member_of": ["app_rw"]},
             {"name": "reporter", "login": True, "member_of": ["app_rw"]}]
    # The deploy adds the role and lets it in from the applications' network (pg_hba_rules
    # decides who Postgres accepts, also through the endpoint); PgBouncer is not touched.
    rules = [{"database": "app", "user": "app,migrator,reporter", "address": str(lab.subnet)}]
    inv = variant_inventory(tmp_path, "reporter", pg_ha_cluster="main", pg_roles=roles,
                            pg_hba_rules=rules)
    passwords = ("first-reporter-password", "rotated-reporter-password")
    # Every host's and the controller's processes sampled: no password in any argv.
    with ArgvSampler(lab, tmp_path / "argv", pause=0.05) as sampled:
        for password in passwords:
            pgops("deploy", "-i", str(inv), env={**ENV, "PGOPS_ROLE_REPORTER_PASSWORD": password})
            for m in MEMBERS:
                with through(lab, m, RW, "reporter", password) as c:
                    assert c.execute("select current_user").fetchone() == ("reporter",)
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        through(lab, MEMBERS[0], RW, "reporter", passwords[0])
    assert _pooler_files(lab) == before  # no PgBouncer file changed, none restarted
    print(sampled.summary())
    assert sampled.leaks({**lab_secrets(lab), "reporter 1": passwords[0], "reporter 2": passwords[1]}) == []
    # What the samplers must have seen: the deploy (its inventory argument) and Patroni.
    assert str(inv) in sampled.argv["controller"] and "patroni" in sampled.argv["db1"]
    assert sampled.slowest_rate() >= 5


def test_superusers_expired_passwords_and_the_lookup_function_are_refused(cluster):
    lab, _ = cluster
    leader_sql(lab, "drop role if exists pgops_t_su; drop role if exists pgops_t_expired; "
                    "create role pgops_t_su superuser login password 'su-pass-123'; "
                    "create role pgops_t_expired login password 'exp-pass-123' "
                    "valid until '2001-01-01'")
    try:
        for role, password in (("pgops_t_su", "su-pass-123"), ("pgops_t_expired", "exp-pass-123")):
            for port in (RW, POOLER, RO):
                with pytest.raises(psycopg.OperationalError) as e:
                    through(lab, MEMBERS[0], port, role, password)
                # The lookup answers nothing for them (to PgBouncer they do not exist); the
                # read-only port's Postgres accepts only pg_hba_rules's roles from a member.
                assert re.search("no such user|authentication failed|no pg_hba.conf entry",
                                 str(e.value)), (role, port, e.value)
        # The same superuser password is right: Postgres itself lets it in on the host.
        leader = wait_healthy()["leader"]
        assert on_host(lab, leader, "pgops_t_su", "su-pass-123", "app", "select 1") == (0, "1")
        # The lookup role cannot log in through the pooler, and app cannot run the lookup.
        with pytest.raises(psycopg.OperationalError):
            through(lab, MEMBERS[0], RW, "pgbouncer", secret(lab, "pgbouncer"))
        rc, out = on_host(lab, leader, "app", secret(lab, "app"), "postgres",
                          "select * from pgbouncer.get_auth('app')")
        assert rc != 0 and "permission denied for schema pgbouncer" in out, out
    finally:
        leader_sql(lab, "drop role if exists pgops_t_su; drop role if exists pgops_t_expired")


def _pgbench(lab: Lab, on: str, target: str, args: str) -> tuple[int, str]:
    """pgbench (the lab hosts have PostgreSQL 17's) on host `on` against `target`'s
    read-write port, as migrator; the password from a pgpass file, not the command line."""
    line = f"{lab.host(target).address}:{RW}:app:migrator:{secret(lab, 'migrator')}\n"
    lab.ssh(on, "umask 077; cat > /root/.pgops-test-pgpass", input=line)
    r = lab.ssh(on, f"cd / && PGPASSFILE=/root/.pgops-test-pgpass /usr/lib/postgresql/17/bin/pgbench "
                    f"-h {lab.host(target).address} -p {RW} -U migrator "
                    f"'sslmode=require dbname=app' {args} 2>&1; rc=$?; "
                    "rm -f /root/.pgops-test-pgpass; exit $rc", check=False, timeout=600)
    return r.returncode, r.stdout


def _pgbench_meanwhile(lab: Lab, on: str, target: str, args: str) -> tuple[threading.Thread, dict]:
    """_pgbench started in a thread: (the thread, where its rc and out will be)."""
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(
        zip(("rc", "out"), _pgbench(lab, on, target, args), strict=True)))
    thread.start()
    return thread, result


def test_switchover_through_the_rw_port_fails_no_transaction_and_loses_nothing(cluster):
    from pgops.ha.writer import Writer

    lab, _ = cluster
    c = wait_healthy()
    old = c["leader"]
    target, runner = [m["member"] for m in c["members"] if m["member"] != old]
    rc, out = _pgbench(lab, runner, old, "-i -s 2 -q")
    assert rc == 0, out
    # Writes enter through the old leader's own HAProxy and PgBouncer: the path that must
    # carry on to the new leader.
    url = (f"postgresql://migrator:{secret(lab, 'migrator')}@{lab.host(old).address}:{RW}/app"
           "?sslmode=require")
    writer = Writer(url).start()
    assert writer.wait_writes(30, timeout=60), writer.errors
    # pgbench enters through the proxy host, as applications given its one URL do.
    thread, bench = _pgbench_meanwhile(lab, runner, PROXY, "-c 8 -j 2 -T 25 -n -P 5")
    time.sleep(5)
    t = time.monotonic()
    sw = pgops("cluster", "switchover", "--to", target, env=ENV)
    thread.join()
    assert writer.wait_writes(30, timeout=60), writer.errors
    writer.stop()
    pause = writer.longest_gap(t)
    failed = re.search(r"number of failed transactions: (\d+)", bench["out"])
    done = re.search(r"number of transactions actually processed: (\d+)", bench["out"])
    print(f"switchover {old} -> {target} under pgbench -c 8 through {PROXY}:{RW}: "
          f"{done[1] if done else '?'} transactions, {failed[1] if failed else '?'} failed; "
          f"writer paused {pause:.2f} s, {len(writer.errors)} errors, {len(writer.acked)} rows")
    assert bench["rc"] == 0 and "aborted" not in bench["out"], bench["out"][-3000:]
    assert failed and failed[1] == "0", bench["out"][-3000:]
    assert writer.errors == [] and writer.outages == []
    assert writer.missing() == []
    assert wait_healthy()["leader"] == target
    assert "PgBouncer paused" in sw.out and "PgBouncer resumed" in sw.out
    assert f"every proxy host's ({PROXY})" in sw.out
    # Right after: the read-write port of each member and of the proxy host reaches the new
    # leader, the read-only port never the promoted member.
    for m in ENTRANCES:
        with through(lab, m, RW, "app") as conn:
            assert served_by(conn) == (lab.host(target).address, False)
        for _ in range(3):
            with through(lab, m, RO, "app") as conn:
                assert served_by(conn)[1], m


def test_a_rolling_minor_upgrade_fails_no_transaction_through_the_rw_port(cluster):
    lab, _ = cluster
    c = wait_healthy()
    old = c["leader"]
    runner = next(m["member"] for m in c["members"] if m["member"] != old)
    thread, bench = _pgbench_meanwhile(lab, runner, old, "-c 4 -j 2 -T 60 -n")
    time.sleep(3)
    t = time.monotonic()
    up = pgops("upgrade", "--minor", env=ENV)
    took = time.monotonic() - t
    thread.join()
    failed = re.search(r"number of failed transactions: (\d+)", bench["out"])
    print(f"rolling minor upgrade (restarts, a switchover) in {took:.0f} s under pgbench through "
          f"{old}:{RW}: {failed[1] if failed else '?'} failed transactions")
    assert took < 55, "pgbench must outlast the upgrade for the check to mean anything"
    assert bench["rc"] == 0 and "aborted" not in bench["out"], bench["out"][-3000:]
    assert failed and failed[1] == "0"
    assert "PgBouncer resumed" in up.out
    c = wait_healthy()
    assert c["leader"] != old and all(m["timeline"] == c["members"][0]["timeline"] for m in c["members"])


def test_after_an_unplanned_failover_writes_resume_through_the_same_rw_port(cluster):
    from pgops.ha.writer import Writer
    from pgops.lab.faults import FAULTS

    lab, _ = cluster
    c = wait_healthy()
    old = c["leader"]
    entry = PROXY  # where applications given the cluster's URL enter
    writer = Writer(f"postgresql://migrator:{secret(lab, 'migrator')}@"
                    f"{lab.host(entry).address}:{RW}/app?sslmode=require").start()
    assert writer.wait_writes(30, timeout=60), writer.errors
    inject, heal = FAULTS["docker kill"]
    t = time.monotonic()
    inject(lab, old)
    try:
        resumed = writer.wait_writes(30, timeout=120)
        writer.stop()
        seen = "" if resumed else _seen_after_failover(lab, entry)
    finally:  # a failed check must not leave the next tests a member down
        heal(lab, old)
    assert resumed, (f"writes did not resume: first {writer.errors}, last {writer.last_error!r}, "
                     f"outages {writer.outages}\n{seen}")
    rto = writer.longest_gap(t)
    new = wait_healthy()["leader"]
    missing = writer.missing()
    print(f"docker kill of {old}, writes through {entry}:{RW}: again after {rto:.1f} s "
          f"(no client change), {len(missing)} acknowledged rows missing, new leader {new}")
    assert new != old
    assert len(missing) * 64 <= 1048576


def _seen_after_failover(lab: Lab, entry: str) -> str:
    """What a failed failover check prints: the cluster's status and the endpoint's logs."""
    out = [pgops("cluster", "status", env=ENV, check=False).out]
    for h in (*MEMBERS, entry):
        r = lab.ssh(h, "journalctl -q --no-pager -n 15 -u haproxy -u pgbouncer -u 'patroni@*'",
                    check=False, timeout=20)
        out.append(f"--- {h} ---\n{r.stdout[-3000:]}")
    return "\n".join(out)


def test_ro_port_drops_a_replica_that_lags_beyond_the_limit(cluster):
    lab, _ = cluster
    c = wait_healthy()
    leader = c["leader"]
    lagging, other = [m["member"] for m in c["members"] if m["member"] != leader]
    lab.ssh(lagging, "command -v iptables >/dev/null || DEBIAN_FRONTEND=noninteractive "
                     "apt-get install -y -qq --no-install-recommends iptables >/dev/null")
    block = f"INPUT -p tcp -s {lab.host(leader).address} --sport 5432 -j DROP"
    lab.ssh(lagging, f"iptables -I {block}")
    try:
        leader_sql(lab, "create table if not exists pgops_t_lag (x text); "
                        "insert into pgops_t_lag select repeat('x', 1000) from generate_series(1, 6000)")
        deadline = time.monotonic() + 60
        while True:  # Patroni publishes the leader's position every loop_wait (3 s)
            seen = set()
            for _ in range(6):
                with through(lab, leader, RO, "app") as conn:
                    seen.add(served_by(conn)[0])
            if seen == {lab.host(other).address}:
                break
            assert time.monotonic() < deadline, f"{lagging} still served by the ro port: {seen}"
            time.sleep(1)
    finally:
        lab.ssh(lagging, f"iptables -D {block}")
        leader_sql(lab, "drop table if exists pgops_t_lag")
    deadline = time.monotonic() + 90
    while True:  # caught up again: back in the read-only pool
        seen = set()
        for _ in range(6):
            with through(lab, leader, RO, "app") as conn:
                seen.add(served_by(conn)[0])
        if lab.host(lagging).address in seen:
            break
        assert time.monotonic() < deadline, f"{lagging} not back in the ro port: {seen}"
        time.sleep(1)


def test_more_clients_than_the_pool_wait_then_time_out_and_postgres_stays_within_limits(cluster):
    lab, _ = cluster
    leader = wait_healthy()["leader"]
    pool = 20  # pg_pooler.max_db_connections (default)
    holders = [through(lab, MEMBERS[0], RW, "app") for _ in range(pool)]
    try:
        for h in holders:  # each holds a server connection: a transaction left open
            h.execute("begin; select 1")
        servers = int(lab.ssh(leader, "cd / && runuser -u postgres -- psql -XAt -d app -c "
                                      "\"select count(*) from pg_stat_activity where "
                                      "usename = 'app' and datname = 'app'\"").stdout.strip())
        assert servers <= pool, servers
        waiter = through(lab, MEMBERS[0], RW, "app")
        t = time.monotonic()
        with pytest.raises(psycopg.OperationalError, match="query_wait_timeout"):
            waiter.execute("select 1")
        waited = time.monotonic() - t
        print(f"{pool} transactions held the pool; the next client waited {waited:.1f} s, "
              "then: query_wait_timeout")
        assert 25 <= waited <= 40  # pg_pooler.query_wait_timeout (30 s)
        maxc = int(leader_sql(lab, "show max_connections"))
        total = int(leader_sql(lab, "select count(*) from pg_stat_activity"))
        assert total < maxc, (total, maxc)
    finally:
        for h in holders:
            h.close()
    with through(lab, MEMBERS[0], RW, "app") as c:  # the pool serves again at once
        assert c.execute("select 1").fetchone() == (1,)


# -- exposure: what each host listens on, and that each port wants TLS and a login -----------

#: The TCP ports a host of each kind may listen on beyond loopback (sshd is the lab's way in).
EXPECTED_PORTS = {
    "db": {22: "sshd", 5432: "Postgres", POOLER: "PgBouncer", RW: "HAProxy read-write",
           RO: "HAProxy read-only", 8008: "Patroni REST API", 2379: "etcd clients",
           2380: "etcd peers"},
    "backup": {22: "sshd"},
    "proxy": {22: "sshd", RW: "HAProxy read-write", RO: "HAProxy read-only"},
}
KIND = {5432: "pg", POOLER: "pg", RW: "pg", RO: "pg", 8008: "https", 2379: "https", 2380: "https"}


def test_every_listening_port_is_expected_and_wants_tls_and_a_login(cluster):
    lab, _ = cluster
    wait_healthy()
    rows = probe_ports(lab, EXPECTED_PORTS, KIND)
    for r in rows:
        where = f"{r['addr']}:{r['port']}"
        assert r["plain"] is False, f"{where} served plain text"
        assert r["tls1.1"] in (False, None), f"{where} completed a TLS 1.1 handshake"
        if r["port"] in (2379, 2380):  # etcd: no client certificate, no handshake
            assert r["tls1.2"] is False, f"{where} accepted TLS without a client certificate"
        elif r["port"] == 8008:  # Patroni: TLS, and a login for anything that changes state
            assert r["tls1.2"] == "401", f"{where} answered an unauthenticated POST /switchover: {r}"
        else:
            assert r["tls1.2"] is True, f"{where} did not complete a TLS 1.2 handshake"
    print(f"exposure: {len(rows)} ports on {len(lab.hosts())} hosts, all TLS 1.2+, none plain")



def test_cluster_keys_and_secrets_files_have_their_owners_and_modes_and_secrets_stay_there(cluster):
    """Every key and secret-bearing file pgops writes on a cluster's members and proxy host,
    by owner and mode; then every file under the directories pgops writes is searched for
    the lab's passwords: only the files whose service must read one hold it."""
    from pgops.endpoint import haproxy, pgbouncer
    from pgops.ha import etcd, patroni
    from pgops.lab.faults import LAB_CLUSTER
    from pgops.server import pgconf
    from tests.lab.test_files_and_secrets import SEARCHED, secret_holders, stat_files

    pgpass = f"/var/lib/postgresql/{LAB_CLUSTER.major}-{LAB_CLUSTER.name}.pgpass"
    member_files = {
        patroni.conf_path(LAB_CLUSTER): ("postgres", "postgres", "600"),
        patroni.TLS_DIR: ("postgres", "postgres", "750"),
        f"{patroni.TLS_DIR}/host.key": ("postgres", "postgres", "600"),
        f"{etcd.TLS_DIR}/host.key": ("etcd", "etcd", "600"),
        etcd.DATA_DIR: ("etcd", "etcd", "700"),
        f"{pgconf.TLS_DIR}/server.key": ("postgres", "postgres", "600"),
        pgconf.CA_FILE: ("postgres", "postgres", "644"),
        pgbouncer.CONF: ("postgres", "postgres", "640"),
        pgbouncer.HBA: ("postgres", "postgres", "640"),
        pgbouncer.USERLIST: ("postgres", "postgres", "600"),
    }
    lab, _ = cluster
    for m in MEMBERS:
        assert stat_files(lab, m, member_files) == member_files, m
    assert stat_files(lab, PROXY, {haproxy.CONF: ("root", "root", "644")}) == {
        haproxy.CONF: ("root", "root", "644")}
    # Patroni's configuration holds the replication, rewind and REST API passwords, its
    # pgpass file the one it connects with, and PgBouncer's auth_file the lookup role's (it
    # logs in to Postgres with it): each postgres's alone.
    may_hold = {patroni.conf_path(LAB_CLUSTER): ("postgres", "600"), pgpass: ("postgres", "600"),
                pgbouncer.USERLIST: ("postgres", "600")}
    secrets, held = lab_secrets(lab), set()
    where = (*SEARCHED, "/etc/patroni", "/etc/etcd", "/etc/pgbouncer", "/etc/haproxy", "/etc/default")
    for h in (*MEMBERS, PROXY):
        found = secret_holders(lab, h, secrets, where)
        stray = sorted(set(found) - set(may_hold))
        assert not stray, f"{h}: a plaintext secret in {stray}"
        for path in found:
            owner, _group, mode = stat_files(lab, h, [path])[path]
            assert (owner, mode) == may_hold[path], (h, path, owner, mode)
            held.add(path)
    assert patroni.conf_path(LAB_CLUSTER) in held  # the search finds what is there
