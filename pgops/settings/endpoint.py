"""The settings of the clients' endpoint: PgBouncer in front of Postgres on each database
host, and (for a cluster) HAProxy routing a read-write and a read-only port by Patroni's
health checks. One definition of the names, ports and limits every other module uses."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, model_validator

#: The login role PgBouncer looks passwords up as (auth_user); its password is a secret
#: like every role's, and it may only run the lookup function.
POOLER_ROLE = "pgbouncer"
#: The schema and function of that lookup, in the `postgres` database.
AUTH_SCHEMA = "pgbouncer"
AUTH_FUNCTION = f"{AUTH_SCHEMA}.get_auth(text)"
#: Connections pgops reserves beside the pools: superuser, Patroni, replication, pg_rewind,
#: the lookup connections and an operator's psql.
RESERVED_CONNECTIONS = 15
#: Server connections each PgBouncer keeps for its password lookups.
AUTH_POOL_SIZE = 2


class Pooler(BaseModel):
    """PgBouncer on a database host (pg_pooler). Clients wait for a server connection at
    most `query_wait_timeout` s, then get an error: never an unbounded queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port: int = Field(6432, ge=1, le=65535)
    #: "transaction": a server connection per transaction (what pooling is for); "session":
    #: per client connection (for session state: advisory locks, SET, LISTEN).
    pool_mode: Literal["transaction", "session"] = "transaction"
    #: Server connections per database and user, and at most per database.
    default_pool_size: int = Field(20, ge=1, le=1000)
    max_db_connections: int = Field(20, ge=1, le=5000)
    #: Client connections one PgBouncer accepts (beyond: refused at once).
    max_client_conn: int = Field(1000, ge=1, le=100000)
    query_wait_timeout: int = Field(30, ge=1, le=3600)

    @property
    def pausable(self) -> bool:
        """Whether a PAUSE holds clients between transactions (transaction pooling); in
        session pooling it would wait for every client to disconnect."""
        return self.pool_mode == "transaction"

    @model_validator(mode="after")
    def _sizes(self) -> Pooler:
        if self.default_pool_size > self.max_db_connections:
            raise ValueError(f"default_pool_size ({self.default_pool_size}) exceeds "
                             f"max_db_connections ({self.max_db_connections})")
        return self


class Proxy(BaseModel):
    """HAProxy on a cluster's database hosts (pg_proxy): a read-write port to the leader's
    PgBouncer, a read-only port to replicas no further behind than `max_replica_lag` bytes,
    and a loopback port through which each PgBouncer reaches the leader's Postgres."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rw_port: int = Field(5000, ge=1, le=65535)
    ro_port: int = Field(5001, ge=1, le=65535)
    #: 127.0.0.1 only: PgBouncer's way to whichever member leads.
    leader_port: int = Field(5002, ge=1, le=65535)
    #: HAProxy's statistics and Prometheus metrics (GET /metrics, /stats): plain HTTP with no
    #: login, so on loopback unless `stats_address` names another (a scraper's network).
    stats_port: int = Field(8404, ge=1, le=65535)
    stats_address: IPvAnyAddress = IPv4Address("127.0.0.1")
    max_replica_lag: int = Field(1048576, ge=0)
    #: How often HAProxy asks each member's Patroni which role it has.
    check_interval_ms: int = Field(1000, ge=100, le=60000)

    @model_validator(mode="after")
    def _distinct(self) -> Proxy:
        ports = [self.rw_port, self.ro_port, self.leader_port, self.stats_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"rw_port, ro_port, leader_port and stats_port must differ ({ports})")
        return self


def pooler_of(value: Any, in_cluster: bool) -> Pooler | None:
    """The one rule for whether a host runs PgBouncer: pg_pooler unset means on for a
    cluster member (its clients need one endpoint) and off for a single host; True or a
    mapping turn it on, False off. Tolerant of raw (unvalidated) inventory values."""
    if value is None:
        return Pooler() if in_cluster else None
    if value is False:
        return None
    if value is True:
        return Pooler()
    if isinstance(value, Pooler):
        return value
    return Pooler(**value) if isinstance(value, dict) else None
