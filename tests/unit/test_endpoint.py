"""The endpoint's pure parts: PgBouncer's and HAProxy's files from the settings, the rule for
whether a host runs PgBouncer, the connection budget, and the runtime commands and status
parsing around a switchover."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from pgops.endpoint import auth, control, haproxy, pgbouncer
from pgops.ha.topology import problems, topology
from pgops.settings import Settings
from pgops.settings.endpoint import Pooler, pooler_of
from pgops.settings.secrets import role_secrets

SECRETS = {"PGOPS_ROLE_PGBOUNCER_PASSWORD": "pool-pw"}
APP = [{"name": "app", "owner": "migrator"}]


def member(**kw) -> Settings:
    return Settings(pg_ha_cluster="main", pg_databases=APP, secrets=SECRETS, **kw)


def test_pgbouncer_runs_on_cluster_members_by_default_and_on_a_single_host_when_asked():
    assert pooler_of(None, in_cluster=True) == Pooler()
    assert pooler_of(None, in_cluster=False) is None
    assert pooler_of(False, in_cluster=True) is None
    assert pooler_of({"port": 7432}, in_cluster=False).port == 7432
    assert "pgbouncer" in [r.name for r in member().roles]
    assert "pgbouncer" not in [r.name for r in Settings().roles]
    # The lookup role's password is a secret whenever the pooler runs.
    assert role_secrets({"pg_ha_cluster": "main"})["PGOPS_ROLE_PGBOUNCER_PASSWORD"] == "pgbouncer"
    assert "PGOPS_ROLE_PGBOUNCER_PASSWORD" not in role_secrets({"pg_ha_cluster": "main",
                                                                "pg_pooler": False})


def test_bad_pooler_settings_are_refused_naming_the_field():
    with pytest.raises(ValidationError, match="default_pool_size .* exceeds max_db_connections"):
        Settings(pg_pooler={"default_pool_size": 50, "max_db_connections": 10})
    with pytest.raises(ValidationError, match="pg_listen_addresses .* leaves out"):
        Settings(pg_pooler=True, pg_listen_addresses=["10.0.0.5"])
    with pytest.raises(ValidationError, match="must differ"):
        Settings(pg_proxy={"rw_port": 5001})


def test_pgbouncer_serves_only_the_application_databases_through_the_leader_route():
    ini = pgbouncer.render(member(), ("127.0.0.1", 5002))
    assert "app = host=127.0.0.1 port=5002 dbname=app\n" in ini
    assert "* =" not in ini  # no wildcard: a pool per listed database, nothing else reachable
    assert "pgops_auth = host=127.0.0.1 port=5432 dbname=postgres pool_size=2" in ini
    settings = pgbouncer.parse(ini)
    assert settings["auth_user"] == "pgbouncer" and settings["auth_query"] == auth.QUERY
    assert settings["client_tls_sslmode"] == "require"
    # To Postgres through loopback: the server checked against pgops's PostgreSQL CA.
    assert settings["server_tls_sslmode"] == "verify-ca"
    assert settings["server_tls_ca_file"] == "/etc/postgresql/pgops-tls/ca.crt"
    assert settings["pool_mode"] == "transaction" and settings["query_wait_timeout"] == "30"


def test_pgbouncer_hba_lets_the_admin_in_by_peer_only_and_refuses_the_lookup_entry():
    from pgops.endpoint.access import client_networks

    nets = client_networks(member(pg_hba_rules=[{"address": "10.1.0.0/16"},
                                                {"address": "10.9.0.0/16", "method": "reject"}]),
                           ["10.0.0.1", "10.0.0.2"])
    assert nets == ["10.1.0.0/16", "10.0.0.1/32", "10.0.0.2/32", "127.0.0.1/32", "::1/128"]
    hba = pgbouncer.render_hba(nets)
    assert "hostssl  all  all  10.1.0.0/16  scram-sha-256" in hba
    assert "0.0.0.0/0  scram-sha-256" not in hba and "10.9.0.0" not in hba
    assert "local    pgbouncer  postgres  peer" in hba
    assert "hostssl  all  pgbouncer  0.0.0.0/0  reject" in hba
    assert "hostssl  all  postgres  0.0.0.0/0  reject" in hba
    assert "hostssl  pgops_auth  all  0.0.0.0/0  reject" in hba
    lines = [ln for ln in hba.splitlines() if ln.startswith("hostssl")]
    assert lines[-1].endswith("scram-sha-256") and all("trust" not in ln for ln in lines)


def test_the_auth_file_holds_the_lookup_password_and_an_unusable_admin_entry():
    text = pgbouncer.render_userlist('pw"with quote')
    assert '"pgbouncer" "pw""with quote"' in text
    admin = text.splitlines()[1]
    assert admin.startswith('"postgres" "') and 'with quote' not in admin
    # The admin entry depends on the lookup password, so it changes only when that does.
    assert admin != pgbouncer.render_userlist("another").splitlines()[1]


def test_only_a_change_of_the_listening_socket_restarts_pgbouncer():
    old = pgbouncer.render(member(), ("127.0.0.1", 5002))
    bigger = pgbouncer.render(member(pg_pooler={"default_pool_size": 10}), ("127.0.0.1", 5002))
    moved = pgbouncer.render(member(pg_pooler={"port": 7432}), ("127.0.0.1", 5002))
    assert not pgbouncer.needs_restart(old, bigger)
    assert pgbouncer.needs_restart(old, moved)
    assert pgbouncer.needs_restart(None, old)


def test_haproxy_routes_by_patroni_role_and_cuts_sessions_only_where_a_member_turns_wrong():
    cfg = haproxy.render(member(), {"db1": "10.0.0.1", "db2": "10.0.0.2"}, ["10.0.0.1", "10.0.0.2"])
    sections = {s.split("\n", 1)[0]: s for s in cfg.split("\n\n")}
    rw = sections[f"listen {haproxy.RW}"]
    ro = sections[f"listen {haproxy.RO}"]
    leader = sections[f"listen {haproxy.LEADER}"]
    assert "bind *:5000" in rw and "uri /primary" in rw and "10.0.0.1:6432 check" in rw
    assert "shutdown-sessions" not in rw  # clients of a demoted leader's PgBouncer carry on
    assert "uri /replica?lag=1048576" in ro and "10.0.0.2:5432 check on-marked-down shutdown-sessions" in ro
    assert "bind 127.0.0.1:5002" in leader and "on-marked-down shutdown-sessions" in leader
    assert "check-ssl verify required ca-file" in cfg and "port 8008" in cfg
    # OPTIONS: Patroni answers with the status alone (a GET's body meets HAProxy's reset).
    assert cfg.count("http-check send meth OPTIONS uri ") == 3 and "meth GET" not in cfg
    # Statistics have no login: loopback unless the settings name a scraper's address.
    assert "bind 127.0.0.1:8404" in cfg
    assert "bind [fd00::9]:8404" in haproxy.render(member(pg_proxy={"stats_address": "fd00::9"}),
                                                  {"db1": "10.0.0.1"}, ["10.0.0.1"])
    # Clients only from pg_hba_rules's networks, the members and loopback.
    assert "tcp-request connection reject unless { src 10.0.0.1/32 10.0.0.2/32 127.0.0.1/32 ::1/128 }" in rw
    # Without PgBouncer the rw port goes to Postgres and there is no leader route.
    plain = haproxy.render(member(pg_pooler=False), {"db1": "10.0.0.1"}, ["10.0.0.1"])
    assert "10.0.0.1:5432 check" in plain.split(f"listen {haproxy.RO}")[0]
    assert haproxy.LEADER not in plain


def test_a_proxy_host_carries_the_rw_and_ro_ports_and_the_members_let_it_forward():
    dbs = {f"db{i}": member() for i in (1, 2, 3)}
    topo = topology(dbs, ["db1", "db2", "db3"], {"proxy1": None})  # the only cluster: implied
    assert topo.proxies == {"proxy1": "main"} and topo.served_by("proxy1") == "main"
    assert topo.entrances("main") == ("proxy1",) and topo.forwarders("db2") == ("db1", "db2", "db3", "proxy1")
    members = {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"}
    cfg = haproxy.render(dbs["db1"], members, [*members.values(), "10.0.0.9"], member=False)
    assert f"listen {haproxy.RW}" in cfg and f"listen {haproxy.RO}" in cfg
    assert haproxy.LEADER not in cfg  # no PgBouncer of its own to lead to
    assert "10.0.0.9/32 127.0.0.1/32" in cfg
    # Every forwarder may reach the application databases, never as a superuser.
    from pgops.endpoint.access import forwarded_rejects, forwarded_users
    from pgops.ha.patroni import pooler_hba
    s = dbs["db1"]
    hba = pooler_hba(["10.0.0.1", "10.0.0.9"], ["app"], forwarded_rejects(s), forwarded_users(s))
    assert "hostssl  app  all  10.0.0.9/32  scram-sha-256" in hba
    assert any(line.startswith("hostssl  app  postgres,") and "10.0.0.9/32  reject" in line for line in hba)
    # Its rw route is re-pointed at a switchover too (it has no leader route).
    cmds = control.route_commands(["db1", "db2", "db3"], "db2", leader_route=False)
    assert f"set server {haproxy.RW}/db2 health up" in cmds and not any(haproxy.LEADER in c for c in cmds)


@pytest.mark.parametrize(("proxies", "clusters", "db_hosts", "expected"), [
    ({"p1": None}, ("a", "b"), (), "proxy_servers: p1: pg_ha_cluster: name the cluster it serves "
                                    "(the inventory has a, b)"),
    ({"p1": "c"}, ("a",), (), "proxy_servers: p1: pg_ha_cluster: 'c' is not a cluster of the "
                              "inventory (have: a)"),
    ({"p1": None}, (), (), "proxy_servers: p1: pg_ha_cluster: name the cluster it serves "
                           "(the inventory has no clusters)"),
    ({"db1": None}, ("a",), ("db1",), "proxy_servers: db1 is a database host; a proxy host is "
                                      "another host (cluster members run HAProxy already)"),
])
def test_a_proxy_host_must_serve_one_known_cluster(proxies, clusters, db_hosts, expected):
    from pgops.ha.topology import proxy_problems
    dbs = {f"{c}{i}": Settings(pg_ha_cluster=c, pg_databases=APP, secrets=SECRETS)
           for c in clusters for i in (1, 2, 3)}
    dbs |= {h: Settings(secrets=SECRETS) for h in db_hosts if h not in dbs}
    topo = topology(dbs, [], proxies)
    assert proxy_problems(topo, proxies, [*dbs], "proxy_servers") == [expected]
    assert topo.proxies == {}


def test_the_connection_budget_of_every_pgbouncer_must_fit_max_connections():
    ok = {f"db{i}": member() for i in (1, 2, 3)}
    assert problems(topology(ok, ["db1", "db2", "db3"]), ok, "etcd_servers") == []
    big = {f"db{i}": member(pg_pooler={"max_db_connections": 40, "default_pool_size": 40})
           for i in (1, 2, 3)}
    (problem,) = problems(topology(big, ["db1", "db2", "db3"]), big, "etcd_servers")
    assert problem.startswith("cluster main: pg_pooler: 3 PgBouncer(s) x 42 server connections")
    assert "exceed max_connections 100 less 15 reserved" in problem


def test_routes_point_at_the_new_leader_and_keep_it_off_the_read_only_port():
    cmds = control.route_commands(["db1", "db2", "db3"], "db2")
    assert f"set server {haproxy.RW}/db2 health up" in cmds
    assert f"set server {haproxy.LEADER}/db1 health down" in cmds
    assert f"set server {haproxy.RO}/db2 health down" in cmds
    assert not any(f"{haproxy.RO}/db1" in c or f"{haproxy.RO}/db3" in c for c in cmds)


def test_haproxy_stat_csv_is_read_into_routes():
    text = ("# pxname,svname,qcur,status,extra\n"
            f"{haproxy.RW},FRONTEND,,OPEN,\n{haproxy.RW},db1,0,UP,\n{haproxy.RW},db2,0,DOWN,\n"
            f"{haproxy.RW},BACKEND,0,UP,\npgops_stats,FRONTEND,,OPEN,\n")
    assert control.routes(control.parse_stat(text)) == {"rw": {"db1": "UP", "db2": "DOWN"}}
    assert control.parse_stat("") == []


def test_forwarded_connections_never_come_as_superusers_or_pgops_roles():
    from pgops.endpoint.access import forwarded_rejects, forwarded_users
    from pgops.ha.patroni import pooler_hba

    s = member(pg_roles=[{"name": "admin", "superuser": True}, {"name": "app"}],
               pg_hba_rules=[{"user": "app,migrator", "address": "10.1.0.0/16"},
                             {"user": "app", "address": "10.2.0.0/16"}])
    lines = pooler_hba(["10.0.0.1"], ["app"], forwarded_rejects(s), forwarded_users(s))
    assert lines == ["hostssl  app  postgres,admin,replicator,rewinder,pgbouncer  10.0.0.1/32  reject",
                     "hostssl  app  app,migrator  10.0.0.1/32  scram-sha-256"]
    assert forwarded_users(member()) == "all"  # no rule: only members and loopback get in


def test_pool_rows_become_numbers_without_the_admin_console():
    from pgops.endpoint.status import pools

    text = ("database|user|cl_active|cl_waiting|sv_active|sv_idle|sv_used|maxwait|maxwait_us|pool_mode\n"
            "app|app|3|2|3|0|1|1|500000|transaction\npgbouncer|pgbouncer|1|0|0|0|0|0|0|statement\n")
    (row,) = pools(pgbouncer.parse_rows(text))
    assert row == {"database": "app", "user": "app", "cl_active": 3, "cl_waiting": 2,
                   "sv_active": 3, "sv_idle": 0, "sv_used": 1, "maxwait_s": 1.5}


def test_a_rolling_minor_upgrade_does_replicas_then_switches_over_then_the_old_leader():
    from pgops.ha import upgrade

    text = ("postgresql-17|17.11-0+deb13u1|17.12-0+deb13u1\n"
            "postgresql-17-pgvector|0.8.0-1|0.8.0-1\n")
    v = upgrade.parse_versions(text)
    assert upgrade.newer(v) == {"postgresql-17": ("17.11-0+deb13u1", "17.12-0+deb13u1")}
    same = {"postgresql-17": ("17.12", "17.12")}
    st = {"cluster": "main", "leader": "db2", "members": [
        {"member": m, "state": "running" if m == "db2" else "streaming"} for m in ("db1", "db2", "db3")]}
    plan = upgrade.upgrade_plan(st, {"db1": v, "db2": v, "db3": same}, pooled=True)
    assert [(s.kind, s.member, s.upgrade) for s in plan.steps] == [
        ("member", "db1", True), ("member", "db3", False), ("switchover", "db2", False),
        ("member", "db2", True), ("extensions", "db2", False)]
    assert "restart only" in plan.steps[1].text and "PgBouncer paused" in plan.steps[2].text
    down = {**st, "members": [*st["members"][:2], {"member": "db3", "state": "stopped"}]}
    assert upgrade.upgrade_plan(down, {}, pooled=True).refusals == [
        "every member must be healthy first: db3 is stopped"]
    assert "versions unknown on db3" in upgrade.upgrade_plan(st, {"db1": v, "db2": v}, True).refusals[0]


def _fake_admin(monkeypatch, answers):
    """remote.try_run replaced: PgBouncer admin commands answered from `answers`
    (member, command) -> (ok, out); records what ran."""
    ran = []

    def try_run(host, command, user=None, timeout=0):
        what = "PAUSE" if "PAUSE" in command else "RESUME"
        ran.append((host, what))
        return answers.get((host, what), (True, ""))

    monkeypatch.setattr(control.remote, "try_run", try_run)
    return ran


def test_a_pause_that_gives_up_is_still_resumed_and_nothing_is_switched(monkeypatch):
    from pgops.errors import PgopsError

    ran = _fake_admin(monkeypatch, {("db2", "PAUSE"): (False, "timeout"),
                                    ("db1", "RESUME"): (True, "")})
    hosts = {"db1": "db1", "db2": "db2", "db3": "db3"}
    switched = []
    with pytest.raises(PgopsError, match="did not pause .* on db2: timeout; nothing was switched"):
        with control.paused(hosts, ["db1", "db2", "db3"], member(), lambda m: None):
            switched.append(True)
    assert not switched
    # Every member paused at once; db2's PAUSE goes on inside PgBouncer after psql gave up:
    # every member is resumed, db2 too.
    assert sorted(ran) == sorted([(m, w) for m in hosts for w in ("PAUSE", "RESUME")])
    assert [w for _, w in ran] == ["PAUSE"] * 3 + ["RESUME"] * 3


def test_a_failed_resume_names_the_member_and_keeps_the_first_error(monkeypatch):
    from pgops.errors import PgopsError

    _fake_admin(monkeypatch, {("db1", "RESUME"): (False, "connection refused"),
                              ("db2", "RESUME"): (False, "ERROR: pooler is not paused/suspended")})
    with pytest.raises(PgopsError) as e:
        with control.paused({"db1": "db1", "db2": "db2"}, ["db1", "db2"], member(), lambda m: None):
            raise PgopsError("Patroni refused the switchover")
    text = str(e.value)
    assert "did not resume on db1: connection refused" in text and "db2" not in text.split(";")[0]
    assert "after: Patroni refused the switchover" in text


def test_each_member_re_points_its_routes_in_the_round_trip_of_its_resume(monkeypatch):
    """point_at with paused()'s `deferred`: members' HAProxy commands wait for their RESUME
    (one round trip each); proxy hosts are re-pointed at once. A member whose routes failed
    is resumed all the same, and named."""
    from pgops.errors import PgopsError

    commands: list[tuple[str, str]] = []

    def try_run(host, command, user=None, timeout=0):
        commands.append((host, command))
        if "RESUME" in command and host == "db2":
            return True, f"{control.ROUTES_FAILED} No such server.\n"
        return True, ""

    monkeypatch.setattr(control.remote, "try_run", try_run)
    hosts = {"db1": "db1", "db2": "db2", "proxy1": "proxy1"}
    with pytest.raises(PgopsError, match="HAProxy not re-pointed at the new leader on db2: No such server"):
        with control.paused(hosts, ["db1", "db2"], member(), lambda m: None) as before_resume:
            control.point_at(hosts, ["db1", "db2"], "db2", member(), True, ["proxy1"],
                             deferred=before_resume)
            assert [h for h, _ in commands] == ["db1", "db2", "proxy1"]  # PAUSE twice, proxy1
    resumes = {h: c for h, c in commands[3:]}
    assert set(resumes) == {"db1", "db2"}
    for c in resumes.values():
        assert c.index("set server") < c.index("RESUME") and "runuser -u postgres" in c


def test_a_resume_runs_after_its_routes_whether_or_not_they_were_re_pointed(tmp_path):
    """resume_command's shell with stand-ins: a failed re-pointing prints the marker and its
    output, then the RESUME runs; its exit status is the RESUME's."""
    import subprocess

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "runuser").write_text(f"#!/bin/sh\necho resumed >> {tmp_path / 'log'}\n")
    (tmp_path / "bin" / "runuser").chmod(0o755)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}
    r = subprocess.run(["sh", "-c", control.resume_command(6432, "echo 'No such server.'; exit 1")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout == f"{control.ROUTES_FAILED} No such server.\n"
    r = subprocess.run(["sh", "-c", control.resume_command(6432, "true")],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout == ""
    assert (tmp_path / "log").read_text() == "resumed\nresumed\n"


def test_a_step_on_every_member_runs_on_all_of_them_at_once(monkeypatch):
    """remote.try_run_each: each host's command starts before any has answered (one round
    trip for all), and the answers come back in the jobs' order."""
    import gevent

    from pgops import remote

    events = []

    def try_run(host, command, user=None, timeout=0):
        events.append(("start", host))
        gevent.sleep(0.05 * (3 - int(host[-1])))  # db1 answers last
        events.append(("end", host))
        return True, f"{host}: {command}"

    monkeypatch.setattr(remote, "try_run", try_run)
    out = remote.try_run_each([("db1", "a"), ("db2", "b"), ("db3", "c")])
    assert out == [(True, "db1: a"), (True, "db2: b"), (True, "db3: c")]
    assert [e for e, _ in events[:3]] == ["start"] * 3
    assert [h for e, h in events if e == "end"] == ["db3", "db2", "db1"]


def test_a_command_that_raises_on_one_host_is_that_hosts_failure_and_the_others_finish(monkeypatch):
    import gevent

    from pgops import remote

    done = []

    def try_run(host, command, user=None, timeout=0):
        if host == "db1":
            raise TimeoutError("no answer in 30 s")
        gevent.sleep(0.02)
        done.append(host)
        return True, "RESUME"

    monkeypatch.setattr(remote, "try_run", try_run)
    out = remote.try_run_each([("db1", "x"), ("db2", "x"), ("db3", "x")])
    assert out == [(False, "TimeoutError: no answer in 30 s"), (True, "RESUME"), (True, "RESUME")]
    assert sorted(done) == ["db2", "db3"]


def _fake_switch(monkeypatch, request, promoted):
    """remote.try_run replaced for a switchover: the leader's REST request and the new
    leader's promotion wait each answer (delay s, ok, out); records when each ended."""
    import gevent

    from pgops import remote

    ended = {}

    def try_run(host, command, user=None, timeout=0):
        kind = "request" if "/switchover" in command else "promoted"
        delay, ok, out = request if kind == "request" else promoted
        gevent.sleep(delay)
        ended[kind] = True
        return ok, out

    monkeypatch.setattr(remote, "try_run", try_run)
    return ended


def _switch():
    import time

    from pgops.ha import control as ha_control

    t0 = time.monotonic()
    answer = ha_control.switch({"db1": "db1", "db2": "db2"}, "db1", "db2", member(), "/etc/p.yml")
    return answer, time.monotonic() - t0


def test_a_switchover_ends_when_the_new_leader_writes_not_when_patronis_answer_comes(monkeypatch):
    """Patroni's REST API answers on whole seconds; the promotion is watched alongside."""
    ended = _fake_switch(monkeypatch, (1.0, True, 'Successfully switched over to "db2"'),
                         (0.2, True, ""))
    answer, took = _switch()
    assert took < 0.6 and ended == {"promoted": True}
    assert answer.get(timeout=2) == (True, 'Successfully switched over to "db2"')


def test_a_refused_switchover_raises_at_once_without_waiting_for_a_promotion(monkeypatch):
    from pgops.errors import PgopsError

    _fake_switch(monkeypatch, (0.1, False, "Patroni answered 412: candidate name does not match"),
                 (30, True, ""))
    with pytest.raises(PgopsError, match="did not switch over to db2: Patroni answered 412"):
        _, took = _switch()
    _fake_switch(monkeypatch, (0.1, True, 'Switched over to "db3" instead of "db2"'), (30, True, ""))
    with pytest.raises(PgopsError, match="instead of"):
        _switch()


def test_a_switchover_whose_new_leader_never_writes_raises_naming_it(monkeypatch):
    from pgops.errors import PgopsError

    _fake_switch(monkeypatch, (0.05, True, 'Successfully switched over to "db2"'),
                 (0.2, False, "Postgres still in recovery after 60 s"))
    with pytest.raises(PgopsError, match="db2 did not accept writes after the switchover: "
                                         "Postgres still in recovery"):
        _switch()



def test_the_promotion_wait_ends_once_standby_signal_is_gone_and_the_leader_writes(tmp_path):
    """promoted_command's shell with the real python3 against a stand-in Patroni (a local
    HTTP server answering /primary with 200) and a stand-in psql (runuser answering "f"):
    standby.signal removed 0.5 s on (the promotion); neither is asked before the file is
    gone, and the wait ends soon after."""
    import http.server
    import subprocess
    import threading
    import time

    from pgops import pki
    from pgops.ha.patroni import TLS_DIR
    from pgops.server.cluster import Cluster
    from pgops.settings.ha import PATRONI_PORT

    data = Cluster(17).data
    signal, asked = tmp_path / "standby.signal", tmp_path / "asked"
    signal.write_text("")
    requests: list[tuple[str, bool]] = []

    class Patroni(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            requests.append((self.path, signal.exists()))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    ca = tmp_path / "ca.crt"  # the script loads its CA before any request
    ca.write_text(pki.ca_file(tmp_path / "pki", "test CA"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Patroni)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "runuser").write_text(
        f"#!/bin/sh\n[ -e {signal} ] && echo runuser >> {asked}\necho f\n")
    (tmp_path / "bin" / "runuser").chmod(0o755)
    command = (control.promoted_command(member())
               .replace(f"{data}/standby.signal", str(signal))
               .replace(f"https://127.0.0.1:{PATRONI_PORT}/", f"http://127.0.0.1:{server.server_port}/")
               .replace(f"{TLS_DIR}/ca.crt", str(ca)))
    assert str(signal) in command and str(server.server_port) in command
    try:
        started = time.monotonic()  # before the promotion starts its clock
        promotion = subprocess.Popen(["sh", "-c", f"sleep 0.5; rm {signal}"])
        r = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=20,
                           env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
        promotion.wait()
    finally:
        server.shutdown()
    assert r.returncode == 0, r.stderr
    assert 0.5 <= time.monotonic() - started < 3 and not asked.exists()
    assert requests == [("/primary", False)]


def test_patroni_giving_up_watching_leaves_the_promotion_to_decide(monkeypatch):
    """Patroni answers 503 "status unknown" after max(10 s, loop_wait) while the switchover
    goes on: not a refusal. A wait that fails carries Patroni's answer."""
    from pgops.errors import PgopsError

    unknown = "Patroni answered 503 to POST /switchover: Switchover status unknown"
    ended = _fake_switch(monkeypatch, (0.05, False, unknown), (0.3, True, ""))
    answer, took = _switch()
    assert ended == {"request": True, "promoted": True} and took >= 0.3
    _fake_switch(monkeypatch, (0.3, False, "Patroni answered 503 to POST /switchover: "
                                           "Switchover failed"),
                 (0.1, False, "Postgres still in recovery after 60 s"))
    with pytest.raises(PgopsError, match="still in recovery after 60 s; Patroni's answer: "
                                         "Patroni answered 503 .*Switchover failed"):
        _switch()


def test_a_patroni_wait_gives_up_by_the_clock_not_by_a_count_of_polls(tmp_path):
    """Each poll starts Python and may wait 3 s for Patroni: here each takes 0.5 s and never
    answers 200; a 1 s limit ends the wait in about 1 s, where 10 counted polls took 5."""
    import subprocess
    import time

    from pgops.facts.patroni import wait_command

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3").write_text("#!/bin/sh\nsleep 0.5; echo 503\n")
    (tmp_path / "bin" / "python3").chmod(0o755)
    started = time.monotonic()
    r = subprocess.run(["sh", "-c", wait_command("/primary", 1, interval=0.1)],
                       capture_output=True, text=True, timeout=20,
                       env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert r.returncode == 1 and "did not answer 200 on /primary within 1 s" in r.stderr
    assert time.monotonic() - started < 3
