"""Which hosts form which Patroni cluster and which etcd, and what makes that layout invalid
(pure: decided from validated settings and the inventory's groups, before any host is touched)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from pgops.endpoint.pgbouncer import pool_connections
from pgops.settings import LOCAL_REPOSITORY, Settings
from pgops.settings.endpoint import AUTH_POOL_SIZE, RESERVED_CONNECTIONS

#: Settings every member of one cluster must share: a replica is a copy of the leader, and
#: backups, failover timing and the client port are the cluster's, not a member's.
CLUSTER_WIDE = ("pg_major", "pg_cluster", "pg_port", "pg_ha", "pg_backup_host",
                "pg_backup_transport", "pg_data_checksums", "pgbackrest", "pg_backup_timers",
                "pg_pooler", "pg_proxy")


#: The names a host's own clients dial it by.
LOOPBACK = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class Topology:
    """Clusters by name (members in inventory order), the etcd members they share, and the
    hosts of the proxy group with the cluster each one's HAProxy serves."""

    clusters: Mapping[str, tuple[str, ...]]
    etcd: tuple[str, ...]
    proxies: Mapping[str, str] = field(default_factory=dict)

    def cluster_of(self, host: str) -> str | None:
        return next((name for name, members in self.clusters.items() if host in members), None)

    def members(self, host: str) -> tuple[str, ...]:
        """The members of `host`'s cluster ((host,) for a single host outside any cluster)."""
        name = self.cluster_of(host)
        return self.clusters[name] if name else (host,)

    def served_by(self, host: str) -> str | None:
        """The cluster whose endpoint `host` carries: the one it is a member of, or serves as
        a proxy host."""
        return self.cluster_of(host) or self.proxies.get(host)

    def proxies_of(self, cluster: str | None) -> tuple[str, ...]:
        return tuple(p for p, c in self.proxies.items() if c == cluster)

    def entrances(self, cluster: str) -> tuple[str, ...]:
        """Where applications reach a cluster's HAProxy: its proxy hosts, else its members."""
        return self.proxies_of(cluster) or self.clusters[cluster]

    def cluster_forwarders(self, cluster: str) -> tuple[str, ...]:
        """The hosts whose HAProxy forwards clients to a cluster's PgBouncers and Postgres (so
        those see the forwarder's address, not the client's): its members and proxy hosts."""
        return self.clusters[cluster] + self.proxies_of(cluster)

    def forwarders(self, host: str) -> tuple[str, ...]:
        """cluster_forwarders of `host`'s cluster ((host,) for a single host)."""
        cluster = self.cluster_of(host)
        return self.cluster_forwarders(cluster) if cluster else (host,)

    def dialed(self, host: str, addresses: Mapping[str, str]) -> list[str]:
        """The names and addresses clients dial to reach `host`'s Postgres and PgBouncer, which
        its server certificate carries: its own; for a cluster member, every forwarder's (any
        one's HAProxy may carry a client to it); and loopback's, where the host's own tools
        (Patroni's replication connection to its server) dial it."""
        return sorted({*LOOPBACK, *(n for h in self.forwarders(host) for n in (h, addresses[h]))})


def topology(settings: Mapping[str, Settings], etcd_hosts: Sequence[str],
             proxies: Mapping[str, str | None] | None = None) -> Topology:
    """`proxies`: the proxy group's hosts and the cluster each names (None: the inventory's
    only cluster); one naming no cluster there is left out (proxy_problems names it)."""
    clusters: dict[str, list[str]] = {}
    for name, s in settings.items():
        if s.pg_ha_cluster:
            clusters.setdefault(s.pg_ha_cluster, []).append(name)
    only = next(iter(clusters)) if len(clusters) == 1 else None
    served = {p: c or only for p, c in (proxies or {}).items()}
    return Topology({k: tuple(v) for k, v in clusters.items()}, tuple(etcd_hosts),
                    {p: c for p, c in served.items() if c in clusters and p not in settings})


def proxy_problems(topo: Topology, proxies: Mapping[str, str | None], db_hosts: Sequence[str],
                   proxy_group: str) -> list[str]:
    """A proxy host carries one cluster's endpoint: the cluster it names (pg_ha_cluster), or
    the only one; it is not a database host (whose own HAProxy would take the same ports)."""
    problems = []
    names = sorted(topo.clusters)
    for p, cluster in sorted(proxies.items(), key=lambda kv: kv[0]):
        if p in db_hosts:
            problems.append(f"{proxy_group}: {p} is a database host; a proxy host is another "
                            "host (cluster members run HAProxy already)")
        elif cluster is None and len(names) != 1:
            problems.append(f"{proxy_group}: {p}: pg_ha_cluster: name the cluster it serves "
                            f"(the inventory has {', '.join(names) or 'no clusters'})")
        elif cluster is not None and cluster not in topo.clusters:
            problems.append(f"{proxy_group}: {p}: pg_ha_cluster: {cluster!r} is not a cluster of "
                            f"the inventory (have: {', '.join(names) or 'none'})")
    return problems


def _etcd_problems(topo: Topology, etcd_group: str) -> list[str]:
    n = len(topo.etcd)
    if topo.clusters and n == 0:
        return [f"{etcd_group}: the clusters {', '.join(sorted(topo.clusters))} need etcd "
                f"members (a group {etcd_group} of 3 hosts, which may be the database hosts)"]
    if n % 2 == 0 and n:
        return [f"{etcd_group}: {n} members ({', '.join(topo.etcd)}); etcd needs an odd number "
                f"(3 or 5): an even one tolerates no more failures than one fewer and can split "
                "evenly"]
    return []


def _agreement_problems(topo: Topology, settings: Mapping[str, Settings]) -> list[str]:
    problems = []
    for cluster, members in sorted(topo.clusters.items()):
        first = settings[members[0]]
        for key in CLUSTER_WIDE:
            differ = [m for m in members[1:] if getattr(settings[m], key) != getattr(first, key)]
            if differ:
                problems.append(f"cluster {cluster}: {key} differs between {members[0]} and "
                                f"{', '.join(differ)}; members of one cluster share it")
    return problems


def _sync_problems(topo: Topology, settings: Mapping[str, Settings]) -> list[str]:
    problems = []
    for cluster, members in sorted(topo.clusters.items()):
        ha = settings[members[0]].pg_ha
        if ha.synchronous_mode != "off" and len(members) < 2:
            problems.append(f"cluster {cluster}: pg_ha.synchronous_mode {ha.synchronous_mode!r} "
                            f"needs a standby, and {members[0]} is the only member")
        elif ha.synchronous_mode != "off" and ha.synchronous_node_count > len(members) - 1:
            problems.append(f"cluster {cluster}: pg_ha.synchronous_node_count "
                            f"{ha.synchronous_node_count} exceeds its {len(members) - 1} standbys")
    return problems


def _backup_host_problems(topo: Topology, settings: Mapping[str, Settings]) -> list[str]:
    """A repository on a cluster member would be lost, or be a replica's disk, with that member."""
    members = {m: c for c, ms in topo.clusters.items() for m in ms}
    return [f"host {name}: pg_backup_host: {s.pg_backup_host} is a member of cluster "
            f"{members[s.pg_backup_host]}; the repository must live on another host"
            for name, s in settings.items() if s.pg_backup_host in members]


def _name_problems(topo: Topology, settings: Mapping[str, Settings]) -> list[str]:
    """A cluster's stanza is named after it, a single host's after the host: one name may
    not be both, or their backups would share a stanza."""
    return [f"cluster {c}: pg_ha_cluster names a database host outside it too; name the "
            "cluster differently (its pgBackRest stanza is named after it)"
            for c, members in sorted(topo.clusters.items()) if c in settings and c not in members]


def _local_repository_problems(topo: Topology, settings: Mapping[str, Settings]) -> list[str]:
    """A cluster's stanza is shared by its members: its repository lives on a repository
    host every member reaches, not on each member's own disk."""
    return [f"cluster {c}: pg_backup_host: 'local' would give each member a repository of "
            "its own, and a failover would split the backup history; name a repository host"
            for c, ms in sorted(topo.clusters.items())
            if settings[ms[0]].pg_backup_host == LOCAL_REPOSITORY]


def _pool_budget_problems(topo: Topology, settings: Mapping[str, Settings]) -> list[str]:
    """Every PgBouncer of a cluster reaches its leader: their server connections together,
    and pgops's reserve, must fit the leader's max_connections, so clients wait for a pool
    instead of Postgres refusing them."""
    problems = []
    groups = {**{c: ms for c, ms in topo.clusters.items()},
              **{h: (h,) for h, s in settings.items() if not s.pg_ha_cluster}}
    for name, members in sorted(groups.items()):
        s = settings[members[0]]
        if not s.pooler:
            continue
        need = len(members) * pool_connections(s)
        limit = int(s.pg_settings.get("max_connections", s.pg_tuning.max_connections))
        if need > limit - RESERVED_CONNECTIONS:
            what = f"cluster {name}" if s.pg_ha_cluster else f"host {name}"
            problems.append(
                f"{what}: pg_pooler: {len(members)} PgBouncer(s) x {pool_connections(s)} server "
                f"connections ({len(s.pg_databases)} database(s) x max_db_connections "
                f"{s.pooler.max_db_connections}, and {AUTH_POOL_SIZE} for password lookups) = "
                f"{need} exceed max_connections {limit} less {RESERVED_CONNECTIONS} reserved; "
                "lower pg_pooler.max_db_connections or raise pg_tuning.max_connections")
    return problems


def membership_problems(declared: Mapping[str, Mapping[str, str]]) -> list[str]:
    """`declared`: host -> {group: the pg_ha_cluster that group's data gives it}. A host placed
    in two clusters by two groups would silently follow whichever group pyinfra ranks last."""
    problems = []
    for host, by_group in sorted(declared.items()):
        if len(set(by_group.values())) > 1:
            which = ", ".join(f"{c} (group {g})" for g, c in sorted(by_group.items()))
            problems.append(f"host {host}: pg_ha_cluster: in two clusters: {which}; a host "
                            "belongs to one cluster")
    return problems


def problems(topo: Topology, settings: Mapping[str, Settings], etcd_group: str) -> list[str]:
    """Every problem of the layout at once; [] when it is deployable."""
    return [*_etcd_problems(topo, etcd_group), *_agreement_problems(topo, settings),
            *_sync_problems(topo, settings), *_backup_host_problems(topo, settings),
            *_local_repository_problems(topo, settings), *_name_problems(topo, settings),
            *_pool_budget_problems(topo, settings)]


def client_urls(topo: Topology, cluster: str, addresses: Mapping[str, str], s: Settings,
                database: str) -> dict[str, str]:
    """The URLs applications use. Through the endpoint: any entrance's HAProxy (a proxy
    host's, else a member's) routes the read-write port to the leader (through PgBouncer)
    and the read-only port to a replica; every entrance is listed so that a client tries the
    next when one is down (or put one address in front: a DNS name or virtual IP). Direct:
    libpq multi-host URLs to the members' Postgres, which find the leader or a standby by
    session attributes."""
    def url(hosts: Sequence[str], port: int, query: str = "") -> str:
        where = ",".join(f"{addresses[h]}:{port}" for h in hosts)
        tls = "&".join(f"{k}={quote(v)}" for k, v in s.client_tls.items())
        return f"postgresql://{where}/{database}?{tls}{query}"

    entrances, members = topo.entrances(cluster), topo.clusters[cluster]
    attrs = "&target_session_attrs="
    return {"read-write": url(entrances, s.pg_proxy.rw_port),
            "read-only": url(entrances, s.pg_proxy.ro_port),
            "direct read-write": url(members, s.pg_port, attrs + "read-write"),
            "direct prefer-standby": url(members, s.pg_port, attrs + "prefer-standby"),
            "direct read-only": url(members, s.pg_port, attrs + "read-only")}
