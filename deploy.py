"""pgops deploy: which deploys each host group gets. Logic lives in the pgops package.

    pgops deploy                      # the lab (inventory/lab.py)
    pyinfra inventory/lab.py deploy.py
"""

from pyinfra import host

from pgops.deploys import (
    app_schema,
    apt_ready,
    backups,
    etcd_member,
    patroni_bootstrap,
    patroni_member,
    patroni_replicas,
    pooler,
    postgres_access,
    postgres_server,
    proxy,
)
from pgops.remote import address
from pgops.settings.inventory import DB_GROUP, PROXY_GROUP, all_settings, all_topology

dbs = all_settings()  # every database host's settings, validated before any operation is planned
topology = all_topology()  # Patroni clusters and etcd members
addresses = {h.name: address(h) for h in host.inventory}  # where hosts reach each other

apt_ready()  # a re-run after a killed deploy: wait for its apt, finish its dpkg

# Keywords: pyinfra types a deploy's positional slots as its global arguments (_sudo, ...).
if DB_GROUP in host.groups:
    postgres_server(s=dbs[host.name], names=topology.dialed(host.name, addresses))

etcd_member(topology=topology, addresses=addresses, dbs=dbs)  # etcd_servers

if DB_GROUP in host.groups:
    settings = dbs[host.name]
    # A cluster member's postmaster is Patroni's; writes go to its leader, replicas follow.
    writes_here = patroni_member(s=settings, topology=topology, dbs=dbs, addresses=addresses)
    if writes_here:
        postgres_access(s=settings)  # before Patroni takes a new cluster over: it needs its roles
    patroni_bootstrap(s=settings, topology=topology, dbs=dbs)
    if writes_here:
        app_schema(s=settings, address=addresses[host.name])  # "deployed" means a ready database
    patroni_replicas(s=settings, topology=topology, dbs=dbs)  # clone once the leader's roles exist
    # The clients' endpoint: HAProxy to the leader and replicas, PgBouncer pools.
    proxy(s=settings, topology=topology, addresses=addresses)
    pooler(s=settings, topology=topology, addresses=addresses)

# The proxy group: HAProxy carrying a cluster's read-write and read-only ports.
if PROXY_GROUP in host.groups and topology.served_by(host.name):
    proxy(s=dbs[topology.clusters[topology.proxies[host.name]][0]], topology=topology, addresses=addresses)

# pgBackRest on database hosts with pg_backup_host and on their repository hosts
backups(dbs=dbs, addresses=addresses)
