"""High availability decided without hosts: the cluster layout and its problems, what each
member does at a deploy, and the Patroni and etcd files rendered from the settings."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from pgops.errors import ConfigError
from pgops.ha import etcd, join, patroni
from pgops.ha.status import agreed_view, member_rows, synchronous_mode
from pgops.ha.topology import client_urls, membership_problems, problems, topology
from pgops.server.cluster import Cluster
from pgops.settings import Settings
from pgops.settings.ha import Ha


def _settings(**kw) -> Settings:
    return Settings(**kw)


def three(**kw) -> dict[str, Settings]:
    return {n: _settings(pg_ha_cluster="main", **kw) for n in ("db1", "db2", "db3")}


# -- layout --------------------------------------------------------------------------------
def test_hosts_sharing_pg_ha_cluster_form_one_cluster_in_inventory_order():
    dbs = {**three(), "solo": _settings()}
    topo = topology(dbs, ["db1", "db2", "db3"])
    assert topo.clusters == {"main": ("db1", "db2", "db3")}
    assert topo.cluster_of("db2") == "main" and topo.cluster_of("solo") is None
    assert topo.members("solo") == ("solo",)
    assert problems(topo, dbs, "etcd_servers") == []


def test_an_even_number_of_etcd_members_is_refused_with_the_members_named():
    dbs = three()
    (p,) = problems(topology(dbs, ["db1", "db2"]), dbs, "etcd_servers")
    assert "etcd_servers: 2 members (db1, db2)" in p and "odd" in p


def test_a_cluster_without_etcd_is_refused():
    dbs = three()
    (p,) = problems(topology(dbs, []), dbs, "etcd_servers")
    assert "main need etcd members" in p


def test_synchronous_mode_with_one_host_is_refused():
    dbs = {"db1": _settings(pg_ha_cluster="main", pg_ha={"synchronous_mode": "on"})}
    (p,) = problems(topology(dbs, ["db1"]), dbs, "etcd_servers")
    assert "synchronous_mode 'on' needs a standby, and db1 is the only member" in p


def test_more_synchronous_standbys_than_replicas_is_refused():
    dbs = three(pg_ha={"synchronous_mode": "strict", "synchronous_node_count": 3})
    (p,) = problems(topology(dbs, ["db1", "db2", "db3"]), dbs, "etcd_servers")
    assert "synchronous_node_count 3 exceeds its 2 standbys" in p


def test_a_member_named_as_repository_host_is_refused():
    dbs = three(pg_backup_host="db3")
    found = problems(topology(dbs, ["db1", "db2", "db3"]), dbs, "etcd_servers")
    assert any("pg_backup_host: db3 is a member of cluster main" in p for p in found)


def test_members_must_share_the_cluster_wide_settings():
    dbs = {**three(), "db3": _settings(pg_ha_cluster="main", pg_port=5433)}
    (p,) = problems(topology(dbs, ["db1", "db2", "db3"]), dbs, "etcd_servers")
    assert p.startswith("cluster main: pg_port differs between db1 and db3")


def test_members_share_their_backup_options_and_a_cluster_is_not_named_like_a_host():
    dbs = {**three(), "db3": _settings(pg_ha_cluster="main", pgbackrest={"repo1-retention-full": 9})}
    (p,) = problems(topology(dbs, ["db1", "db2", "db3"]), dbs, "etcd_servers")
    assert p.startswith("cluster main: pgbackrest differs between db1 and db3")
    dbs = {**three(), "main": _settings()}  # one stanza name for two things
    (p,) = problems(topology(dbs, ["db1", "db2", "db3"]), dbs, "etcd_servers")
    assert p.startswith("cluster main: pg_ha_cluster names a database host outside it too")


def test_a_host_in_two_clusters_by_two_groups_is_refused():
    (p,) = membership_problems({"db1": {"east": "a", "west": "b"}, "db2": {"east": "a"}})
    assert p == ("host db1: pg_ha_cluster: in two clusters: a (group east), b (group west); "
                 "a host belongs to one cluster")


def test_ha_timing_that_would_demote_a_healthy_leader_is_refused():
    with pytest.raises(ValidationError, match="must not exceed ttl"):
        Ha(ttl=20, loop_wait=10, retry_timeout=6)
    with pytest.raises(ValidationError, match="greater than or equal to 20"):
        Ha(ttl=15)
    assert Ha().loop_wait + 2 * Ha().retry_timeout <= Ha().ttl


def test_a_server_certificate_names_every_host_that_may_carry_a_client_to_it():
    s, single = _settings(pg_ha_cluster="main"), _settings()
    addresses = {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3", "proxy1": "10.0.0.9"}
    topo = topology({"db1": s, "db2": s, "db3": single}, [], {"proxy1": "main"})
    # Any member's or proxy host's HAProxy may route a client to db1's PgBouncer or Postgres.
    assert topo.dialed("db1", addresses) == ["10.0.0.1", "10.0.0.2", "10.0.0.9", "127.0.0.1",
                                            "db1", "db2", "localhost", "proxy1"]
    # Loopback too: Patroni's replication connection to its own server dials localhost.
    assert topo.dialed("db3", addresses) == ["10.0.0.3", "127.0.0.1", "db3", "localhost"]


def test_client_urls_name_the_endpoint_ports_and_the_direct_session_attributes():
    s = _settings(pg_ha_cluster="main")
    addresses = {"db1": "10.0.0.1", "db2": "10.0.0.2", "proxy1": "10.0.0.9"}
    urls = client_urls(topology({"db1": s, "db2": s}, []), "main", addresses, s, "app")
    # Clients verify the server: its CA (on this machine) and the host name they dial.
    tls = f"sslmode=verify-full&sslrootcert={s.server_ca_file}"
    assert str(s.server_ca_file).endswith("/postgres-pki/ca.crt")
    assert urls["read-write"] == f"postgresql://10.0.0.1:5000,10.0.0.2:5000/app?{tls}"
    assert urls["read-only"] == f"postgresql://10.0.0.1:5001,10.0.0.2:5001/app?{tls}"
    assert urls["direct read-write"] == ("postgresql://10.0.0.1:5432,10.0.0.2:5432/app?"
                                         f"{tls}&target_session_attrs=read-write")
    assert urls["direct prefer-standby"].endswith("target_session_attrs=prefer-standby")
    # With a proxy group, applications go through the proxy hosts; direct URLs stay the members'.
    proxied = client_urls(topology({"db1": s, "db2": s}, [], {"proxy1": "main"}), "main", addresses, s, "app")
    assert proxied["read-write"] == f"postgresql://10.0.0.9:5000/app?{tls}"
    assert proxied["direct read-write"] == urls["direct read-write"]


# -- what each member does ---------------------------------------------------------------
FRESH = join.Member(handed_over=False, has_data=True, databases=frozenset({"postgres"}))
EMPTY = join.Member(handed_over=False, has_data=False, databases=None)
RUNNING = join.Member(handed_over=True, has_data=True, databases=frozenset({"postgres", "app"}))
USED = join.Member(handed_over=False, has_data=True, databases=frozenset({"postgres", "app"}))


def test_a_fresh_cluster_starts_from_the_first_member_and_replaces_pristine_clusters():
    p = join.plan("main", ["db1", "db2", "db3"], {"db1": FRESH, "db2": FRESH, "db3": EMPTY}, None)
    assert p.leader == "db1"
    assert p.actions == {"db1": "bootstrap", "db2": "join", "db3": "join"}


def test_a_single_host_with_data_moves_into_a_cluster_keeping_its_data():
    p = join.plan("main", ["db1", "db2", "db3"], {"db1": FRESH, "db2": USED, "db3": FRESH}, None)
    assert p.leader == "db2" and p.actions["db2"] == "bootstrap"
    assert p.actions["db1"] == "join"


def test_a_running_cluster_keeps_its_leader_and_members():
    p = join.plan("main", ["db1", "db2"], {"db1": RUNNING, "db2": RUNNING}, "db2")
    assert p.leader == "db2" and set(p.actions.values()) == {"run"}


def test_a_new_member_with_its_own_data_is_never_overwritten():
    with pytest.raises(ConfigError, match="host db3 holds databases app; joining as a replica"):
        join.plan("main", ["db1", "db2", "db3"], {"db1": RUNNING, "db2": RUNNING, "db3": USED},
                  "db1")
    stopped = join.Member(handed_over=False, has_data=True, databases=None)
    with pytest.raises(ConfigError, match="whose server is stopped"):
        join.plan("main", ["db1", "db2"], {"db1": RUNNING, "db2": stopped}, "db1")


def test_two_members_with_data_and_no_cluster_is_refused():
    with pytest.raises(ConfigError, match="db1, db2 each hold data"):
        join.plan("main", ["db1", "db2"], {"db1": USED, "db2": USED}, None)


def test_a_cluster_that_ran_but_has_no_leader_gets_its_config_and_no_writes():
    p = join.plan("main", ["db1", "db2", "db3"], {"db1": RUNNING, "db2": RUNNING, "db3": EMPTY},
                  None)
    assert p.leader is None
    assert p.actions == {"db1": "run", "db2": "run", "db3": "wait"}


# -- rendered files -------------------------------------------------------------------------
def _patroni(**kw) -> dict:
    args = dict(scope="main", member="db2", address="10.0.0.2", cluster=Cluster(17),
                port=5432, listen=["*"], etcd_addresses=["10.0.0.1", "10.0.0.2", "10.0.0.3"],
                ha=Ha(), parameters={"max_connections": 200, "shared_buffers": "512MB",
                                     "port": 5432, "listen_addresses": "*"},
                hba=["hostssl all all 10.0.0.0/8 scram-sha-256"],
                passwords={"replicator": "r-secret", "rewinder": "w-secret", "pgops": "a-secret"})
    args.update(kw)
    text = patroni.render(**args)
    assert text.startswith("# Managed by pgops")
    return json.loads(text.split("\n", 1)[1])


def test_patroni_runs_the_debian_cluster_in_place():
    conf = _patroni()
    pg = conf["postgresql"]
    assert (pg["data_dir"], pg["config_dir"], pg["bin_dir"]) == (
        "/var/lib/postgresql/17/main", "/etc/postgresql/17/main", "/usr/lib/postgresql/17/bin")
    assert pg["listen"] == "*:5432" and pg["connect_address"] == "10.0.0.2:5432"
    assert conf["scope"] == "main" and conf["name"] == "db2"
    assert conf["etcd3"]["hosts"] == ["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"]
    assert conf["etcd3"]["protocol"] == "https"
    assert conf["restapi"]["connect_address"] == "10.0.0.2:8008"
    assert conf["restapi"]["authentication"] == {"username": "pgops", "password": "a-secret"}


def test_cluster_wide_parameters_go_to_the_dcs_and_the_rest_stay_the_members():
    conf = _patroni()
    dcs = conf["bootstrap"]["dcs"]
    assert dcs["postgresql"]["parameters"]["max_connections"] == 200
    assert dcs["ttl"] == 20 and dcs["loop_wait"] == 3 and dcs["synchronous_mode"] is False
    local = conf["postgresql"]["parameters"]
    assert local["shared_buffers"] == "512MB" and "max_connections" not in local
    assert "port" not in local and "listen_addresses" not in local


def test_strict_synchronous_mode_reaches_the_dcs():
    dcs = _patroni(ha=Ha(synchronous_mode="strict"))["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True and dcs["synchronous_mode_strict"] is True


def test_replication_and_rewind_verify_the_leader_and_bind_the_channel():
    auth = _patroni()["postgresql"]["authentication"]
    assert auth["replication"] == {"username": "replicator", "password": "r-secret",
                                   "sslmode": "verify-full",
                                   "sslrootcert": "/etc/postgresql/pgops-tls/ca.crt",
                                   "channel_binding": "require"}
    assert auth["rewind"]["username"] == "rewinder"
    assert auth["rewind"]["sslmode"] == "verify-full"
    assert auth["superuser"] == {"username": "postgres"}  # local socket, peer: no password


def test_replication_hba_names_each_member_host():
    assert patroni.replication_hba(["10.0.0.1"])[-2:] == [
        "hostssl  replication  replicator  10.0.0.1/32  scram-sha-256",
        "hostssl  postgres     rewinder  10.0.0.1/32  scram-sha-256",
    ]


def test_etcd_members_know_each_other_and_use_tls_with_client_certificates():
    members = {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"}
    env = dict(line.split("=", 1) for line in etcd.render("db2", members).splitlines()
               if not line.startswith("#"))
    assert env["ETCD_NAME"] == "db2" and env["ETCD_DATA_DIR"] == etcd.DATA_DIR
    assert env["ETCD_INITIAL_CLUSTER"] == ("db1=https://10.0.0.1:2380,db2=https://10.0.0.2:2380,"
                                          "db3=https://10.0.0.3:2380")
    assert env["ETCD_CLIENT_CERT_AUTH"] == env["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
    assert env["ETCD_LISTEN_CLIENT_URLS"] == "https://10.0.0.2:2379,https://127.0.0.1:2379"
    assert etcd.token(members) == etcd.token(dict(reversed(members.items())))
    assert etcd.token(members) != etcd.token({**members, "db4": "10.0.0.4"})


def test_status_rows_merge_patroni_and_pg_stat_replication_and_show_missing_members_down():
    seen = {"members": [
        {"name": "db1", "role": "leader", "state": "running", "timeline": 2, "host": "10.0.0.1"},
        {"name": "db2", "role": "sync_standby", "state": "streaming", "timeline": 2, "lag": 0},
    ]}
    repl = [{"name": "db2", "state": "streaming", "sync_state": "sync", "lag_bytes": 120,
             "lag_s": 0.002}]
    rows = member_rows(seen, repl, ["db1", "db2", "db3"])
    assert rows[0]["role"] == "leader" and rows[0]["lag_bytes"] == 0 and rows[0]["sync"] is None
    assert (rows[1]["lag_bytes"], rows[1]["lag_s"], rows[1]["sync"]) == (120, 0.002, "sync")
    assert rows[2] == {"member": "db3", "role": None, "state": "down", "timeline": None,
                       "lag_bytes": None, "lag_s": None, "sync": None, "pending_restart": None}
    # A replica still starting: Patroni says "unknown", which is no number of bytes.
    seen["members"][1].update(lag="unknown", state="starting")
    assert member_rows(seen, [], ["db1", "db2"])[1]["lag_bytes"] is None


def test_dynamic_config_patch_holds_only_what_differs():
    current = {"ttl": 20, "postgresql": {"parameters": {"max_connections": 100,
                                                        "hot_standby": "on"}}, "other": 1}
    desired = {"ttl": 20, "postgresql": {"parameters": {"max_connections": 200,
                                                        "hot_standby": True}}}
    assert patroni.config_patch(current, desired) == {
        "postgresql": {"parameters": {"max_connections": 200}}}
    assert patroni.config_patch(current, {"ttl": "20"}) == {}
    assert patroni.config_patch({}, {"synchronous_mode": False}) == {"synchronous_mode": False}


def test_status_reports_the_synchronous_mode_the_cluster_runs_in():
    assert synchronous_mode({"synchronous_mode": True, "synchronous_mode_strict": True}) == "strict"
    assert synchronous_mode({"synchronous_mode": True}) == "on"
    assert synchronous_mode({"ttl": 20}) == "off"
    assert synchronous_mode(None) is None


def test_status_trusts_the_leader_most_members_see_not_a_cut_off_member():
    def view(leader):
        return {"members": [{"name": leader, "role": "leader"}]}

    stale, fresh = view("db1"), view("db2")
    assert agreed_view([stale, fresh, fresh]) is fresh
    assert agreed_view([None, None]) is None
    assert agreed_view([{"members": []}, fresh]) is fresh


def test_a_backed_up_cluster_makes_replicas_from_the_repository_first():
    assert patroni.replica_methods(None) == {"create_replica_methods": ["basebackup"],
                                             "basebackup": [{"checkpoint": "fast"}]}
    m = patroni.replica_methods("main")
    assert m["create_replica_methods"] == ["pgbackrest", "basebackup"]  # basebackup: no backup yet
    assert m["pgbackrest"]["command"] == "pgbackrest --stanza=main --delta --type=standby restore"
    assert m["pgbackrest"]["keep_data"] and m["pgbackrest"]["no_params"]
    assert m["recovery_conf"]["restore_command"] == 'pgbackrest --stanza=main archive-get %f "%p"'


def test_cluster_status_as_prometheus_metrics():
    from pgops.metrics import cluster_prometheus

    seen = {"members": [
        {"name": "db1", "role": "leader", "state": "running", "timeline": 4},
        {"name": "db2", "role": "replica", "state": "streaming", "timeline": 4, "lag": 0},
    ]}
    repl = [{"name": "db2", "sync_state": "async", "lag_bytes": 2048, "lag_s": 0.5}]
    st = {"clusters": [{"cluster": "main", "leader": "db1",
                        "members": member_rows(seen, repl, ["db1", "db2", "db3"])}],
          "etcd": [{"endpoint": "https://10.0.0.1:2379", "healthy": True},
                   {"endpoint": "https://10.0.0.3:2379", "healthy": False}]}
    lines = set(cluster_prometheus(st).splitlines())
    for sample in ('pgops_cluster_has_leader{cluster="main"} 1',
                   'pgops_cluster_member_up{cluster="main",member="db1"} 1',
                   'pgops_cluster_member_up{cluster="main",member="db3"} 0',  # down
                   'pgops_cluster_member_leader{cluster="main",member="db1"} 1',
                   'pgops_cluster_member_leader{cluster="main",member="db2"} 0',
                   'pgops_cluster_member_timeline{cluster="main",member="db2"} 4',
                   'pgops_cluster_member_lag_bytes{cluster="main",member="db2"} 2048',
                   'pgops_cluster_member_lag_seconds{cluster="main",member="db2"} 0.5',
                   'pgops_etcd_healthy{endpoint="https://10.0.0.3:2379"} 0'):
        assert sample in lines, sample
    # A member that is down has no timeline or lag: no sample rather than a made-up one.
    assert not any(x.startswith('pgops_cluster_member_timeline{cluster="main",member="db3"}')
                   for x in lines)
    assert "# TYPE pgops_cluster_member_lag_bytes gauge" in lines


def test_a_cluster_command_names_the_cluster_it_cannot_pick():
    from pgops.errors import PgopsError
    from pgops.ha.status import Clusters

    s = _settings(pg_ha_cluster="main")
    two = Clusters({}, {}, topology({"db1": s, "db2": _settings(pg_ha_cluster="other")}, []))
    none = Clusters({}, {}, topology({"db1": _settings()}, []))
    assert Clusters({}, {}, topology({"db1": s}, [])).one(None) == "main"
    assert two.one("other") == "other"
    for clusters, name, message in (
            (two, None, "the inventory has clusters main, other: name one with --cluster"),
            (two, "nope", "cluster 'nope': the inventory has main, other"),
            (none, None, "the inventory has no clusters (no database host sets pg_ha_cluster)"),
            (none, "nope", "the inventory has no clusters (no database host sets pg_ha_cluster); "
                           "there is no cluster 'nope'")):
        with pytest.raises(PgopsError) as e:
            clusters.one(name)
        assert str(e.value) == message


def test_a_members_slot_cannot_keep_wal_until_the_leaders_disk_is_full():
    from pgops.server.pgconf import SLOT_WAL_KEEP, settings
    from pgops.server.tuning import Resources

    res = Resources(memory_bytes=4 * 2**30, cpus=2, rotational=False, shm_bytes=2**30)
    member = settings(_settings(pg_ha_cluster="main"), res, "db1")
    assert member["max_slot_wal_keep_size"] == SLOT_WAL_KEEP == "8GB"
    local = _patroni(parameters=member)["postgresql"]["parameters"]  # a member's own setting
    assert local["max_slot_wal_keep_size"] == "8GB"
    assert "max_slot_wal_keep_size" not in settings(_settings(), res, "db1")  # no slots there
    mine = settings(_settings(pg_ha_cluster="main", pg_settings={"max_slot_wal_keep_size": "50GB"}),
                    res, "db1")
    assert mine["max_slot_wal_keep_size"] == "50GB"


# -- reload ---------------------------------------------------------------------------------
def test_a_patroni_reload_ends_only_once_postgres_loaded_the_rewritten_pg_hba(tmp_path):
    """The command's shell run against stand-ins: systemctl's reload is a signal Patroni acts
    on later (here: pg_hba.conf rewritten 0.4 s on, Postgres's reload 0.4 s after that)."""
    import subprocess
    import time

    hba, loaded = tmp_path / "pg_hba.conf", tmp_path / "loaded"
    hba.write_text("old\n")
    (tmp_path / "bin").mkdir()
    for name, body in (
            ("systemctl", f'[ "$1" = reload ] && [ "$2" = patroni@17-main ] || exit 3\n'
                          f'(sleep 0.4; echo new > {hba}; sleep 0.4; date +%s.%N > {loaded})'
                          ' >/dev/null 2>&1 &'),
            # psql through runuser: Postgres's pg_conf_load_time, as an epoch
            ("runuser", f'[ -f {loaded} ] && cat {loaded} || date -d "-1 hour" +%s.%N')):
        (tmp_path / "bin" / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / "bin" / name).chmod(0o755)
    command = patroni.reload_command(Cluster(17), 5432, 3).replace(Cluster(17).hba, str(hba))
    started = time.monotonic()
    r = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=20,
                       env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - started >= 0.8 and loaded.exists() and hba.read_text() == "new\n"
