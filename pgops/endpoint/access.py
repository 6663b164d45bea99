"""Who may reach the endpoint (pure). HAProxy forwards connections from its own address,
so Postgres and PgBouncer see a member, not the client: the clients' networks are enforced
where they connect, from the same pg_hba_rules as Postgres's own lines."""

from __future__ import annotations

from collections.abc import Sequence

from pgops.server.pgconf import host_network
from pgops.settings import Settings
from pgops.settings.endpoint import POOLER_ROLE
from pgops.settings.ha import REPLICATOR, REWINDER

LOOPBACK = ("127.0.0.1/32", "::1/128")


def client_networks(s: Settings, member_addresses: Sequence[str]) -> list[str]:
    """The networks allowed to connect: pg_hba_rules's (all but `reject` rules), the members
    (HAProxy forwards from them) and loopback, each once, in that order."""
    nets = [r.address for r in s.pg_hba_rules if r.method != "reject"]
    nets += [host_network(a) for a in member_addresses]
    nets += LOOPBACK
    return list(dict.fromkeys(nets))


def forwarded_rejects(s: Settings) -> list[str]:
    """Roles that never connect through the endpoint (so never from a member's address to an
    application database): superusers, replication and rewind roles, the lookup role."""
    roles = ["postgres", *(r.name for r in s.pg_roles if r.superuser), REPLICATOR, REWINDER,
             POOLER_ROLE]
    return list(dict.fromkeys(roles))


def forwarded_users(s: Settings) -> str:
    """The roles Postgres accepts from a member's address on behalf of forwarded clients:
    those pg_hba_rules lets in from anywhere (`all` when a rule says so or there is none:
    then only the members and loopback reach HAProxy)."""
    users: list[str] = []
    for r in s.pg_hba_rules:
        if r.method != "reject":
            users += r.user.split(",")
    if not users or "all" in users:
        return "all"
    return ",".join(dict.fromkeys(users))
