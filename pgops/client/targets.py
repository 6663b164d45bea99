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

    def without_password(self) -> tuple[str, str | None]:
        """(conninfo without password, password) for tools that take the password from
        the environment (pgcli, psql), so it never shows on a command line."""
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        password = info.pop("password", None)
        return psycopg.conninfo.make_conninfo("", **info), None if password is None else str(password)


def resolve(dsn: str | None = None, inventory: Path | None = None, host: str | None = None,
            user: str = "migrator", database: str | None = None) -> Target:
    if dsn or (inventory is None and host is None):
        target = dsn_target(dsn)
        if target:
            return target
    return inventory_target(inventory, host, user, database)


def dsn_target(dsn: str | None = None) -> Target | None:
    """-d DSN, else DATABASE_URL (DATABASE_URL_TEST when PGOPS_ENV=test) from the environment
    or .env, else the PG* variables; None when none is set (the caller uses the inventory)."""
    if dsn:
        return Target(dsn, redact(dsn))
    merged = {**read_env_file(".env"), **os.environ}
    test = (merged.get("PGOPS_ENV") or merged.get("NODE_ENV")) == "test"
    url = merged.get("DATABASE_URL_TEST" if test else "DATABASE_URL")
    if url:
        return Target(url, redact(url))
    if os.environ.get("PGHOST") or os.environ.get("PGDATABASE"):
        return Target("", "libpq environment (PG* variables)")
    return None


def inventory_target(inventory: Path | None, host: str | None, user: str,
                     database: str | None) -> Target:
    """`user` on `database` (default: pg_app_database) of an inventory's database host (default:
    its first), over TLS; the role's password comes from its secret, like a deploy's."""
    # pyinfra only here: the dev image has none, and reaches its database by DSN.
    from pgops.remote import address
    from pgops.settings.inventory import default_inventory, load_inventory, validate_inventory

    path = inventory or default_inventory()
    inv = load_inventory(path)
    settings = validate_inventory(inv, str(path))
    h = _database_host(inv, host, path)
    s = settings[h.name]
    role = _role(s, user, f"{path} [{h.name}]")
    dbname = database or s.pg_app_database
    if not dbname:
        raise PgopsError(f"{path} [{h.name}]: no database given and pg_app_database is not set")
    where = address(h)
    params: dict[str, str | int] = {"host": where, "port": s.pg_port, "dbname": dbname, "user": user,
                                    "sslmode": "require", "application_name": "pgops"}
    if role.login and role.password:
        params["password"] = s.password(role)
    url = psycopg.conninfo.make_conninfo("", **params)
    return Target(url, f"{h.name} ({where}:{s.pg_port}) database {dbname} as {user}")


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
