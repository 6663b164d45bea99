"""HAProxy's configuration for a cluster, on its members and on the proxy group's hosts,
rendered from the settings (pure).

Three routes, each choosing members by Patroni's REST API health checks (TLS, the cluster CA):
- rw (`Proxy.rw_port`): the leader's PgBouncer (GET /primary). Sessions are not cut when the
  leader changes: a client of the old leader's PgBouncer goes on through its `leader` route.
- ro (`Proxy.ro_port`): the replicas' Postgres no further behind than max_replica_lag
  (GET /replica?lag=N); a member that stops qualifying has its sessions cut, so the port
  never serves a promoted member.
- leader (127.0.0.1:`Proxy.leader_port`, members only): the leader's Postgres, for the
  local PgBouncer's server connections; cut when the leader changes, so none reaches a
  demoted one.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence

from pgops.endpoint.access import client_networks
from pgops.ha.patroni import TLS_DIR
from pgops.settings import Settings
from pgops.settings.ha import PATRONI_PORT

SERVICE = "haproxy"
CONF = "/etc/haproxy/haproxy.cfg"
ADMIN_SOCKET = "/run/haproxy/admin.sock"
#: The master process's socket (Debian's unit starts HAProxy with -S here).
MASTER_SOCKET = "/run/haproxy-master.sock"
PACKAGES = ("haproxy",)
#: The routes' names (HAProxy proxies), by what they serve.
RW, RO, LEADER = "pgops_rw", "pgops_ro", "pgops_leader"
#: How status and metrics name them.
ROUTE_NAMES = {RW: "rw", RO: "ro", LEADER: "leader"}


def render(s: Settings, members: Mapping[str, str], forwarders: Sequence[str], member: bool = True) -> str:
    """haproxy.cfg for a cluster's member (`member`) or proxy host; `members`: name ->
    address; `forwarders`: the addresses of every HAProxy of the cluster (pgops.endpoint.access)."""
    px = s.pg_proxy
    i = px.check_interval_ms
    pooled = s.pooler.port if s.pooler else s.pg_port
    out = [
        "# Managed by pgops: edits here are overwritten on the next deploy.",
        "global",
        f"    stats socket {ADMIN_SOCKET} mode 660 level admin",
        "    stats timeout 30s",
        "    user haproxy",
        "    group haproxy",
        "",
        "defaults",
        "    mode tcp",
        "    timeout connect 3s",
        # Pooled application connections sit idle for long: keep them (and probe the peers).
        "    timeout client 24h",
        "    timeout server 24h",
        "    option clitcpka",
        "    option srvtcpka",
        "    timeout check 2s",
        f"    default-server inter {i}ms fastinter {max(100, i // 4)}ms downinter {i}ms "
        f"rise 1 fall 2 check-ssl verify required ca-file {TLS_DIR}/ca.crt port {PATRONI_PORT}",
        "",
    ]

    allowed = " ".join(client_networks(s, forwarders))

    # OPTIONS, not GET: Patroni answers it with the status line alone. A GET's JSON body is
    # still being written when HAProxy, having read the status, resets the connection, and
    # Patroni logs a WARNING with a traceback for each check (patroni/patroni#2229).
    def route(name: str, bind: str, check: str, port: int, cut: bool) -> list[str]:
        lines = [f"listen {name}", f"    bind {bind}", "    balance roundrobin",
                 f"    tcp-request connection reject unless {{ src {allowed} }}",
                 "    option httpchk", f"    http-check send meth OPTIONS uri {check}",
                 "    http-check expect status 200"]
        lines += [f"    server {m} {a}:{port} check" + (" on-marked-down shutdown-sessions" if cut else "")
                  for m, a in members.items()]
        return [*lines, ""]

    out += route(RW, f"*:{px.rw_port}", "/primary", pooled, cut=False)
    out += route(RO, f"*:{px.ro_port}", f"/replica?lag={px.max_replica_lag}", s.pg_port, cut=True)
    if s.pooler and member:
        out += route(LEADER, f"127.0.0.1:{px.leader_port}", "/primary", s.pg_port, cut=True)
    out += [
        "frontend pgops_stats",
        "    mode http",
        f"    bind {_host(px.stats_address)}:{px.stats_port}",
        "    http-request use-service prometheus-exporter if { path /metrics }",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 10s",
        "",
    ]
    return "\n".join(out)


def _host(address) -> str:
    """An address as HAProxy's bind wants it (IPv6 in brackets)."""
    return f"[{address}]" if ":" in str(address) else str(address)


#: Where a deploy stages the rendered configuration before HAProxy has checked it.
STAGED = "/etc/haproxy/haproxy.cfg.pgops-new"


def install_command() -> str:
    """A shell command (as root) installing STAGED: checked by HAProxy, copied over CONF and
    reloaded; if HAProxy cannot load it, the previous file is put back and the command fails,
    so the next deploy still sees the difference and tries again."""
    return (f"set -e; haproxy -c -q -f {STAGED}; cp {CONF} {CONF}.pgops-prev 2>/dev/null || true; "
            f"cp {STAGED} {CONF}; if ! ( {reload_command()} ); then "
            f"cp {CONF}.pgops-prev {CONF}; echo 'HAProxy did not load the new configuration; "
            "the previous one is back in place' >&2; exit 1; fi")


def reload_command() -> str:
    """A shell command reloading HAProxy through its master socket and failing unless the new
    configuration loaded (a reload by signal that fails keeps the old one and exits 0)."""
    return (_socket_command(MASTER_SOCKET, ["reload"])
            + " | tee /dev/stderr | grep -q '^Success=1'")


def runtime_command(commands: list[str], quiet: bool = False) -> str:
    """A shell command sending runtime API commands to the local HAProxy (as root), printing
    its answers; `quiet`: commands that answer nothing on success (`set server`), so any
    answer ("No such server.") fails the command."""
    return _socket_command(ADMIN_SOCKET, commands, quiet)


def _socket_command(socket_path: str, commands: list[str], quiet: bool = False) -> str:
    script = ("import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n"
              "s.sendall(sys.argv[2].encode()+b'\\n')\nb=b''\nwhile True:\n"
              "    d=s.recv(65536)\n    if not d: break\n    b+=d\nprint(b.decode())\n"
              "sys.exit(1 if sys.argv[3] == 'quiet' and b.strip() else 0)\n")
    return (f"python3 -c {shlex.quote(script)} {socket_path} "
            f"{shlex.quote('; '.join(commands))} {'quiet' if quiet else 'answers'}")
