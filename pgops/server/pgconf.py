"""Rendering of pgops-owned Postgres files: the conf.d settings file and pg_hba.conf (pure)."""

from __future__ import annotations

import re

from pgops.backup import backrest
from pgops.server.cluster import Cluster
from pgops.server.tuning import Resources, tune
from pgops.settings import Settings

HEADER = "# Managed by pgops: edits here are overwritten on the next deploy.\n"
TLS_DIR = "/etc/postgresql/pgops-tls"
#: The CA pgops keeps on its machine to issue the servers' certificates (Settings.server_pki_dir).
SERVER_CA = "pgops PostgreSQL CA"
#: That CA's certificate on each database host, for the clients there (Patroni, PgBouncer).
CA_FILE = f"{TLS_DIR}/ca.crt"


#: Patroni gives every member a replication slot on the leader. It drops the slot of a
#: member that is down for member_slots_ttl (30 min), and the member catches up from the
#: pgBackRest repository (restore_command) when it is back. Within those 30 min, or for a
#: member whose Patroni runs but whose server does not, the slot keeps WAL: this caps it,
#: so a fast writer cannot fill the leader's disk and stop the whole cluster. A slot past
#: the cap is "lost", and Patroni 4.0 does not replace it: drop it on the leader
#: (pg_drop_replication_slot) and Patroni makes a new one.
SLOT_WAL_KEEP = "8GB"


def paths(s: Settings) -> dict[str, str]:
    """The files and service pgops manages for a host's cluster."""
    c = Cluster.of(s)
    return {"etc": c.etc, "conf": f"{c.conf_d}/50-pgops.conf", "hba": c.hba, "data": c.data,
            "service": c.service, "cert": f"{TLS_DIR}/server.crt", "key": f"{TLS_DIR}/server.key",
            "ca": CA_FILE}


def access(s: Settings) -> dict[str, str | int | float | bool]:
    """Who may connect, and how: also what a restored copy applications are pointed at
    takes from its host (backup/copies.py)."""
    p = paths(s)
    return {"listen_addresses": ",".join(s.pg_listen_addresses), "ssl": True,
            "ssl_cert_file": p["cert"], "ssl_key_file": p["key"],
            "ssl_min_protocol_version": "TLSv1.2", "password_encryption": "scram-sha-256"}


def settings(s: Settings, res: Resources, host: str = "") -> dict[str, str | int | float | bool]:
    """Every setting pgops writes: base policy, WAL archiving to pgBackRest when the host
    has a repository, then tuning, then the user's pg_settings."""
    base: dict[str, str | int | float | bool] = {
        **access(s),
        "port": s.pg_port,
        "wal_level": "replica",
        # Full-page images compressed: 3.5x less WAL in the same writes (bench/tuning.py:
        # 78 against 272 MB in 40 s), at no TPS cost measurable on a 1-CPU host.
        "wal_compression": "lz4" if s.pg_major >= 15 else "on",
        "max_wal_senders": 10,
        "log_line_prefix": "%m [%p] %q%u@%d ",
        "log_connections": False,
    }
    if s.pg_ha_cluster:
        base["max_slot_wal_keep_size"] = SLOT_WAL_KEEP
    if s.pg_backup_host:
        stanza = backrest.stanza(host, s)
        base.update({"archive_mode": True, "archive_command": backrest.archive_command(stanza),
                     "archive_timeout": "60s"})
    return {**base, **tune(res, s.pg_tuning), **s.pg_settings}


def quote(v: str | int | float | bool) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, int | float):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def render_conf(values: dict[str, str | int | float | bool]) -> str:
    return HEADER + "".join(f"{k} = {quote(v)}\n" for k, v in sorted(values.items()))


def parse_conf(text: str) -> dict[str, str]:
    """Parse a postgresql.conf-style file into name -> raw value (quotes removed)."""
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if not re.search(r"'[^']*#", line) else line.strip()
        m = re.match(r"^([a-z_][a-z0-9_.]*)\s*=?\s*(.*)$", line)
        if not m:
            continue
        v = m.group(2).strip()
        if v.startswith("'") and v.endswith("'"):
            v = v[1:-1].replace("''", "'")
        out[m.group(1)] = v
    return out


def changed_keys(old: dict[str, str], new: dict[str, str]) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


def host_network(address: str) -> str:
    """One address as a pg_hba/HAProxy network: /32 for IPv4, /128 for IPv6."""
    return f"{address}/{128 if ':' in address else 32}"


def render_hba(s: Settings) -> str:
    lines = [
        HEADER,
        "# TYPE   DATABASE  USER      ADDRESS          METHOD\n",
        "local    all       postgres                   peer\n",
        "local    all       all                        peer\n",
        "hostssl  all       all       127.0.0.1/32     scram-sha-256\n",
        "hostssl  all       all       ::1/128          scram-sha-256\n",
    ]
    for r in s.pg_hba_rules:
        lines.append(f"hostssl  {r.database:<9} {r.user:<9} {r.address:<16} {r.method}\n")
    if s.pg_hba_extra:
        lines.append("# extra lines from pg_hba_extra\n")
        lines.extend(f"{x.strip()}\n" for x in s.pg_hba_extra)
    return "".join(lines)
