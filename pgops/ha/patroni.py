"""Patroni's configuration for one member, rendered from the settings model (pure).

Patroni runs the Debian cluster in place (data in /var/lib/postgresql/MAJOR/NAME, config in
/etc/postgresql/MAJOR/NAME), so the layout every other pgops command knows stays true. The
file is JSON, which is YAML too: no YAML writer needed, and Patroni reads it as it is.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from pgops.backup import backrest
from pgops.server import psql
from pgops.server.cluster import Cluster, bindir
from pgops.server.pgconf import CA_FILE, host_network
from pgops.settings.ha import (
    ETCD_CLIENT_PORT,
    PATRONI_API_USER,
    PATRONI_PORT,
    REPLICATOR,
    REWINDER,
)
from pgops.shell import wait_until

#: Patroni's DCS namespace for pgops clusters (scope = the cluster's name below it).
NAMESPACE = "/pgops/"
#: Parameters Patroni passes on the postmaster's command line from the cluster-wide (DCS)
#: configuration, the same on every member: a replica with fewer max_connections than its
#: leader cannot replay. Any other parameter is a member's own.
DCS_PARAMETERS = frozenset({
    "max_connections", "max_locks_per_transaction", "max_worker_processes",
    "max_prepared_transactions", "wal_level", "track_commit_timestamp", "max_wal_senders",
    "max_replication_slots", "wal_log_hints", "wal_keep_size", "hot_standby",
})
#: Set by Patroni itself from `postgresql.listen`; never among the parameters.
_PATRONI_OWNED = frozenset({"listen_addresses", "port"})
#: Functions pg_rewind needs on the source server, granted to REWINDER (not a superuser).
REWIND_FUNCTIONS = (
    "pg_catalog.pg_ls_dir(text, boolean, boolean)",
    "pg_catalog.pg_stat_file(text, boolean)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
)
TLS_DIR = "/etc/patroni/pgops-tls"
#: How long pgops waits for a leader to accept writes, and for a replica to stream (a
#: replica is a copy of the whole database: minutes for a large one).
LEADER_WAIT_S = 120
REPLICA_WAIT_S = 600
#: Patroni's health endpoint for a replica that streams and is close behind its leader.
REPLICA_HEALTHY = "/replica?lag=16MB"


def reload_command(c: Cluster, port: int, loop_wait: int) -> str:
    """A shell command (as root): Patroni rereads patroni.yml, and the command ends once
    Postgres has reloaded the pg_hba.conf and settings Patroni wrote from it (at most
    loop_wait + 60 s; a setting that needs a restart is then pending). Debian's unit
    reloads by a bare SIGHUP, which Patroni acts on at the start of its next loop, up to
    loop_wait later: a deploy that ended on the signal let clients dial rules not yet loaded.
    On a SIGHUP Patroni always rewrites pg_hba.conf, then reloads Postgres; done when the
    file is newer than the signal and Postgres loaded its files after it was written (or
    Postgres does not answer: it reads them when it starts)."""
    hba = shlex.quote(c.hba)
    seconds = loop_wait + 60
    loaded = psql.shell("select extract(epoch from pg_catalog.pg_conf_load_time())", port)
    return (
        f"set -e; cd /; sent=$(mktemp); trap 'rm -f \"$sent\"' EXIT; "
        f"systemctl reload {service(c)}; " + wait_until(
            f"[ {hba} -nt \"$sent\" ] && {{ loaded=$({loaded} 2>/dev/null) || loaded=; "
            f"[ -z \"$loaded\" ] || awk -v a=\"$loaded\" -v b=\"$(stat -c %.6Y {hba})\" "
            f"'BEGIN {{ exit !(a >= b) }}'; }}", seconds, 0.2,
            f"{service(c)} had not applied {conf_path(c)} {seconds} s after its reload "
            f"(pg_hba.conf or the settings not loaded): see journalctl -u {service(c)}")
    )


def conf_path(c: Cluster) -> str:
    return f"/etc/patroni/{c.major}-{c.name}.yml"


def service(c: Cluster) -> str:
    """Debian's unit for a Patroni-run cluster (a `-`, not a `/`, between major and name)."""
    return f"patroni@{c.major}-{c.name}"


def split_parameters(parameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cluster-wide DCS parameters, this member's own) from one flat mapping."""
    dcs = {k: v for k, v in parameters.items() if k in DCS_PARAMETERS}
    local = {k: v for k, v in parameters.items()
             if k not in DCS_PARAMETERS and k not in _PATRONI_OWNED}
    return dcs, local


def dcs_config(ha: Any, dcs_parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The cluster-wide configuration Patroni keeps in etcd (`patronictl show-config`)."""
    return {
        "ttl": ha.ttl,
        "loop_wait": ha.loop_wait,
        "retry_timeout": ha.retry_timeout,
        "maximum_lag_on_failover": ha.maximum_lag_on_failover,
        "synchronous_mode": ha.synchronous_mode != "off",
        "synchronous_mode_strict": ha.synchronous_mode == "strict",
        "synchronous_node_count": ha.synchronous_node_count,
        "check_timeline": True,
        "postgresql": {
            "use_pg_rewind": True,
            "use_slots": True,
            "parameters": {"hot_standby": True, "wal_log_hints": True, **dcs_parameters},
        },
    }


def _same(a: Any, b: Any) -> bool:
    """Values equal as PostgreSQL and Patroni read them (True and "on", 100 and "100")."""
    def norm(v: Any) -> str:
        if isinstance(v, bool):
            return "on" if v else "off"
        return str(v).strip().lower()
    return norm(a) == norm(b)


def config_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """What to PATCH into Patroni's dynamic configuration so that it holds `desired` (keys
    pgops does not set are left as they are); {} when it already does."""
    patch: dict[str, Any] = {}
    for key, want in desired.items():
        have = current.get(key)
        if isinstance(want, Mapping):
            sub = config_patch(have if isinstance(have, Mapping) else {}, want)
            if sub:
                patch[key] = sub
        elif have is None or not _same(have, want):
            patch[key] = want
    return patch


def replication_hba(member_addresses: Sequence[str]) -> list[str]:
    """pg_hba lines for the members: streaming as REPLICATOR, pg_rewind as REWINDER (and
    Patroni's own replication connection to its local server, for its timeline)."""
    lines = []
    for a in ("127.0.0.1", "::1", *member_addresses):
        net = host_network(a)
        lines.append(f"hostssl  replication  {REPLICATOR}  {net}  scram-sha-256")
        lines.append(f"hostssl  postgres     {REWINDER}  {net}  scram-sha-256")
    return lines


def pooler_hba(forwarders: Sequence[str], databases: Sequence[str],
               rejected: Sequence[str], users: str) -> list[str]:
    """pg_hba lines for the members' PgBouncers and the cluster's HAProxies (members and
    proxy hosts), which reach the leader (and through the read-only port, a replica) from
    their own addresses (`forwarders`) on behalf of clients that HAProxy let in: the
    application databases only, as `users` (pgops.endpoint.access), TLS and SCRAM, never as
    `rejected` roles (superusers and pgops's own)."""
    names = ",".join(databases) or "all"
    nets = [host_network(a) for a in forwarders]
    return [*(f"hostssl  {names}  {','.join(rejected)}  {n}  reject" for n in nets),
            *(f"hostssl  {names}  {users}  {n}  scram-sha-256" for n in nets)]


def replica_methods(stanza: str | None) -> dict[str, Any]:
    """How Patroni makes a replica: from the newest backup in the pgBackRest repository
    when the cluster has one (a delta restore, then streaming from the leader; where no
    backup exists yet it fails fast and pg_basebackup follows), else pg_basebackup. With a
    stanza, replicas and pg_rewind also fetch WAL the leader no longer keeps from the
    archive."""
    basebackup = {"basebackup": [{"checkpoint": "fast"}]}
    if not stanza:
        return {"create_replica_methods": ["basebackup"], **basebackup}
    return {
        "create_replica_methods": ["pgbackrest", "basebackup"],
        "pgbackrest": {"command": backrest.command(stanza, "--delta --type=standby restore"),
                       "keep_data": True, "no_params": True},
        **basebackup,
        "recovery_conf": {"restore_command": backrest.command(stanza, 'archive-get %f "%p"')},
    }


def render(*, scope: str, member: str, address: str, cluster: Cluster, port: int,
           listen: Sequence[str], etcd_addresses: Sequence[str], ha: Any,
           parameters: Mapping[str, Any], hba: Sequence[str],
           passwords: Mapping[str, str], stanza: str | None = None) -> str:
    """patroni.yml for `member` (reached at `address`) of cluster `scope`.

    + parameters: every PostgreSQL setting pgops wants (tuned, TLS, archiving, the user's);
      split here into the cluster-wide and the member's own
    + hba: pg_hba.conf's lines, which Patroni writes
    + passwords: REPLICATOR, REWINDER and PATRONI_API_USER by name
    + stanza: the cluster's pgBackRest stanza, when it is backed up: replicas are then
      made from the repository (the network and the leader spared), and fetch WAL from it
    """
    dcs, local = split_parameters(parameters)
    tls = {"ca": f"{TLS_DIR}/ca.crt", "cert": f"{TLS_DIR}/host.crt", "key": f"{TLS_DIR}/host.key"}
    api_auth = {"username": PATRONI_API_USER, "password": passwords[PATRONI_API_USER]}
    # Replicas and pg_rewind verify the leader against pgops's PostgreSQL CA (as on the host).
    ssl = {"sslmode": "verify-full", "sslrootcert": CA_FILE, "channel_binding": "require"}
    conf: dict[str, Any] = {
        "scope": scope,
        "namespace": NAMESPACE,
        "name": member,
        "restapi": {
            "listen": f"0.0.0.0:{PATRONI_PORT}",
            "connect_address": f"{address}:{PATRONI_PORT}",
            "certfile": tls["cert"], "keyfile": tls["key"], "cafile": tls["ca"],
            "authentication": api_auth,
        },
        "ctl": {"cacert": tls["ca"], "certfile": tls["cert"], "keyfile": tls["key"],
                "authentication": api_auth},
        "etcd3": {
            "hosts": [f"{a}:{ETCD_CLIENT_PORT}" for a in etcd_addresses],
            "protocol": "https",
            "cacert": tls["ca"], "cert": tls["cert"], "key": tls["key"],
        },
        "bootstrap": {"dcs": dcs_config(ha, dcs)},
        "postgresql": {
            "listen": f"{','.join(listen)}:{port}",  # Patroni's form: host1,host2:port
            "connect_address": f"{address}:{port}",
            "data_dir": cluster.data,
            "config_dir": cluster.etc,
            "bin_dir": bindir(cluster.major),
            "pgpass": f"/var/lib/postgresql/{cluster.major}-{cluster.name}.pgpass",
            "use_unix_socket": True,
            "authentication": {
                "superuser": {"username": "postgres"},
                "replication": {"username": REPLICATOR, "password": passwords[REPLICATOR], **ssl},
                "rewind": {"username": REWINDER, "password": passwords[REWINDER], **ssl},
            },
            "parameters": {"unix_socket_directories": "/var/run/postgresql", **local},
            "pg_hba": list(hba),
            **replica_methods(stanza),
        },
        "watchdog": {"mode": ha.watchdog},
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False,
                 "nosync": False},
    }
    return ("# Managed by pgops (pg_ha_cluster): edits here are overwritten on the next "
            "deploy.\n" + json.dumps(conf, indent=2, sort_keys=True) + "\n")
