"""Which database a command acts on: a DSN (-d, DATABASE_URL, PG* variables) or an inventory host."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from pgops.client.db import read_env_file, redact
from pgops.errors import PgopsError

if TYPE_CHECKING:
    from pyinfra.api import Inventory
    from pyinfra.api.host import Host

    from pgops.settings import Role, Settings


@dataclass(frozen=True)
class Target:
    url: str  # may hold a password: never print it, print `label`
    label: str
    #: Where the choice came from (-d, DATABASE_URL in the environment or a .env file, PG*,
    #: an inventory), printed with the label so a stray .env is seen at once.
    source: str = ""

    def without_password(self) -> tuple[str, str | None]:
        """(conninfo without password, password) for tools that take the password from
        the environment (pgcli, psql), so it never shows on a command line."""
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        password = info.pop("password", None)
        return psycopg.conninfo.make_conninfo("", **info), None if password is None else str(password)


def resolve(dsn: str | None = None, inventory: Path | None = None, host: str | None = None,
            user: str = "migrator", database: str | None = None, pooled: bool = False) -> Target:
    """The target of a client command: -d, else DATABASE_URL/PG*, else the inventory. With
    `pooled`, an inventory target is the endpoint applications use (PgBouncer, and for a
    cluster HAProxy's read-write port); without, Postgres itself (the leader of a cluster),
    for work that needs a session of its own (migrations take a session advisory lock)."""
    if dsn or (inventory is None and host is None):
        target = dsn_target(dsn)
        if target:
            return target
    return inventory_target(inventory, host, user, database, pooled)


def dsn_target(dsn: str | None = None) -> Target | None:
    """-d DSN, else DATABASE_URL (DATABASE_URL_TEST when PGOPS_ENV=test) from the environment
    or .env, else the PG* variables; None when none is set (the caller uses the inventory)."""
    if dsn:
        return Target(dsn, redact(dsn), "-d")
    env_file = read_env_file(".env")
    merged = {**env_file, **os.environ}
    test = (merged.get("PGOPS_ENV") or merged.get("NODE_ENV")) == "test"
    name = "DATABASE_URL_TEST" if test else "DATABASE_URL"
    url = merged.get(name)
    if url:
        where = ("the environment" if name in os.environ
                 else f"{Path('.env').resolve()} (a .env file in the current directory)")
        return Target(url, redact(url), f"{name} in {where}")
    if os.environ.get("PGHOST") or os.environ.get("PGDATABASE"):
        given = ", ".join(f"{k}={os.environ[k]}" for k in ("PGHOST", "PGPORT", "PGDATABASE")
                          if os.environ.get(k))
        return Target("", "libpq environment", f"PG* variables ({given})")
    return None


def inventory_target(inventory: Path | None, host: str | None, user: str,
                     database: str | None, pooled: bool = False) -> Target:
    """`user` on `database` (default: pg_app_database) of an inventory's database host (default:
    its first; for a cluster, the whole cluster: see `resolve`), over TLS; the role's
    password comes from its secret, like a deploy's."""
    # pyinfra only here: the dev image has none, and reaches its database by DSN.
    from pgops.remote import address
    from pgops.settings.inventory import (
        default_inventory,
        inventory_topology,
        load_inventory,
        validate_inventory,
    )

    path = inventory or default_inventory()
    inv = load_inventory(path)
    settings = validate_inventory(inv, str(path))
    h = _database_host(inv, host, path)
    s = settings[h.name]
    role = _role(s, user, f"{path} [{h.name}]")
    dbname = database or s.pg_app_database
    if not dbname:
        raise PgopsError(f"{path} [{h.name}]: no database given and pg_app_database is not set")
    if not s.server_ca_file.is_file():
        raise PgopsError(f"{path} [{h.name}]: the CA that verifies the server, {s.server_ca_file}, "
                         "is not on this machine: `pgops deploy` issues it with the servers' "
                         "certificates (or give pg_tls_ca_file)")
    params: dict[str, str | int] = {"dbname": dbname, "user": user, **s.client_tls,
                                    "application_name": "pgops"}
    if s.pg_ha_cluster and not host:
        topo = inventory_topology(inv, settings)
        # Through the endpoint: the proxy hosts' HAProxy, else the members'; else Postgres.
        names = list(topo.entrances(s.pg_ha_cluster) if pooled else topo.clusters[s.pg_ha_cluster])
        hosts = [address(inv.get_host(n)) for n in names]
        if pooled:
            port, what = s.pg_proxy.rw_port, f"cluster {s.pg_ha_cluster}'s read-write endpoint " \
                f"(HAProxy :{s.pg_proxy.rw_port} on {', '.join(names)})"
        else:
            port, what = s.pg_port, f"cluster {s.pg_ha_cluster}'s leader (Postgres :{s.pg_port} " \
                f"on {', '.join(names)}, read-write)"
            params["target_session_attrs"] = "read-write"
        params.update(host=",".join(hosts), port=",".join([str(port)] * len(hosts)))
    else:
        port = s.pooler.port if pooled and s.pooler else s.pg_port
        via = "PgBouncer" if port != s.pg_port else "Postgres"
        params.update(host=address(h), port=port)
        what = f"{h.name} ({via} {address(h)}:{port})"
    if role.login and role.password:
        params["password"] = s.password(role)
    url = psycopg.conninfo.make_conninfo("", **params)
    return Target(url, f"{what} database {dbname} as {user}", f"inventory {path}")


def _database_host(inv: Inventory, host: str | None, path: Path) -> Host:
    """The database host named `host`, else the inventory's first: a typo must not pick another."""
    from pgops.settings.inventory import DB_GROUP  # pyinfra: as in inventory_target

    hosts = [h for h in inv if DB_GROUP in h.groups]
    if host:
        hosts = [h for h in hosts if h.name == host]
        if not hosts:
            raise PgopsError(f"no database host {host!r} in {path}")
    return hosts[0]


def _role(s: Settings, user: str, where: str) -> Role:
    """`user` as a role of pg_roles: pgops connects only as roles it manages (and knows secrets of)."""
    role = next((r for r in s.pg_roles if r.name == user), None)
    if role is None:
        raise PgopsError(f"role {user!r} is not in pg_roles of {where}")
    return role
