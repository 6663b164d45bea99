"""Status of each Patroni cluster of an inventory: members with role, state, timeline, lag
in bytes and seconds, sync state and pending restart, from Patroni's REST API and the
leader's pg_stat_replication; and the health of every etcd member."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra.api.host import Host

from pgops import remote
from pgops.endpoint.status import member_endpoint
from pgops.errors import PgopsError
from pgops.facts.patroni import get_command
from pgops.ha import etcd
from pgops.ha.topology import Topology, client_urls
from pgops.server import psql
from pgops.settings import Settings
from pgops.settings.inventory import inventory_topology

#: Per standby as the leader sees it: bytes behind (sent, replayed) and seconds behind.
REPLICATION_SQL = """
select coalesce(json_agg(json_build_object(
  'name', application_name, 'state', state, 'sync_state', sync_state,
  'lag_bytes', pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,
  'lag_s', extract(epoch from coalesce(replay_lag, '0'::interval))::float)), '[]')
from pg_stat_replication
"""


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None


def _bytes(lag: Any) -> int | None:
    """Patroni's lag for a member: bytes, or a word ("unknown") when it has none."""
    return lag if isinstance(lag, int) else None


def member_rows(seen: Mapping[str, Any] | None, replication: Sequence[Mapping[str, Any]],
                members: Sequence[str]) -> list[dict[str, Any]]:
    """One row per configured member, from Patroni's /cluster view and the leader's
    pg_stat_replication (pure). A member Patroni does not list is `down`."""
    by_name = {m["name"]: m for m in (seen or {}).get("members", [])}
    repl = {r["name"]: r for r in replication}
    rows = []
    for name in members:
        m = by_name.get(name)
        if m is None:
            rows.append({"member": name, "role": None, "state": "down", "timeline": None,
                         "lag_bytes": None, "lag_s": None, "sync": None,
                         "pending_restart": None})
            continue
        r = repl.get(name, {})
        leader = m.get("role") == "leader"
        row: dict[str, Any] = {
            "member": name, "host": m.get("host"), "role": m.get("role"),
            "state": m.get("state"), "timeline": m.get("timeline"),
            "lag_bytes": 0 if leader else r.get("lag_bytes", _bytes(m.get("lag"))),
            "lag_s": 0.0 if leader else r.get("lag_s"),
            "sync": None if leader else r.get("sync_state"),
            "pending_restart": bool(m.get("pending_restart")),
        }
        rows.append(row)
    return rows


def synchronous_mode(dcs: Mapping[str, Any] | None) -> str | None:
    """The mode the cluster runs in (Patroni's dynamic configuration), as pg_ha names it."""
    if dcs is None:
        return None
    if dcs.get("synchronous_mode"):
        return "strict" if dcs.get("synchronous_mode_strict") else "on"
    return "off"


def _leader(view: Mapping[str, Any] | None) -> str | None:
    return next((m["name"] for m in (view or {}).get("members", [])
                 if m.get("role") == "leader"), None)


def agreed_view(views: Sequence[Mapping[str, Any] | None]) -> Mapping[str, Any] | None:
    """Of the members' views of the cluster, one that names the leader most of them name:
    a member cut off from the others may still answer with what it saw before (pure)."""
    answered = [v for v in views if v]
    if not answered:
        return None
    leaders = [_leader(v) for v in answered]
    best = max(set(leaders), key=lambda name: (leaders.count(name), name is not None))
    return next(v for v in answered if _leader(v) == best)


def _answer(h: Host, command: str, user: str | None = None) -> Any:
    """A JSON answer of one host, or None when it is unreachable or says nothing."""
    if not h.connected:
        return None
    ok, out = remote.try_run(h, command, user=user, timeout=30)
    return _json(out) if ok else None


def _first_answer(hosts: Sequence[Host], command: str, user: str | None = None) -> Any:
    """The first non-empty JSON answer of the hosts, in order (None: none has one)."""
    return next((v for v in (_answer(h, command, user) for h in hosts) if v), None)


def etcd_health(hosts: Sequence[Host]) -> list[dict[str, Any]]:
    """Each etcd member's health as the first reachable member sees the whole store."""
    # etcdctl exits 1 when any member is unhealthy, with every member's health on stdout: keep it
    # (a member whose own etcd is down prints nothing, and the next is asked).
    answer = _first_answer(hosts, etcd.etcdctl("endpoint health --cluster -w json") + " || true", "root")
    return [{"endpoint": e.get("endpoint"), "healthy": bool(e.get("health")),
             "took": e.get("took"), "error": e.get("error")} for e in answer or []]


@dataclass
class Clusters:
    """An inventory's clusters, connected: hosts, settings, layout; status read on demand."""

    hosts: dict[str, Host]
    settings: dict[str, Settings]
    topology: Topology

    def settings_of(self, cluster: str) -> Settings:
        return self.settings[self.topology.clusters[cluster][0]]

    def status(self, cluster: str) -> dict[str, Any]:
        """One cluster's members (role, state, timeline, lag, sync), leader and client URLs."""
        members = self.topology.clusters[cluster]
        s = self.settings_of(cluster)
        seen = agreed_view([_answer(self.hosts[m], get_command("/cluster"), "postgres")
                            for m in members])
        leader = _leader(seen)
        sql = psql.shell(REPLICATION_SQL, s.pg_port, as_postgres=False)
        replication = (_answer(self.hosts[leader], sql, "postgres") or []) if leader else []
        addresses = {n: remote.address(h) for n, h in self.hosts.items()}
        dcs = _first_answer([self.hosts[m] for m in members], get_command("/config"), "postgres")
        return {
            "cluster": cluster, "leader": leader,
            "members": member_rows(seen, replication, members),
            "urls": client_urls(self.topology, cluster, addresses, s, s.pg_app_database or "postgres"),
            "synchronous_mode": synchronous_mode(dcs),
            "proxies": list(self.topology.proxies_of(cluster)),
            "endpoint": [*(member_endpoint(m, self.hosts[m], s) for m in members),
                         *(member_endpoint(p, self.hosts[p], s, proxy=True)
                           for p in self.topology.proxies_of(cluster))],
        }

    def etcd(self) -> list[dict[str, Any]]:
        return etcd_health([self.hosts[e] for e in self.topology.etcd])

    def one(self, name: str | None) -> str:
        """The cluster `name`, or the inventory's only one; PgopsError otherwise."""
        names = sorted(self.topology.clusters)
        if name is None and len(names) == 1:
            return names[0]
        if name in names:
            return name
        if not names:
            raise PgopsError("the inventory has no clusters (no database host sets pg_ha_cluster)"
                             + (f"; there is no cluster {name!r}" if name else ""))
        if name is None:
            raise PgopsError(f"the inventory has clusters {', '.join(names)}: name one with --cluster")
        raise PgopsError(f"cluster {name!r}: the inventory has {', '.join(names)}")


def connect(inventory_path: Path) -> Clusters:
    state, settings = remote.connect(inventory_path, require_all=False)
    return Clusters({h.name: h for h in state.inventory}, settings,
                    inventory_topology(state.inventory, settings))


def cluster_status(inventory_path: Path) -> dict[str, Any]:
    """Every cluster of the inventory (members, leader, client URLs) and the etcd members."""
    clusters = connect(inventory_path)
    return {"clusters": [clusters.status(c) for c in sorted(clusters.topology.clusters)],
            "etcd": clusters.etcd()}
