"""A Patroni cluster on etcd: the etcd members, then Patroni on each database host of a
cluster, the leader first. What each member does is decided in pgops.ha.join from what the
members hold. Steps every database host passes (operations.ordering) keep the order across
hosts: the leader's roles, then its start under Patroni, then the replicas' clone."""

from __future__ import annotations

from collections.abc import Mapping
from io import StringIO
from typing import Any

from gevent.event import AsyncResult
from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, FindInFile
from pyinfra.operations import server, systemd

from pgops import pki
from pgops.backup import backrest, roles
from pgops.deploys.server import restart_on_failure
from pgops.endpoint.access import forwarded_rejects, forwarded_users
from pgops.facts.patroni import PatroniCluster, wait_command
from pgops.facts.postgres import PgDatabases
from pgops.facts.system import HostResources
from pgops.ha import etcd, join, patroni
from pgops.ha.patroni import LEADER_WAIT_S, REPLICA_WAIT_S
from pgops.ha.topology import Topology
from pgops.operations import apt as apt_ops
from pgops.operations import cache, files, units
from pgops.operations import patroni as patroni_ops
from pgops.operations.ordering import every_host_reaches
from pgops.operations.units import unit_facts
from pgops.server import pgconf, psql
from pgops.server.cluster import Cluster
from pgops.server.psql import AS_POSTGRES
from pgops.settings import Settings
from pgops.settings.ha import CLUSTER_CA, PATRONI_API_SECRET, PATRONI_API_USER, REPLICATOR, REWINDER

#: python3-etcd: Patroni's etcd3 module imports it (Debian lists it as one alternative of several).
PATRONI_PACKAGES = ("patroni", "python3-etcd")
ETCD_PACKAGES = ("etcd-server", "etcd-client")
#: Debian's patroni@ unit does not restart a crashed Patroni. Without Patroni, its
#: Postgres keeps running as a primary after the leader key has expired and a replica was
#: promoted; a prompt restart lets Patroni see that and demote it.
RESTART_DROPIN = restart_on_failure("a crashed Patroni comes back and demotes a stale primary.")


def _host_names(name: str, address: str) -> list[str]:
    """What a cluster certificate names: peers dial the address, local tools 127.0.0.1."""
    return [name, address, "127.0.0.1", "localhost"]


def _tls_files(directory: str, owner: str, pki_dir, address: str) -> bool:
    """The cluster CA and this host's certificate from pgops's cluster CA; True if changed."""
    pem = pki.host_files(pki_dir, host.name, _host_names(host.name, address), ca_name=CLUSTER_CA)
    files.directory(name=f"TLS directory {directory}", path=directory, user=owner, group=owner,
                    mode="750")
    ops = [files.put(name=f"{directory}/{fname}", src=StringIO(pem[key]), dest=f"{directory}/{fname}",
                     user=owner, group=owner, mode=mode)
           for fname, key, mode in (("ca.crt", "ca", "644"), ("host.crt", "cert", "644"),
                                    ("host.key", "key", "600"))]
    return any(op.will_change for op in ops)  # all three planned first: one snapshot read


@deploy("etcd member")
def etcd_member(topology: Topology, addresses: Mapping[str, str],
                dbs: Mapping[str, Settings]) -> None:
    """etcd on the hosts of the etcd group: TLS between members and for clients, data in
    its own directory. The first start of all members is one step, so they form the store
    together; later, an unchanged configuration changes nothing."""
    if host.name not in topology.etcd or not topology.clusters:
        return
    # The clusters' CA: where the first cluster's first member keeps it.
    pki_dir = dbs[next(iter(topology.clusters.values()))[0]].ha_pki_dir
    apt_ops.packages(name="Install etcd", packages=list(ETCD_PACKAGES), no_recommends=True)
    tls_changed = _tls_files(etcd.TLS_DIR, "etcd", pki_dir, addresses[host.name])
    members = {m: addresses[m] for m in topology.etcd}
    conf = files.put(name="etcd configuration", src=StringIO(etcd.render(host.name, members)),
                     dest=etcd.ENV_FILE, mode="644")
    files.directory(name="etcd data directory", path=etcd.DATA_DIR, user="etcd", group="etcd",
                    mode="700")
    cache.read_together(unit_facts([etcd.SERVICE]))
    units.service(name="etcd running", service=etcd.SERVICE, running=True, enabled=True,
                  restarted=conf.will_change or tls_changed)
    files.directory(name="The package's single-node etcd data removed",
                    path=etcd.PACKAGE_DATA_DIR, present=False)


def _member_facts(name: str, s: Settings) -> dict[str, tuple[Any, Any, dict[str, Any]]]:
    """What the plan reads of a member, by what it tells: (host, fact, arguments)."""
    h = host.inventory.get_host(name)
    c = Cluster.of(s)
    return {"databases": (h, PgDatabases, {"port": s.pg_port, **AS_POSTGRES}),
            "patroni_conf": (h, File, {"path": patroni.conf_path(c)}),
            "handed_over": (h, FindInFile, {"path": join.start_conf(c),
                                            "pattern": f"^{join.HANDED_OVER}"}),
            "data": (h, File, {"path": f"{c.data}/PG_VERSION", **AS_POSTGRES}),
            "patroni": (h, PatroniCluster, {})}


def _member_state(name: str, s: Settings) -> join.Member:
    facts = _member_facts(name, s)

    def read(what: str) -> Any:
        h, fact, kwargs = facts[what]
        return cache.fact(fact, on=h, **kwargs)

    dbs = read("databases")
    return join.Member(
        handed_over=bool(read("patroni_conf")) and bool(read("handed_over")),
        has_data=bool(read("data")),
        databases=None if dbs is None else frozenset(dbs),
    )


def _leader_now(members: tuple[str, ...]) -> str | None:
    """The leader as the first member whose Patroni answers sees it (None: none answers)."""
    for m in members:
        seen = cache.fact(PatroniCluster, on=host.inventory.get_host(m))
        for member in (seen or {}).get("members", []):
            if member.get("role") == "leader":
                return member["name"]
    return None


def cluster_plan(cluster: str, topology: Topology, dbs: Mapping[str, Settings]) -> join.Plan:
    """The plan for `cluster`, made once per run (every member's deploy asks for it)."""
    plans = host.inventory.__dict__.setdefault("_pgops_cluster_plans", {})
    if cluster not in plans:  # the first member's deploy makes it; the others wait for it
        result = plans[cluster] = AsyncResult()
        try:
            members = topology.clusters[cluster]
            cache.read_at_once([f for m in members for f in _member_facts(m, dbs[m]).values()])
            state = {m: _member_state(m, dbs[m]) for m in members}
            result.set(join.plan(cluster, members, state, _leader_now(members)))
        except Exception as e:
            result.set_exception(e)
            raise
    return plans[cluster].get()


def _acts(topology: Topology, dbs: Mapping[str, Settings], action: join.Action) -> bool:
    """Whether this host is a cluster member whose plan at this deploy is `action`."""
    cluster = topology.cluster_of(host.name)
    return cluster is not None and cluster_plan(cluster, topology, dbs).actions[host.name] == action


def _wait(name: str, path: str, seconds: int) -> None:
    """Poll the local REST API until `path` answers 200 (Patroni's health endpoints)."""
    server.shell(name=name, commands=[wait_command(path, seconds)])


@deploy("Patroni member")
def patroni_member(s: Settings, topology: Topology, dbs: Mapping[str, Settings],
                   addresses: Mapping[str, str]) -> bool:
    """Patroni on a database host of a cluster, configured from the settings (the tuned
    parameters, pg_hba rules, the roles' passwords); the member the cluster starts from is
    handed over to Patroni here. Returns whether writes (roles, databases, migrations) go to
    this host: a single host's own, or a cluster's leader."""
    cluster = topology.cluster_of(host.name)
    if cluster is None:
        return True
    the_plan = cluster_plan(cluster, topology, dbs)
    action = the_plan.actions[host.name]
    c = Cluster.of(s)
    unit = patroni.service(c)
    # A backed-up cluster's members restore and fetch WAL with pgBackRest (restore_command
    # runs from Patroni's first start: the backups deploy configures it later).
    apt_ops.packages(name="Install Patroni", no_recommends=True,
                 packages=[*PATRONI_PACKAGES, *(roles.PACKAGES if s.pg_backup_host else ())])
    tls_changed = _tls_files(patroni.TLS_DIR, "postgres", s.ha_pki_dir, addresses[host.name])
    conf = files.put(name="Patroni configuration", src=StringIO(_config(s, cluster, topology, addresses)),
                     dest=patroni.conf_path(c), user="postgres", group="postgres", mode="600")
    dropin = files.put(name="Patroni restarts when it crashes (systemd drop-in)",
                       src=StringIO(RESTART_DROPIN), dest=f"/etc/systemd/system/{unit}.service.d/pgops.conf",
                       create_remote_dir=True, mode="644")
    systemd.daemon_reload(name="systemd reloaded (drop-in changed)", _if=dropin.did_change)
    files.file_absent(name="No pgops settings file (Patroni writes the settings)",
                      path=pgconf.paths(s)["conf"])
    if action == "run":
        cache.read_together(unit_facts([unit]))
        units.service(name="Patroni enabled", service=unit, running=None, enabled=True)
        started = units.service(name="Patroni running", service=unit, running=True)
        if conf.will_change or tls_changed:  # a Patroni started just now read the new file
            server.shell(name="Patroni reloaded (pg_hba.conf and settings in effect)",
                         commands=[patroni.reload_command(c, s.pg_port, s.pg_ha.loop_wait)],
                         _if=started.did_not_change)
    if action == "run" and the_plan.leader == host.name:
        dcs, _local = patroni.split_parameters(_parameters(s))
        patroni_ops.dynamic_config(name="Cluster-wide settings (Patroni's dynamic configuration)",
                                   desired=patroni.dcs_config(s.pg_ha, dcs),
                                   conf_path=patroni.conf_path(c), **AS_POSTGRES)
    if the_plan.leader is None and action == "run":
        server.shell(name="Cluster without a leader: roles, databases and migrations not applied",
                     commands=[f"echo 'cluster {cluster} had no leader when this deploy was "
                               "planned; Patroni config is current on its members: see pgops "
                               "cluster status, then deploy again' >&2; exit 1"])
    return the_plan.leader == host.name


@deploy("Patroni takes the cluster over")
def patroni_bootstrap(s: Settings, topology: Topology, dbs: Mapping[str, Settings]) -> None:
    """The member the cluster starts from: after its roles exist (Patroni connects as
    REPLICATOR to read its own timeline), Debian's unit hands the cluster over to Patroni,
    which makes it the leader."""
    every_host_reaches(name="Every database host past its roles", step="roles")
    if not _acts(topology, dbs, "bootstrap"):
        return
    c = Cluster.of(s)
    server.shell(name="Debian's unit hands the cluster over to Patroni",
                 commands=[join.hand_over_script(c)])
    units.service(name="Patroni started", service=patroni.service(c), running=True, enabled=True)
    _wait("Leader holds the leader key", "/primary", LEADER_WAIT_S)
    server.shell(name="Leader accepts writes (its promotion done)",
                 commands=[psql.wait_writable_command(s.pg_port, LEADER_WAIT_S)])


def _config(s: Settings, cluster: str, topology: Topology, addresses: Mapping[str, str]) -> str:
    """patroni.yml for this host: the same parameters and pg_hba rules a single host gets."""
    members = topology.clusters[cluster]
    hba = [*patroni.replication_hba([addresses[m] for m in members]),
           *(patroni.pooler_hba([addresses[m] for m in topology.forwarders(host.name)],
                                [d.name for d in s.pg_databases],
                                forwarded_rejects(s), forwarded_users(s))),
           *(line.strip() for line in pgconf.render_hba(s).splitlines() if line.strip())]
    parameters = _parameters(s)
    return patroni.render(
        scope=cluster, member=host.name, address=addresses[host.name],
        cluster=Cluster.of(s), port=s.pg_port, listen=s.pg_listen_addresses,
        etcd_addresses=[addresses[e] for e in topology.etcd], ha=s.pg_ha,
        parameters=parameters, hba=hba,
        passwords={REPLICATOR: s.password(s.role(REPLICATOR)),
                   REWINDER: s.password(s.role(REWINDER)),
                   PATRONI_API_USER: s.secrets[PATRONI_API_SECRET].get_secret_value()},
        stanza=backrest.stanza(host.name, s) if s.pg_backup_host else None)


def _parameters(s: Settings) -> dict:
    """Every PostgreSQL setting this host gets (tuned for it), as a single host would."""
    return pgconf.settings(s, cache.fact(HostResources), host.name)


@deploy("Patroni replicas")
def patroni_replicas(s: Settings, topology: Topology, dbs: Mapping[str, Settings]) -> None:
    """Members joining the cluster clone the leader, after its roles exist."""
    every_host_reaches(name="Every database host past the cluster's start", step="leader")
    if not _acts(topology, dbs, "join"):
        return
    c = Cluster.of(s)
    server.shell(name="This host's unused cluster emptied for a replica",
                 commands=[join.replace_script(c, s.pg_port, host.name)])
    units.service(name="Patroni started", service=patroni.service(c), running=True, enabled=True)
    _wait("Replica streaming from the leader", patroni.REPLICA_HEALTHY, REPLICA_WAIT_S)
