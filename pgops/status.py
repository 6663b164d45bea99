"""Status of every database host in an inventory: server facts read over SSH, and the
backup health of each stanza (a single host's, or a whole cluster's on its first member's
row: a cluster is backed up as one)."""

from __future__ import annotations

from pathlib import Path

from pyinfra.api.host import Host
from pyinfra.context import ctx_host

from pgops import remote
from pgops.backup import rules
from pgops.backup.health import health
from pgops.backup.repository import Backups, backed_up
from pgops.endpoint.status import host_pools
from pgops.facts.postgres import PgDatabases, PgExtensions, PgRoles, PgServer
from pgops.facts.system import WalVolume
from pgops.server import disk
from pgops.server.cluster import Cluster
from pgops.server.psql import AS_POSTGRES
from pgops.settings import Settings
from pgops.settings.inventory import DB_GROUP


def server_row(host: Host, s: Settings, max_wal_disk_used: float = disk.MAX_WAL_DISK_USED) -> dict:
    """Versions, databases, roles, TLS and checksums of one host ("up": False when down),
    how full pg_wal's filesystem is, and the alerts of the server itself."""
    row = {"host": host.name, "address": remote.address(host), "up": False}
    if not host.connected:
        return row
    facts = {"port": s.pg_port, **AS_POSTGRES}
    with ctx_host.use(host):
        server = host.get_fact(PgServer, **facts)
        if not server:
            return row
        dbs = host.get_fact(PgDatabases, **facts) or {}
        roles = host.get_fact(PgRoles, **facts) or {}
        app_db = s.pg_app_database or "postgres"
        exts = (host.get_fact(PgExtensions, database=app_db, **facts) or {}) if app_db in dbs else {}
        wal = host.get_fact(WalVolume, data=Cluster.of(s).data, **AS_POSTGRES)
    settings = server["settings"]
    row.update({
        "up": True,
        "postgres": server["version"].split()[0],
        "pgvector": exts.get("vector"),
        "databases": sorted(d for d in dbs if d != "postgres"),
        "roles": sorted(r for r in roles if r != "postgres"),
        "tls": settings["ssl"]["setting"] == "on",
        # pg_data_checksums applies to new clusters only: show the ones without.
        "checksums": settings["data_checksums"]["setting"] == "on",
        "started": server["start_time"],
        "role": "replica" if settings.get("in_hot_standby", {}).get("setting") == "on" else "primary",
        "wal": wal and {**wal, "fs_used_percent": round(disk.used_percent(wal), 1)},
        "alerts": disk.wal_alerts(wal, max_wal_disk_used),
    })
    return row


def server_status(inventory_path: Path, thresholds: rules.Thresholds | None = None,
                  max_wal_disk_used: float = disk.MAX_WAL_DISK_USED) -> list[dict]:
    """Per database host: server facts, and backup health where it has a repository."""
    state, settings = remote.connect(inventory_path, require_all=False)
    backups = Backups(state, settings, backed_up(settings))
    rows = []
    for host in state.inventory:
        if DB_GROUP not in host.groups:
            continue
        s = settings[host.name]
        row = server_row(host, s, max_wal_disk_used)
        if s.pooler:  # the pools of a host's PgBouncer (None: it does not answer)
            row["pooler"] = {"port": s.pooler.port,
                             "pools": host_pools(host, s.pooler.port) if host.connected else None}
        if host.name in backups.stanzas:
            try:
                row["backup"] = {"stanza": backups.stanza(host.name),
                                 **health(backups, host.name, thresholds)}
            except Exception as e:  # an unreachable repository is an alert, not a crash
                row["backup"] = {"alerts": [f"backup state unavailable: {str(e).splitlines()[0]}"]}
        rows.append(row)
    return rows
