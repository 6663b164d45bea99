"""Status of each Patroni cluster of an inventory: members with role, state, timeline, lag
in bytes and seconds, sync state and pending restart, from Patroni's REST API and the
leader's pg_stat_replication; and the health of every etcd member."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pyinfra.api.host import Host

from pgops import remote
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
            "lag_bytes": 0 if leader else r.get("lag_bytes", m.get("lag")),
            "lag_s": 0.0 if leader else r.get("lag_s"),
            "sync": None if leader else r.get("sync_state"),
            "pending_restart": bool(m.get("pending_restart")),
        }
        rows.append(row)
    return rows


def _first_answer(hosts: Sequence[Host], command: str, user: str | None = None) -> Any:
    for h in hosts:
        if not h.connected:
            continue
        ok, out = remote.try_run(h, command, user=user, timeout=30)
        value = _json(out) if ok else None
        if value:
            return value
    return None


def etcd_health(hosts: Sequence[Host]) -> list[dict[str, Any]]:
    """Each etcd member's health as the first reachable member sees the whole store."""
    answer = _first_answer(hosts, etcd.etcdctl("endpoint health --cluster -w json"), "root")
    return [{"endpoint": e.get("endpoint"), "healthy": bool(e.get("health")),
             "took": e.get("took"), "error": e.get("error")} for e in answer or []]


def cluster_status(inventory_path: Path) -> dict[str, Any]:
    """Every cluster of the inventory (members, leader, client URLs) and the etcd members."""
    state, settings = remote.connect(inventory_path, require_all=False)
    topo: Topology = inventory_topology(state.inventory, settings)
    hosts = {h.name: h for h in state.inventory}
    addresses = {n: remote.address(h) for n, h in hosts.items()}
    clusters = []
    for name, members in sorted(topo.clusters.items()):
        s: Settings = settings[members[0]]
        member_hosts = [hosts[m] for m in members]
        seen = _first_answer(member_hosts, get_command("/cluster"), "postgres")
        leader = next((m["name"] for m in (seen or {}).get("members", [])
                       if m.get("role") == "leader"), None)
        sql = psql.shell(REPLICATION_SQL, s.pg_port, as_postgres=False)
        replication = (_first_answer([hosts[leader]], sql, "postgres") or []) if leader else []
        clusters.append({
            "cluster": name, "leader": leader,
            "members": member_rows(seen, replication, members),
            "urls": client_urls(members, addresses, s.pg_port, s.pg_app_database or "postgres"),
            "synchronous_mode": s.pg_ha.synchronous_mode,
        })
    return {"clusters": clusters, "etcd": etcd_health([hosts[e] for e in topo.etcd])}
