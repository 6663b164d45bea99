"""The high-availability settings of a database host: the Patroni cluster it belongs to and
how that cluster fails over. Hosts that share `pg_ha_cluster` form one cluster."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Roles a Patroni cluster needs besides the user's: replicas stream as REPLICATOR,
#: a former leader is rewound (pg_rewind) as REWINDER. Their passwords are secrets like
#: every role's; pgops creates them on the leader and checks their SCRAM verifiers.
REPLICATOR = "replicator"
REWINDER = "rewinder"
HA_ROLES = (REPLICATOR, REWINDER)
#: The Patroni REST API's basic-auth user (its password: secret PATRONI_API_SECRET).
PATRONI_API_USER = "pgops"
PATRONI_API_SECRET = "PGOPS_PATRONI_API_PASSWORD"
PATRONI_PORT = 8008
#: The CA of a cluster's Patroni and etcd certificates (pgops keeps it in ha_pki_dir).
CLUSTER_CA = "pgops cluster CA"
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380


class Ha(BaseModel):
    """Patroni's failover timing and replication mode for one cluster (its DCS settings).

    The defaults aim at writes accepted again about 20 s after an unplanned leader loss:
    the leader key expires `ttl` s after the leader's last renewal (every `loop_wait` s)
    and the replicas, watching that key in etcd, race at once; 20 s is the least ttl
    Patroni accepts (it raises anything lower to 20). Patroni needs
    `loop_wait + 2 * retry_timeout <= ttl`, so that a leader riding out a DCS blip is not
    demoted. Its own defaults (30/10/10) give 30-40 s.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: int = Field(20, ge=20, le=300)
    loop_wait: int = Field(3, ge=1, le=60)
    retry_timeout: int = Field(5, ge=1, le=120)
    #: A replica further behind than this many bytes is never promoted automatically: the
    #: most an asynchronous failover can lose.
    maximum_lag_on_failover: int = Field(1048576, ge=0)
    #: "off": asynchronous; "on": a synchronous standby when one is healthy (RPO 0 while it
    #: is); "strict": writes wait when none is (RPO 0 always, at the cost of availability).
    synchronous_mode: Literal["off", "on", "strict"] = "off"
    synchronous_node_count: int = Field(1, ge=1, le=8)
    #: Patroni's watchdog: "required" in production where /dev/watchdog exists (a hung
    #: Patroni then resets the machine before a replica is promoted); "automatic" uses it
    #: when present (the lab's containers have none); "off" never.
    watchdog: Literal["off", "automatic", "required"] = "automatic"

    @model_validator(mode="after")
    def _timing(self) -> Ha:
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError(f"loop_wait + 2 * retry_timeout ({self.loop_wait} + 2 * "
                             f"{self.retry_timeout}) must not exceed ttl ({self.ttl}): a "
                             "leader riding out a DCS timeout would lose its lock")
        return self
