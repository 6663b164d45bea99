"""The clients' endpoint: PgBouncer on database hosts where pg_pooler says, HAProxy on every
member of a cluster and on the proxy group's hosts (pgops.endpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from io import StringIO

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import FileContents
from pyinfra.operations import apt, server, systemd

from pgops import pki
from pgops.deploys.packages import lists_stale_for
from pgops.endpoint import haproxy, pgbouncer
from pgops.endpoint.access import client_networks
from pgops.ha.patroni import TLS_DIR
from pgops.ha.topology import Topology
from pgops.operations import apt as apt_ops
from pgops.operations import cache, files, units
from pgops.operations.units import unit_facts
from pgops.settings import Settings
from pgops.settings.endpoint import POOLER_ROLE
from pgops.settings.ha import CLUSTER_CA


@deploy("PgBouncer")
def pooler(s: Settings, topology: Topology, addresses: Mapping[str, str]) -> None:
    """PgBouncer in front of this host's Postgres, or of a cluster's leader (through the
    member's HAProxy); a settings change is a reload, and a restart only for the listening
    socket."""
    if not s.pooler:
        return
    apt_ops.packages(name="Install PgBouncer", packages=["pgbouncer"], no_recommends=True)
    in_cluster = topology.cluster_of(host.name) is not None
    upstream = ("127.0.0.1", s.pg_proxy.leader_port if in_cluster else s.pg_port)
    ini = pgbouncer.render(s, upstream)
    cache.read_together([(FileContents, {"path": pgbouncer.CONF}), *unit_facts([pgbouncer.SERVICE])])
    old = cache.fact(FileContents, path=pgbouncer.CONF)
    changes = [
        files.put(name="PgBouncer configuration", src=StringIO(ini), dest=pgbouncer.CONF,
                  mode="640", user="postgres", group="postgres"),
        files.put(name="PgBouncer's client authentication (hba)",
                  src=StringIO(pgbouncer.render_hba(client_networks(
                      s, [addresses[m] for m in topology.forwarders(host.name)]))),
                  dest=pgbouncer.HBA, mode="640", user="postgres", group="postgres"),
        files.put(name=f"PgBouncer's auth_file (the {POOLER_ROLE} role only)",
                  src=StringIO(pgbouncer.render_userlist(s.password(s.role(POOLER_ROLE)))),
                  dest=pgbouncer.USERLIST, mode="600", user="postgres", group="postgres"),
    ]
    dropin = files.put(name="PgBouncer's descriptor limit (systemd drop-in)",
                       src=StringIO(pgbouncer.limits_dropin(s)), create_remote_dir=True,
                       dest=f"/etc/systemd/system/{pgbouncer.SERVICE}.service.d/pgops.conf", mode="644")
    systemd.daemon_reload(name="systemd reloaded (drop-in changed)", _if=dropin.did_change)
    changed = any(op.will_change for op in changes)
    restart = dropin.will_change or (
        changed and pgbouncer.needs_restart("\n".join(old) if old else None, ini))
    units.service(name="PgBouncer running", service=pgbouncer.SERVICE, running=True,
                  enabled=True, restarted=restart, reloaded=changed and not restart)


@deploy("HAProxy")
def proxy(s: Settings, topology: Topology, addresses: Mapping[str, str]) -> None:
    """HAProxy on a cluster member or proxy host (`s`: the cluster's settings): the
    read-write and read-only ports, and on a member PgBouncer's way to the leader; a change
    is checked by HAProxy, then reloaded (connections stay)."""
    cluster = topology.served_by(host.name)
    if cluster is None:
        return
    member = topology.cluster_of(host.name) is not None
    if not member and lists_stale_for(haproxy.PACKAGES):
        apt.update(name="Update apt lists (HAProxy missing)")  # a member's were updated for Postgres
    apt_ops.packages(name="Install HAProxy", packages=list(haproxy.PACKAGES), no_recommends=True)
    if not member:  # a member has the cluster CA with its Patroni certificate
        files.directory(name=f"TLS directory {TLS_DIR}", path=TLS_DIR, mode="755")
        files.put(name=f"{TLS_DIR}/ca.crt (Patroni's CA, for the health checks)",
                  src=StringIO(pki.ca_file(s.ha_pki_dir, CLUSTER_CA)), dest=f"{TLS_DIR}/ca.crt", mode="644")
    members = {m: addresses[m] for m in topology.clusters[cluster]}
    forwarders = [addresses[h] for h in topology.cluster_forwarders(cluster)]
    cfg = haproxy.render(s, members, forwarders, member=member)
    cache.read_together([(FileContents, {"path": haproxy.CONF}), *unit_facts([haproxy.SERVICE])])
    installed = cache.fact(FileContents, path=haproxy.CONF)
    files.put(name="HAProxy configuration staged", src=StringIO(cfg), dest=haproxy.STAGED,
              mode="644")
    units.service(name="HAProxy running", service=haproxy.SERVICE, running=True, enabled=True)
    if installed is None or "\n".join(installed) != cfg.rstrip("\n"):
        server.shell(name="HAProxy configuration checked, installed and reloaded (connections stay)",
                     commands=[haproxy.install_command()])
