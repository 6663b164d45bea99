"""Every table and human-readable figure the CLI prints, in one place (JSON is printed as is)."""

from __future__ import annotations

import datetime as dt
import json

import click
from rich.table import Table

from pgops.cli.common import console


def print_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def age(seconds) -> str:
    if seconds is None:
        return "never"
    seconds = float(seconds)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n:
            return f"{seconds / n:.1f}{unit}"
    return f"{seconds:.0f}s"


def when(epoch) -> str:
    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def size(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def changed(r: dict) -> str:
    """A full backup copies all the data; a diff or incr only what changed since its base."""
    if r["type"] == "full":
        return f"{size(r['size'])} of data"
    return f"{size(r['delta'])} changed of {size(r['size'])}"


def _table(title: str, columns, rows, show_header: bool = True) -> None:
    t = Table(title=title, show_header=show_header)
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*row)
    console.print(t)


def lab_status(st: dict) -> None:
    _table(f"lab {st['lab']} (engine {st['engine']}, network {st['network']}, "
           f"{st['firewall_rules']} firewall rules)",
           ("name", "address", "state", "ssh_user", "ssh_key"),
           [(h["name"], h["address"] or "-", h["state"], h["ssh_user"], h["ssh_key"]) for h in st["hosts"]])


_ONOFF = {True: "on", False: "off", None: "-"}


def _server_row(r: dict) -> tuple:
    return (r["host"], r["address"], r.get("role") or "-",
            r.get("postgres") or "down", r.get("pgvector") or "-",
            ", ".join(r.get("databases", [])), ", ".join(r.get("roles", [])),
            "on" if r.get("tls") else "off", _ONOFF[r.get("checksums")])


def _wal_row(r: dict) -> tuple:
    wal = r["wal"]
    return (r["host"], size(wal["wal_bytes"]), f"{wal['fs_used_percent']:.0f}%", size(wal["fs_free_bytes"]),
            "; ".join(r.get("alerts") or ()) or "none")


def _backup_row(r: dict) -> tuple:
    x = r["backup"]
    ages = x.get("backup_age_s") or {}
    drill = x.get("last_drill") or {}
    drilled = f"{'ok' if drill.get('ok') else 'FAILED'} {drill.get('rto_s')} s" if drill else "-"
    return (x.get("stanza", r["host"]), age(ages.get("full")), age(ages.get("diff")), age(ages.get("incr")),
            age(x.get("last_archived_age_s")), str(x.get("archiver_failed_count", "-")),
            size(x.get("repo_size_bytes", 0)), drilled, "; ".join(x.get("alerts", [])) or "none")


def status(rows: list[dict], where: str) -> None:
    _table(f"pgops status ({where})",
           ("host", "address", "role", "postgres", "pgvector", "databases", "roles", "tls", "checksums"),
           [_server_row(r) for r in rows])
    if any(r.get("wal") for r in rows):
        _table("pg_wal and its disk", ("host", "pg_wal", "disk used", "disk free", "alerts"),
               [_wal_row(r) for r in rows if r.get("wal")])
    pooled = [r for r in rows if "pooler" in r]
    if pooled:
        _table("PgBouncer pools", ("host", "port", "clients active", "clients waiting", "servers",
                                   "max wait"),
               [(r["host"], str(r["pooler"]["port"]), *_pool_columns(r["pooler"]["pools"], "DOWN"))
                for r in pooled])
    backed = [r for r in rows if "backup" in r]
    if backed:
        _table("backups", ("stanza", "full", "diff", "incr", "last WAL archived", "archive failures",
                           "repository", "last drill", "alerts"),
               [_backup_row(r) for r in backed])


def backup_list(st: dict) -> None:
    w = st["window"]
    _table(f"{st['host']} -> {st['repository']} (stanza {st['stanza']}, {st['status']}); "
           f"recoverable {when(w['earliest'])} .. {when(w['latest'])}",
           ("label", "type", "start", "stop", "size", "repo", "wal"),
           [(x["label"], x["type"], when(x["start"]), when(x["stop"]), size(x["size"]),
             size(x["repo_size"]), f"{x['wal_start']} .. {x['wal_stop']}") for x in st["backups"]])


def restore_result(source: str, result: dict) -> None:
    """`pgops restore`: what was restored where and what it holds; for a copy beside the live
    cluster, how to switch over to it or remove it."""
    v = result["verify"]
    click.echo(f"restored {source} to {result['target_time']} on {result['address']}:{result['port']} "
               f"in {result['seconds']:.1f} s; schema version {v.get('schema_version')}, "
               f"{sum(v.get('row_counts', {}).values())} rows in {len(v.get('row_counts', {}))} tables")
    if result.get("members"):
        tl = result["timelines"]
        click.echo("members: " + ", ".join(f"{m}{' (leader)' if i == 0 else ''} on timeline "
                                           f"{tl.get(m)}" for i, m in enumerate(result["members"])))
    if result["in_place"]:
        return
    major, cluster = result["cluster"].split("/")
    click.echo(f"the restored copy runs on {result['address']}:{result['port']} "
               f"(cluster {result['cluster']}); point applications at it, or restore in place with "
               f"`pgops restore --to '{result['target_time']}' --host {source} --in-place --yes`; "
               f"remove it with `pg_dropcluster {major} {cluster} --stop` on {result['host']}")


def tenant_diff(r: dict) -> None:
    """`pgops tenant restore`: per table, the tenant's rows at the target against now."""
    _table(f"tenant {r['client_id']} at {r['target_time']} (backup {r['backup']}) against now",
           ("table", "at target", "now", "only at target", "only now", "changed", "applied"),
           [(t["table"] + (" (append-only)" if t["append_only"] else ""), str(t["at_target"]),
             str(t["now"]), str(t["only_at_target"]), str(t["only_now"]), str(t["changed"]),
             ", ".join(f"{k} {v}" for k, v in ((r["applied_rows"] or {}).get(t["table"]) or {}).items())
             or "-") for t in r["tables"]])
    for note in r["notes"]:
        click.echo(f"note: {note}")
    sec = r["seconds"]
    what = ("applied in one transaction" if r["applied"]
            else "nothing in the live tenant changed (--apply --yes puts these rows back)")
    click.echo(f"{what}; restore beside {sec['restore']:.1f} s, tenant steps {sec['tenant']:.1f} s; "
               "the copy was removed")


def drill_results(results: list[dict]) -> None:
    """`pgops drill`: one line per database host."""
    for r in results:
        verdict = "ok" if r["ok"] else f"FAILED: {r.get('error') or r.get('amcheck')}"
        click.echo(f"{r['host']}: drill to {r['target_time']} {verdict}; RTO {r.get('rto_s') or '-'} s; "
                   f"{sum((r.get('verify') or {}).get('row_counts', {}).values())} rows checked")


def migrations(st: dict, label: str) -> None:
    _table(f"migrations on {label}: at {st['current']}, latest {st['latest']}",
           ("version", "name", "state", "sha256", "applied_at", "applied_by"),
           [(f"{r['version']:04d}", r["name"], r["state"], (r["sha256"] or "")[:12],
             r["applied_at"] or "-", r["applied_by"] or "-") for r in st["migrations"]])


def probe_report(report: dict, label: str) -> None:
    """`pgops health`: what client.probe found on a database (one row per finding)."""
    keys = ("healthy", "latency_ms", "server_version", "pgvector", "schema_version", "database",
            "user", "pool", "error")
    _table(f"health of {label}", (), [
        (k, json.dumps(report[k]) if isinstance(report[k], dict) else str(report[k]))
        for k in keys if k in report], show_header=False)


def _member_row(m: dict) -> tuple:
    lag_s = "-" if m["lag_s"] is None else f"{m['lag_s']:.3f}s"
    return (m["member"], m.get("host") or "-", m["role"] or "-", m["state"],
            "-" if m["timeline"] is None else str(m["timeline"]),
            "-" if m["lag_bytes"] is None else size(m["lag_bytes"]), lag_s, m["sync"] or "-",
            {True: "yes", False: "no", None: "-"}[m["pending_restart"]])


def cluster_status(st: dict) -> None:
    for c in st["clusters"]:
        _table(f"cluster {c['cluster']}: leader {c['leader'] or 'NONE'}, synchronous mode "
               f"{c['synchronous_mode']}",
               ("member", "host", "role", "state", "TL", "lag", "lag s", "sync", "pending restart"),
               [_member_row(m) for m in c["members"]])
        if c.get("endpoint"):
            _table("endpoint: HAProxy routes and PgBouncer pools on each member",
                   ("member", "rw to", "ro to", "clients", "waiting", "server conns",
                    "max wait"), [_endpoint_row(e) for e in c["endpoint"]])
        for attrs, url in c["urls"].items():
            console.print(f"  {attrs:<22} {url}")
    if st.get("etcd") is None:  # not asked for
        return
    if st["etcd"]:
        _table("etcd", ("endpoint", "healthy", "took", "error"),
               [(e["endpoint"], "yes" if e["healthy"] else "NO", e["took"] or "-", e["error"] or "-")
                for e in st["etcd"]])
    else:
        console.print("etcd: no member answered")


def _endpoint_row(e: dict) -> tuple:
    def up(route: str) -> str:
        if e["routes"] is None:
            return "HAProxy DOWN"
        return ", ".join(m for m, st in e["routes"].get(route, {}).items() if st == "UP") or "none"
    return (e["member"] + (" (proxy)" if e.get("proxy") else ""), up("rw"), up("ro"),
            *_pool_columns(e["pools"], "PgBouncer DOWN" if e["pooled"] else "no PgBouncer"))


def _pool_columns(pools: list[dict] | None, missing: str) -> tuple[str, str, str, str]:
    """Clients active, clients waiting, servers, the longest wait: one PgBouncer's pools summed."""
    if pools is None:
        return (missing, "-", "-", "-")
    total = {k: sum(p[k] for p in pools) for k in ("cl_active", "cl_waiting", "sv_active", "sv_idle")}
    return (str(total["cl_active"]), str(total["cl_waiting"]),
            f"{total['sv_active']} active, {total['sv_idle']} idle",
            f"{max((p['maxwait_s'] for p in pools), default=0):.1f}s")


def cluster_plan(plan) -> None:
    console.print(f"[bold]{plan.action}[/] of cluster {plan.cluster}:")
    for step in plan.steps:
        console.print(f"  - {step}")
    for r in plan.refusals:
        console.print(f"  [red]refused[/]: {r}")
    for n in plan.needs_yes:
        console.print(f"  [yellow]needs --yes[/]: {n}")
