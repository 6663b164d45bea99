"""PgBouncer's files on a database host, rendered from the settings (pure).

Clients reach the databases of pg_databases only, over TLS with SCRAM; passwords are looked up
in Postgres (pgops.endpoint.auth) on the host's own server, so a replica's PgBouncer keeps
authenticating while the leader changes. Server connections go to `upstream`: the local
Postgres of a single host, or a cluster member's HAProxy route to whichever member leads, so
that after a switchover paused clients resume against the new leader.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Sequence

from pgops.endpoint import auth
from pgops.server import pgconf
from pgops.settings import Settings
from pgops.settings.endpoint import AUTH_POOL_SIZE, POOLER_ROLE

SERVICE = "pgbouncer"
CONF = "/etc/pgbouncer/pgbouncer.ini"
USERLIST = "/etc/pgbouncer/userlist.txt"
HBA = "/etc/pgbouncer/pgops_hba.conf"
SOCKET_DIR = "/var/run/postgresql"
#: The admin console's user: the OS user PgBouncer runs as, by peer authentication over the
#: Unix socket only.
ADMIN_USER = "postgres"
#: The [databases] entry of the password lookups (never reachable by clients).
AUTH_DB = "pgops_auth"
#: Settings that PgBouncer reads only when it starts; a change to any other is a reload.
RESTART_KEYS = ("listen_addr", "listen_port", "unix_socket_dir", "pidfile", "user")
HEADER = "; Managed by pgops: edits here are overwritten on the next deploy.\n"


def render(s: Settings, upstream: tuple[str, int]) -> str:
    """pgbouncer.ini; `upstream`: (host, port) where the application databases are."""
    p = s.pooler
    assert p is not None
    tls = pgconf.paths(s)
    host, port = upstream
    dbs = [f"{d.name} = host={host} port={port} dbname={d.name}" for d in s.pg_databases]
    dbs.append(f"{AUTH_DB} = host=127.0.0.1 port={s.pg_port} dbname={auth.DATABASE} "
               f"pool_size={AUTH_POOL_SIZE} max_db_connections={AUTH_POOL_SIZE}")
    settings = {
        "listen_addr": "*",
        "listen_port": p.port,
        "unix_socket_dir": SOCKET_DIR,
        "pidfile": f"{SOCKET_DIR}/pgbouncer.pid",
        "logfile": "/var/log/postgresql/pgbouncer.log",
        "auth_type": "hba",
        "auth_hba_file": HBA,
        "auth_file": USERLIST,
        "auth_user": POOLER_ROLE,
        "auth_query": auth.QUERY,
        "auth_dbname": AUTH_DB,
        "admin_users": ADMIN_USER,
        "stats_users": ADMIN_USER,
        "pool_mode": p.pool_mode,
        "default_pool_size": p.default_pool_size,
        "max_db_connections": p.max_db_connections,
        "max_client_conn": p.max_client_conn,
        "query_wait_timeout": p.query_wait_timeout,
        "client_tls_sslmode": "require",
        "client_tls_cert_file": tls["cert"],
        "client_tls_key_file": tls["key"],
        # To Postgres through 127.0.0.1 (the local HAProxy for a cluster member): the name
        # dialed is loopback's, so the server is checked against pgops's CA, not its name.
        "server_tls_sslmode": "verify-ca",
        "server_tls_ca_file": tls["ca"],
        "server_login_retry": 1,
        "ignore_startup_parameters": "extra_float_digits",
        "log_connections": 0,
        "log_disconnections": 0,
    }
    return (HEADER + "[databases]\n" + "".join(f"{line}\n" for line in dbs) + "\n[pgbouncer]\n"
            + "".join(f"{k} = {v}\n" for k, v in settings.items()))


def pool_connections(s: Settings) -> int:
    """The most server connections one PgBouncer of `s` opens: max_db_connections for each
    application database, and the password lookups' own."""
    assert s.pooler
    return len(s.pg_databases) * s.pooler.max_db_connections + AUTH_POOL_SIZE


def limits_dropin(s: Settings) -> str:
    """A systemd drop-in giving PgBouncer a descriptor per client and server connection
    (Debian's unit leaves the soft limit at 1024, fewer than max_client_conn allows)."""
    assert s.pooler
    n = s.pooler.max_client_conn + pool_connections(s) + 64
    return f"# Managed by pgops: a descriptor per connection.\n[Service]\nLimitNOFILE={n}\n"


def render_hba(networks: Sequence[str]) -> str:
    """Who may connect to PgBouncer: its admin console from the Unix socket as ADMIN_USER
    (peer); over TCP only TLS and SCRAM from `networks` (pgops.endpoint.access), never to
    the lookup entry, never as the lookup role or ADMIN_USER."""
    anywhere = ("0.0.0.0/0", "::/0")
    return (HEADER.replace(";", "#")
            + f"local    pgbouncer  {ADMIN_USER}  peer\n"
            + "".join(f"hostssl  all  {u}  {net}  reject\n"
                      for u in (POOLER_ROLE, ADMIN_USER) for net in anywhere)
            + "".join(f"hostssl  {AUTH_DB}  all  {net}  reject\n" for net in anywhere)
            + "".join(f"hostssl  all  all  {net}  scram-sha-256\n" for net in networks))


def render_userlist(password: str) -> str:
    """auth_file: the lookup role, whose password PgBouncer needs to log in to Postgres, and
    the admin console's user, which PgBouncer must know to let it in by peer: its entry is a
    digest no one can log in with (the hba file refuses it over TCP anyway)."""
    def q(v: str) -> str:
        return '"' + v.replace('"', '""') + '"'
    unusable = hashlib.sha256(f"pgops admin console:{password}".encode()).hexdigest()
    return f"{q(POOLER_ROLE)} {q(password)}\n{q(ADMIN_USER)} {q(unusable)}\n"


def parse(text: str) -> dict[str, str]:
    """pgbouncer.ini's [pgbouncer] settings by name (for what a change needs)."""
    out, section = {}, ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "pgbouncer" and "=" in line and not line.startswith((";", "#")):
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def needs_restart(old: str | None, new: str) -> bool:
    """Whether going from `old` to `new` needs a restart (clients reconnect), not a reload."""
    if old is None:
        return True
    a, b = parse(old), parse(new)
    return any(a.get(k) != b.get(k) for k in RESTART_KEYS)


def admin_command(sql: str, port: int, timeout_s: int = 30) -> str:
    """A shell command running `sql` on the local admin console, as ADMIN_USER (run it as
    that user), printing `|`-separated rows under a header line; it gives up after
    `timeout_s` (a PAUSE waits for transactions to end)."""
    return (f"timeout {int(timeout_s)} psql -XAq -P footer=off -F '|' -h {SOCKET_DIR} "
            f"-p {int(port)} -U {ADMIN_USER} -d pgbouncer -c {shlex.quote(sql)}")


def parse_rows(text: str) -> list[dict[str, str]]:
    """admin_command's output (a header line, then rows) as dicts by column (pure)."""
    lines = [ln for ln in text.strip().splitlines() if ln]
    if not lines:
        return []
    header = lines[0].split("|")
    return [dict(zip(header, ln.split("|"), strict=False)) for ln in lines[1:]]
