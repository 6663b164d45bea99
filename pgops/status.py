"""Server status of every database host in an inventory, read with pgops facts over SSH."""

from __future__ import annotations

import socket
from pathlib import Path

from pyinfra.api import Config, State
from pyinfra.api.connect import connect_all
from pyinfra.context import ctx_config, ctx_host, ctx_inventory, ctx_state

from pgops.errors import UnreachableHostError
from pgops.facts.postgres import PgDatabases, PgExtensions, PgRoles, PgServer
from pgops.inventory import DB_GROUP, load_inventory, validate_inventory
from pgops.operations.postgres import AS_POSTGRES


def check_reachable(inventory, timeout: float = 5.0) -> None:
    """TCP-check every host's SSH port first, so an unreachable host stops the run before any
    host is changed, with the host and address in the message."""
    bad = []
    for h in inventory:
        addr = h.data.get("ssh_hostname") or h.name
        port = int(h.data.get("ssh_port") or 22)
        try:
            socket.create_connection((addr, port), timeout=timeout).close()
        except OSError as e:
            bad.append(f"{h.name} ({addr}:{port}): {e.strerror or e.__class__.__name__}")
    if bad:
        raise UnreachableHostError(
            "unreachable over SSH, nothing was changed on any host: " + "; ".join(bad)
        )


def connect(inventory_path: Path, require_all: bool = True) -> tuple[State, dict]:
    """Validate the inventory and connect to its hosts with pyinfra. With require_all=False
    (status) an unreachable host is reported by the caller instead of stopping everything."""
    inventory = load_inventory(inventory_path)
    settings = validate_inventory(inventory, str(inventory_path))
    if require_all:
        check_reachable(inventory)
    config = Config()
    state = State(inventory, config)
    for ctx, value in ((ctx_state, state), (ctx_config, config), (ctx_inventory, inventory)):
        ctx.set(value)
    connect_all(state)
    return state, settings


def server_status(inventory_path: Path, thresholds: dict | None = None) -> list[dict]:
    """Per database host: server facts, and backup health where it has a repository."""
    from pgops import backup

    state, settings = connect(inventory_path, require_all=False)
    stanzas = {n: s.pg_backup_host for n, s in settings.items() if s.pg_backup_host}
    plan = backup.Plan(state, settings, stanzas)
    rows = []
    for host in state.inventory:
        if DB_GROUP not in host.groups:
            continue
        s = settings[host.name]
        with ctx_host.use(host):
            server = host.get_fact(PgServer, port=s.pg_port, **AS_POSTGRES) if host.connected else None
            row = {"host": host.name, "address": host.data.get("ssh_hostname") or host.name,
                   "up": server is not None}
            if server:
                dbs = host.get_fact(PgDatabases, port=s.pg_port, **AS_POSTGRES) or {}
                roles = host.get_fact(PgRoles, port=s.pg_port, **AS_POSTGRES) or {}
                app_db = s.pg_app_database or "postgres"
                exts = (host.get_fact(PgExtensions, database=app_db, port=s.pg_port,
                                      **AS_POSTGRES) or {}) if app_db in dbs else {}
                row.update({
                    "postgres": server["version"].split()[0],
                    "pgvector": exts.get("vector"),
                    "databases": sorted(d for d in dbs if d != "postgres"),
                    "roles": sorted(r for r in roles if r != "postgres"),
                    "tls": server["settings"]["ssl"]["setting"] == "on",
                    # pg_data_checksums applies to new clusters only: show the ones without.
                    "checksums": server["settings"]["data_checksums"]["setting"] == "on",
                    "started": server["start_time"],
                    "role": "replica" if server["settings"].get("in_hot_standby", {}).get("setting") == "on"
                            else "primary",
                })
        if host.name in stanzas:
            try:
                row["backup"] = backup.health(plan, host.name, **(thresholds or {}))
            except Exception as e:  # an unreachable repository is an alert, not a crash
                row["backup"] = {"alerts": [f"backup state unavailable: {str(e).splitlines()[0]}"]}
        rows.append(row)
    return rows
