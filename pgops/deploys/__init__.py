"""pyinfra deploys: named units composed from operations, one per concern."""

from pgops.deploys.access import postgres_access
from pgops.deploys.backup import backups
from pgops.deploys.cluster import (
    etcd_member,
    patroni_bootstrap,
    patroni_member,
    patroni_replicas,
)
from pgops.deploys.endpoint import pooler, proxy
from pgops.deploys.packages import apt_ready
from pgops.deploys.schema import app_schema
from pgops.deploys.server import postgres_server

__all__ = ["apt_ready", "postgres_server", "postgres_access", "app_schema", "backups", "etcd_member",
           "patroni_bootstrap", "patroni_member", "patroni_replicas", "pooler", "proxy"]
