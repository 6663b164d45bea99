"""Prometheus textfile-collector metrics for `pgops status` and `pgops cluster status`
(pure rendering), and the atomic write the textfile collector needs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from pgops.ha import RUNNING

#: name, help, and the samples of one host's backup report: (extra labels, value) pairs.
Samples = Callable[[dict], Iterable[tuple[str, object]]]


def _one(key: str, default: object = None) -> Samples:
    return lambda report: [] if report.get(key, default) is None else [("", report.get(key, default))]


BACKUP_METRICS: tuple[tuple[str, str, Samples], ...] = (
    ("pgops_backup_age_seconds", "Age of the newest backup of a type.",
     lambda report: [(f',type="{k}"', v) for k, v in (report.get("backup_age_s") or {}).items()
                     if v is not None]),
    ("pgops_wal_last_archived_age_seconds", "Seconds since the last WAL was archived.",
     _one("last_archived_age_s")),
    ("pgops_rpo_estimate_seconds", "Seconds of work at risk (0: no WAL waiting).",
     _one("rpo_estimate_s")),
    ("pgops_wal_archive_failed_total", "pg_stat_archiver.failed_count.",
     # A host whose repository did not answer has no report but its alerts.
     lambda report: ([("", report["archiver_failed_count"] or 0)] if "archiver_failed_count" in report
                     else [])),
    ("pgops_repo_size_bytes", "Repository bytes of this host's backups.", _one("repo_size_bytes")),
    ("pgops_alerts", "Number of backup alerts.", lambda report: [("", len(report["alerts"]))]),
)


def _stanza(row: dict) -> str:
    """A cluster's backups are the cluster's: their stanza as a label. A single host's
    stanza is its own name, and its series keep the labels they always had."""
    stanza = row["backup"].get("stanza")
    return f',stanza="{stanza}"' if stanza and stanza != row["host"] else ""


#: name, help, and the server row's value (None: no sample).
SERVER_METRICS: tuple[tuple[str, str, Callable[[dict], object]], ...] = (
    ("pgops_up", "1 if the server answered.", lambda r: 1 if r["up"] else 0),
    ("pgops_wal_bytes", "Bytes in pg_wal.", lambda r: (r.get("wal") or {}).get("wal_bytes")),
    ("pgops_wal_disk_free_bytes", "Free bytes of pg_wal's filesystem.",
     lambda r: (r.get("wal") or {}).get("fs_free_bytes")),
    ("pgops_wal_disk_size_bytes", "Size of pg_wal's filesystem.",
     lambda r: (r.get("wal") or {}).get("fs_size_bytes")),
    ("pgops_server_alerts", "Number of the server's own alerts (a full pg_wal disk).",
     lambda r: len(r["alerts"]) if "alerts" in r else None),
)


def prometheus(rows: list[dict]) -> str:
    out: list[str] = []
    for name, help_, value in SERVER_METRICS:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        out += [f'{name}{{host="{r["host"]}"}} {v}' for r in rows if (v := value(r)) is not None]
    pooled = [(f'host="{r["host"]}"', r["pooler"]["pools"]) for r in rows if "pooler" in r]
    if pooled:
        out += _pool_metrics(pooled, "host's")
    for name, help_, samples in BACKUP_METRICS:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        for r in rows:
            if r.get("backup"):
                out += [f'{name}{{host="{r["host"]}"{_stanza(r)}{labels}}} {v}'
                        for labels, v in samples(r["backup"])]
    return "\n".join(out) + "\n"


#: name, help, and one member row's value (None: no sample).
MEMBER_METRICS: tuple[tuple[str, str, Callable[[dict], object]], ...] = (
    ("pgops_cluster_member_up", "1 if Patroni lists the member running or streaming.",
     lambda m: int(m["state"] in RUNNING)),
    ("pgops_cluster_member_leader", "1 for the member holding the leader key.",
     lambda m: int(m["role"] == "leader")),
    ("pgops_cluster_member_timeline", "The member's timeline.", lambda m: m["timeline"]),
    ("pgops_cluster_member_lag_bytes", "Replay lag behind the leader, bytes.", lambda m: m["lag_bytes"]),
    ("pgops_cluster_member_lag_seconds", "Replay lag behind the leader, seconds.", lambda m: m["lag_s"]),
    ("pgops_cluster_member_pending_restart", "1 when a parameter waits for a restart.",
     lambda m: None if m["pending_restart"] is None else int(m["pending_restart"])),
)


def cluster_prometheus(st: dict) -> str:
    """`pgops cluster status`'s report as metrics: per member, and etcd's health."""
    out = ["# HELP pgops_cluster_has_leader 1 if the cluster has a leader.",
           "# TYPE pgops_cluster_has_leader gauge"]
    out += [f'pgops_cluster_has_leader{{cluster="{c["cluster"]}"}} {int(bool(c["leader"]))}'
            for c in st["clusters"]]
    for name, help_, value in MEMBER_METRICS:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        out += [f'{name}{{cluster="{c["cluster"]}",member="{m["member"]}"}} {v}'
                for c in st["clusters"] for m in c["members"] if (v := value(m)) is not None]
    out += _endpoint_metrics(st)
    out += ["# HELP pgops_etcd_healthy 1 if the etcd endpoint answered healthy.",
            "# TYPE pgops_etcd_healthy gauge"]
    out += [f'pgops_etcd_healthy{{endpoint="{e["endpoint"]}"}} {int(e["healthy"])}'
            for e in st["etcd"] or ()]
    return "\n".join(out) + "\n"


#: PgBouncer's pools as metrics: (name, help, SHOW POOLS field).
POOL_METRICS = (
    ("pgops_pooler_clients_active", "Client connections linked to a server connection.", "cl_active"),
    ("pgops_pooler_clients_waiting", "Client connections waiting for a server connection.", "cl_waiting"),
    ("pgops_pooler_servers_active", "Server connections linked to a client.", "sv_active"),
    ("pgops_pooler_servers_idle", "Server connections idle and ready.", "sv_idle"),
    ("pgops_pooler_maxwait_seconds", "How long the oldest waiting client has waited.", "maxwait_s"),
)


def _pool_metrics(pooled: list[tuple[str, list[dict] | None]], whose: str) -> list[str]:
    """Whether each PgBouncer answered, and its pools' numbers; `pooled`: (labels, pools)."""
    out = [f"# HELP pgops_pooler_up 1 if the {whose} PgBouncer answered.", "# TYPE pgops_pooler_up gauge"]
    out += [f"pgops_pooler_up{{{labels}}} {int(pools is not None)}" for labels, pools in pooled]
    for name, help_, field in POOL_METRICS:
        out += [f"# HELP {name} {help_}", f"# TYPE {name} gauge"]
        out += [f'{name}{{{labels},database="{p["database"]}",user="{p["user"]}"}} {p[field]}'
                for labels, pools in pooled for p in pools or ()]
    return out


def _endpoint_metrics(st: dict) -> list[str]:
    """Per member: each pool's numbers, whether PgBouncer and HAProxy answered, and each
    HAProxy route's view of each member (1 up)."""
    rows = [(c["cluster"], e) for c in st["clusters"] for e in c.get("endpoint") or ()]
    pooled = [(f'cluster="{c}",member="{e["member"]}"', e["pools"]) for c, e in rows if e["pooled"]]
    out = _pool_metrics(pooled, "member's")
    out += ["# HELP pgops_proxy_route_up 1 if the member's HAProxy sends the route to that server.",
            "# TYPE pgops_proxy_route_up gauge"]
    out += [f'pgops_proxy_route_up{{cluster="{c}",member="{e["member"]}",route="{route}",'
            f'server="{srv}"}} {int(status == "UP")}'
            for c, e in rows for route, servers in (e["routes"] or {}).items()
            for srv, status in servers.items()]
    return out


def write(path: Path, text: str) -> None:
    """Write a metrics file atomically (the textfile collector never reads half of one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
