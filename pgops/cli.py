"""The `pgops` command: parses arguments, then calls one module per verb."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # pyinfra runs on gevent: patch before anything imports ssl

import json  # noqa: E402
import os
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pgops import PROJECT_ROOT
from pgops.errors import PgopsError

# Tables stay readable when piped or captured (no 80-column wrap off a terminal).
_width = None if sys.stdout.isatty() else 160
console = Console(stderr=False, width=_width)
err = Console(stderr=True, width=_width, soft_wrap=True)


def _display(path: Path) -> str:
    """A path as a user would type it: relative inside the project, absolute outside."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)

inventory_option = click.option(
    "-i", "--inventory", type=click.Path(path_type=Path), default=None,
    help="pyinfra inventory file (default: inventory/lab.py, or PGOPS_INVENTORY).",
)


def _inventory(path: Path | None) -> Path:
    from pgops.inventory import default_inventory

    return (path or default_inventory()).resolve()


@click.group()
@click.version_option(package_name="pgops")
def main() -> None:
    """Production Postgres + pgvector on Debian hosts: deploy, migrate, back up, restore."""


# -- lab ------------------------------------------------------------------------------------
@main.group()
def lab() -> None:
    """The disposable lab: Debian 13 hosts in Docker, reached over SSH (PGOPS_LAB names it)."""


def _lab_up(hosts: int, backup: bool = True) -> None:
    from pgops.config import secret_names
    from pgops.inventory import load_inventory
    from pgops.lab import Lab

    t0 = time.monotonic()
    the_lab = Lab()
    the_lab.up(db_hosts=hosts, extra=("backup1",) if backup else (),
               say=lambda m: err.print(f"[cyan]lab[/]: {m}"))
    # Generate the passwords the lab inventory's roles need (once; kept across runs).
    names: set[str] = set()
    for h in load_inventory(PROJECT_ROOT / "inventory" / "lab.py"):
        names.update(secret_names(h.data.dict()))
    the_lab.ensure_secrets(sorted(names))
    err.print(f"[cyan]lab[/]: {the_lab.name} up in {time.monotonic() - t0:.1f} s")


backup_option = click.option("--backup/--no-backup", default=True, show_default=True,
                             help="Also boot backup1, the pgBackRest repository host.")


@lab.command("up")
@click.option("--hosts", default=2, show_default=True, type=click.IntRange(1, 9),
              help="Number of database hosts.")
@backup_option
def lab_up(hosts: int, backup: bool) -> None:
    """Start the engine if needed, build the image once, boot the hosts."""
    _lab_up(hosts, backup)
    _print_lab_status(as_json=False)


def _print_lab_status(as_json: bool) -> None:
    from pgops.lab import Lab

    st = Lab().status()
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    t = Table(title=f"lab {st['lab']} (engine {st['engine']}, network {st['network']}, "
                    f"{st['firewall_rules']} firewall rules)")
    for col in ("name", "address", "state", "ssh_user", "ssh_key"):
        t.add_column(col)
    for h in st["hosts"]:
        t.add_row(h["name"], h["address"] or "-", h["state"], h["ssh_user"], h["ssh_key"])
    console.print(t)


@lab.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lab_status(as_json: bool) -> None:
    """Hosts of the lab: name, address, ssh_user, ssh_key."""
    _print_lab_status(as_json)


@lab.command("down")
def lab_down() -> None:
    """Remove the hosts, their network and firewall rules (and the engine if pgops started it)."""
    from pgops.lab import Lab

    Lab().down(say=lambda m: err.print(f"[cyan]lab[/]: {m}"))


# -- deploy ---------------------------------------------------------------------------------
def _deploy(inventory: Path, limit: str | None, dry: bool) -> int:
    from pgops.inventory import load_inventory, validate_inventory
    from pgops.status import check_reachable

    inv = load_inventory(inventory)
    settings = validate_inventory(inv, _display(inventory))
    if limit and limit not in {h.name for h in inv}:
        raise PgopsError(f"--limit {limit}: no such host in {_display(inventory)}")
    # A limited run still reads its backup repository host (SSH trust spans both).
    wanted = {limit, getattr(settings.get(limit), "pg_backup_host", None)} if limit else None
    check_reachable([h for h in inv if wanted is None or h.name in wanted])
    pyinfra = Path(sys.executable).parent / "pyinfra"
    cmd = [str(pyinfra), str(inventory), "deploy.py"]
    cmd += ["--dry"] if dry else ["-y"]
    if limit:
        cmd += ["--limit", limit]
    t0 = time.monotonic()
    rc = subprocess.run(cmd, cwd=PROJECT_ROOT).returncode
    err.print(f"deploy {'plan' if dry else 'run'} finished in {time.monotonic() - t0:.1f} s "
              f"(exit {rc})")
    return rc


@main.command()
@inventory_option
@click.option("--limit", help="Only this host.")
@click.option("--dry", is_flag=True, help="Show the plan (what would change) and change nothing.")
def deploy(inventory: Path | None, limit: str | None, dry: bool) -> None:
    """Deploy Postgres + pgvector to the inventory's database hosts (default: the lab)."""
    sys.exit(_deploy(_inventory(inventory), limit, dry))


# -- status ---------------------------------------------------------------------------------
def _age(seconds) -> str:
    if seconds is None:
        return "never"
    seconds = float(seconds)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= n:
            return f"{seconds / n:.1f}{unit}"
    return f"{seconds:.0f}s"


def _print_status(inventory: Path, as_json: bool, thresholds: dict | None = None,
                  metrics_file: Path | None = None) -> int:
    from pgops.backup import prometheus
    from pgops.status import server_status

    rows = server_status(inventory, thresholds)
    if metrics_file:
        tmp = metrics_file.with_suffix(".tmp")
        tmp.write_text(prometheus(rows))
        tmp.replace(metrics_file)  # atomic for the textfile collector
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        t = Table(title=f"pgops status ({_display(inventory)})")
        for col in ("host", "address", "postgres", "pgvector", "databases", "roles", "tls",
                    "checksums"):
            t.add_column(col)
        onoff = {True: "on", False: "off", None: "-"}
        for r in rows:
            t.add_row(r["host"], r["address"], r.get("postgres") or "down",
                      r.get("pgvector") or "-", ", ".join(r.get("databases", [])),
                      ", ".join(r.get("roles", [])), "on" if r.get("tls") else "off",
                      onoff[r.get("checksums")])
        console.print(t)
        backed = [r for r in rows if "backup" in r]
        if backed:
            b = Table(title="backups")
            for col in ("host", "full", "diff", "incr", "last WAL archived", "archive failures",
                        "repository", "last drill", "alerts"):
                b.add_column(col)
            for r in backed:
                x = r["backup"]
                ages = x.get("backup_age_s") or {}
                drill = x.get("last_drill") or {}
                drilled = f"{'ok' if drill.get('ok') else 'FAILED'} {drill.get('rto_s')} s" if drill else "-"
                b.add_row(r["host"], _age(ages.get("full")), _age(ages.get("diff")), _age(ages.get("incr")),
                          _age(x.get("last_archived_age_s")), str(x.get("archiver_failed_count", "-")),
                          _size(x.get("repo_size_bytes", 0)),
                          drilled,
                          "; ".join(x.get("alerts", [])) or "none")
            console.print(b)
    healthy = all(r["up"] for r in rows) and not any(r.get("backup", {}).get("alerts") for r in rows)
    return 0 if healthy else 1


@main.command()
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--max-full-age", default=8 * 24.0, show_default=True,
              help="Hours before a full backup is overdue.")
@click.option("--max-backup-age", default=26.0, show_default=True, help="Hours before any backup is overdue.")
@click.option("--max-rpo", default=600.0, show_default=True, help="Seconds since the last archived WAL.")
@click.option("--metrics-file", type=click.Path(path_type=Path),
              help="Also write Prometheus textfile metrics here.")
def status(inventory, as_json, max_full_age, max_backup_age, max_rpo, metrics_file) -> None:
    """Per host: versions, databases, roles, TLS; backups, WAL archiving, RPO, last drill.
    Exits 1 when a server is down or a backup threshold is passed (for cron alerts)."""
    thresholds = {"max_full_age_h": max_full_age, "max_backup_age_h": max_backup_age,
                  "max_rpo_s": max_rpo}
    sys.exit(_print_status(_inventory(inventory), as_json, thresholds, metrics_file))


@main.command()
@click.option("--hosts", default=2, show_default=True, type=click.IntRange(1, 9))
@backup_option
def up(hosts: int, backup: bool) -> None:
    """The main job on the lab: boot it, deploy to it, show its status."""
    _lab_up(hosts, backup)
    inventory = _inventory(None)
    rc = _deploy(inventory, None, False)
    if rc:
        sys.exit(rc)
    _first_backups(inventory)
    sys.exit(_print_status(inventory, False))


def _first_backups(inventory: Path) -> None:
    """A freshly deployed lab gets its first full backup, so its status starts healthy."""
    from pgops import backup as b

    try:
        p = b.plan(inventory)
    except b.BackupError:
        return  # no host has backups configured
    for db in p.stanzas:
        if not b.info(p, db)["backups"]:
            with err.status(f"first full backup of {db} ..."):
                r = b.take(p, db, "full")
            err.print(f"{db}: first full backup {r['label']} in {r['seconds']:.1f} s")


# -- backups --------------------------------------------------------------------------------
def _when(epoch) -> str:
    import datetime as dt

    if epoch is None:
        return "-"
    return dt.datetime.fromtimestamp(float(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _changed(r: dict) -> str:
    """A full backup copies all the data; a diff or incr only what changed since its base."""
    if r["type"] == "full":
        return f"{_size(r['size'])} of data"
    return f"{_size(r['delta'])} changed of {_size(r['size'])}"


@main.group(invoke_without_command=True)
@inventory_option
@click.option("--type", "kind", type=click.Choice(["full", "diff", "incr"]), default="full",
              show_default=True)
@click.option("--host", "host_name", help="Only this database host (default: every one with backups).")
@click.pass_context
def backup(ctx, inventory, kind, host_name) -> None:
    """Take a pgBackRest backup on the repository host (default: the lab)."""
    ctx.obj = (inventory, host_name)
    if ctx.invoked_subcommand:
        return
    from pgops import backup as b

    p = b.plan(_inventory(inventory), host_name)
    for db in p.stanzas:
        with err.status(f"{kind} backup of {db} on {p.stanzas[db]} ..."):
            r = b.take(p, db, kind)
        click.echo(f"{db}: {r['type']} backup {r['label']} in {r['seconds']:.1f} s "
                   f"({_changed(r)}, {_size(r['repo_size'])} in the repository)")


@backup.command("list")
@inventory_option
@click.option("--host", "host_name", help="Only this database host.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def backup_list(obj, inventory, host_name, as_json: bool) -> None:
    """Every backup (type, start/stop, size, WAL range) and the recoverable window."""
    from pgops import backup as b

    inventory = inventory or obj[0]
    host_name = host_name or obj[1]
    p = b.plan(_inventory(inventory), host_name)
    stanzas = [b.info(p, db) for db in p.stanzas]
    if as_json:
        click.echo(json.dumps(stanzas, indent=2, default=str))
        return
    for st in stanzas:
        w = st["window"]
        t = Table(title=f"{st['host']} -> {st['repository']} (stanza {st['stanza']}, {st['status']}); "
                        f"recoverable {_when(w['earliest'])} .. {_when(w['latest'])}")
        for col in ("label", "type", "start", "stop", "size", "repo", "wal"):
            t.add_column(col)
        for x in st["backups"]:
            t.add_row(x["label"], x["type"], _when(x["start"]), _when(x["stop"]), _size(x["size"]),
                      _size(x["repo_size"]), f"{x['wal_start']} .. {x['wal_stop']}")
        console.print(t)


@main.command()
@inventory_option
@click.option("--to", "to", required=True,
              help="Target time: ISO 8601 (UTC if no offset), epoch, or `latest` (all archived WAL).")
@click.option("--host", "host_name", help="Database host whose backups to restore (default: the first).")
@click.option("--onto", help="Restore beside, on this other database host (same repository).")
@click.option("--in-place", is_flag=True, help="Restore over the live cluster (needs --yes).")
@click.option("--yes", is_flag=True, help="Confirm a destructive step (--in-place).")
@click.option("--plan", "plan_only", is_flag=True, help="Print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def restore(inventory, to, host_name, onto, in_place, yes, plan_only, as_json) -> None:
    """Point-in-time restore: beside the live cluster by default, promoted and verified."""
    from pgops import backup as b
    from pgops import restore as r

    # The source may be down (that may be why you restore): only repository and target must answer.
    p = b.plan(_inventory(inventory), host_name, require_all=False)
    db = host_name or next(iter(p.stanzas))
    rp = r.plan(p, db, to, onto, in_place)
    upto = f"{rp.upto} (about {r.iso(rp.target_time)})" if rp.to_end else rp.upto
    if not p.db(db).connected:
        err.print(f"[yellow]{db} is unreachable[/]: the window ends at the newest WAL in the repository")
    err.print(f"[bold]restore plan[/] for {db} to {upto} "
              f"(window {r.iso(rp.window['earliest'])} .. {r.iso(rp.window['latest'])}):")
    err.print(f"  backup {rp.backup['label']} ({rp.backup['type']}, {_size(rp.backup['size'])}), "
              f"WAL from {rp.backup['wal_start']} up to the target; expected about {rp.estimate_s:.0f} s")
    for i, step in enumerate(rp.steps, 1):
        err.print(f"  {i}. {step}")
    if plan_only:
        if as_json:
            click.echo(json.dumps(rp.as_dict(), indent=2, default=str))
        return
    if in_place and not yes:
        raise PgopsError(f"--in-place replaces the live data of {db} with its state at "
                         f"{r.iso(rp.target_time)}: add --yes to do it (nothing was changed)")
    with err.status("restoring ..."):
        result = r.execute(p, rp, say=lambda m: err.print(f"[cyan]restore[/]: {m}"))
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
    else:
        v = result["verify"]
        click.echo(f"restored {db} to {result['target_time']} on {result['address']}:{result['port']} "
                   f"in {result['seconds']:.1f} s; schema version {v.get('schema_version')}, "
                   f"{sum(v.get('row_counts', {}).values())} rows in {len(v.get('row_counts', {}))} tables")
        if "switch_over" in result:
            click.echo(result["switch_over"])


@main.command()
@inventory_option
@click.option("--host", "host_name", help="Database host to drill (default: every one with backups).")
@click.option("--point", type=click.Choice(["latest", "random"]), default="latest", show_default=True,
              help="Restore the latest recoverable time or a random one in the window.")
@click.option("--json", "as_json", is_flag=True)
def drill(inventory, host_name, point, as_json) -> None:
    """Restore drill: restore beside, pg_amcheck, verify, record the RTO, clean up."""
    from pgops import backup as b
    from pgops import drill as d

    p = b.plan(_inventory(inventory), host_name)
    results = []
    for db in p.stanzas:
        with err.status(f"drill of {db} ({point}) ..."):
            results.append(d.drill(p, db, point, say=lambda m: err.print(f"[cyan]drill[/]: {m}")))
    if as_json:
        click.echo(json.dumps(results, indent=2, default=str))
    else:
        for r in results:
            verdict = "ok" if r["ok"] else f"FAILED: {r.get('error') or r.get('amcheck')}"
            click.echo(f"{r['host']}: drill to {r['target_time']} {verdict}; RTO {r.get('rto_s', '-')} s; "
                       f"{sum((r.get('verify') or {}).get('row_counts', {}).values())} rows checked")
    sys.exit(0 if all(r["ok"] for r in results) else 1)


def _dump_target(dsn, inventory, host_name):
    """A DSN target for dump/load (-d, else DATABASE_URL or PG* unless -i/--host is given),
    or None: the inventory's database host."""
    from pgops.targets import dsn_target

    return dsn_target(dsn) if dsn or not (inventory or host_name) else None


dsn_option = click.option("-d", "--dsn", help="libpq connection string or URL: pg_dump/pg_restore "
                          "run here (default: DATABASE_URL or PG*, else the inventory host).")


@main.command()
@inventory_option
@dsn_option
@click.option("--host", "host_name", help="Database host (default: the first).")
@click.option("--database", help="Database to dump (default: pg_app_database).")
@click.option("--keep", default=7, show_default=True, type=click.IntRange(1, 10000),
              help="Dumps of this host and database to keep in backups/.")
def dump(inventory, dsn, host_name, database, keep) -> None:
    """Logical backup (pg_dump -Fc) of one database into backups/, with retention."""
    from pgops import dump as d

    target = _dump_target(dsn, inventory, host_name)
    with err.status("pg_dump ..."):
        if target:
            from pgops import dump_dsn

            r = dump_dsn.dump(target, database, keep)
        else:
            r = d.dump(_inventory(inventory), host_name, database, keep)
    click.echo(f"{r['file']} ({_size(r['bytes'])}, {r['seconds']:.1f} s)"
               + (f"; removed {len(r['pruned'])} older" if r["pruned"] else ""))


@main.command()
@inventory_option
@dsn_option
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--host", "host_name", help="Database host (default: the first).")
@click.option("--into", help="New database to create and load into (default: <db>_<timestamp>).")
def load(inventory, dsn, file, host_name, into) -> None:
    """Load a dump from `pgops dump` into a new database (never over an existing one)."""
    from pgops import dump as d

    target = _dump_target(dsn, inventory, host_name)
    with err.status(f"loading {file} ..."):
        if target:
            from pgops import dump_dsn

            r = dump_dsn.load(target, file, into)
        else:
            r = d.load(_inventory(inventory), file, host_name, into)
    click.echo(f"loaded {r['file']} into {r['database']} on {r['host']} in {r['seconds']:.1f} s")


@main.group("schedule")
def schedule_group() -> None:
    """Scheduled jobs: backups, drills and status checks."""


@schedule_group.command("run")
@inventory_option
@click.option("--full", default="7d", show_default=True, help="Full backup interval.")
@click.option("--diff", default="1d", show_default=True, help="Differential backup interval.")
@click.option("--incr", default="1h", show_default=True, help="Incremental backup interval.")
@click.option("--drill", "drill_every", default="1d", show_default=True, help="Restore drill interval.")
@click.option("--status", "status_every", default="1m", show_default=True, help="Status check interval.")
@click.option("--dump", "dump_every", default="1d", show_default=True,
              help="Logical dump interval (job `dump`: -d, DATABASE_URL or PG*, else the inventory).")
@click.option("--keep", default=7, show_default=True, type=click.IntRange(1, 10000),
              help="Dumps to keep in backups/ (job `dump`).")
@dsn_option
@click.option("--jobs", default="full,diff,incr,drill,status", show_default=True,
              help="Comma-separated jobs to schedule (also: dump).")
@click.option("--once", type=click.Choice(["full", "diff", "incr", "drill", "status", "dump"]),
              help="Run this one job now and exit with its result (cron-style).")
@click.option("--for", "for_s", type=float, help="Stop after this many seconds (default: run forever).")
def schedule_run(inventory, full, diff, incr, drill_every, status_every, dump_every, keep, dsn, jobs,
                 once, for_s) -> None:
    """Run the jobs in the foreground (for systemd or a container); one JSON line per run.
    Jobs never overlap; failures are retried with backoff and reported; the runner keeps going."""
    from pgops import schedule as sch

    intervals = {"full": full, "diff": diff, "incr": incr, "drill": drill_every, "status": status_every,
                 "dump": dump_every}
    names = (once,) if once else tuple(j.strip() for j in jobs.split(",") if j.strip())
    target = _dump_target(dsn, inventory, None) if "dump" in names else None
    # No inventory (nor pyinfra) for DSN dumps alone: the dev image runs just that.
    inv = None if target and set(names) <= {"dump"} else _inventory(inventory)
    job_list = sch.pgops_jobs(inv, intervals, names, keep, target)
    runner = sch.Runner(job_list)
    if once:
        sys.exit(0 if runner.run_job(job_list[0])["ok"] else 1)
    runner.run(until=time.monotonic() + for_s if for_s else None)


# -- migrations -----------------------------------------------------------------------------
def target_options(default_user: str):
    """-d DSN, or an inventory host (default: the lab's first database host)."""

    def wrap(f):
        f = click.option("-U", "--user", default=default_user, show_default=True,
                         help="Role to connect as (inventory targets).")(f)
        f = click.option("--host", "host_name", help="Inventory host (default: the first database host).")(f)
        f = inventory_option(f)
        f = click.option("-d", "--dsn", envvar=None,
                         help="libpq connection string or URL (else DATABASE_URL, PG*, the inventory).")(f)
        return f

    return wrap


def _target(dsn, inventory, host_name, user):
    from pgops.targets import resolve

    return resolve(dsn, inventory, host_name, user)


def _migrator(target, lock_wait: float = 30.0):
    from pgops.migrate import Migrator, Options

    return Migrator(target.url, options=Options(lock_wait=lock_wait),
                    say=lambda m: err.print(f"[cyan]migrate[/]: {m}"))


@main.group(invoke_without_command=True)
@target_options("migrator")
@click.option("--plan", is_flag=True, help="Print what would run; change nothing.")
@click.option("--to", "to", type=int, help="Stop after this version.")
@click.option("--lock-wait", default=30.0, show_default=True, help="Seconds to wait for another run.")
@click.pass_context
def migrate(ctx, dsn, inventory, host_name, user, plan, to, lock_wait) -> None:
    """Apply pending SQL migrations from sql/migrations/ (default target: the lab)."""
    ctx.obj = (dsn, inventory, host_name, user)
    if ctx.invoked_subcommand:
        return
    target = _target(dsn, inventory, host_name, user)
    m = _migrator(target, lock_wait)
    if plan:
        pending = m.plan(to)
        err.print(f"plan for {target.label}: {len(pending)} migration(s) would run")
        for mig in pending:
            click.echo(f"  {mig.filename}{'' if mig.transactional else '  (no transaction)'}")
        return
    t0 = time.monotonic()
    done = m.up(to)
    for d in done:
        click.echo(f"applied {d['version']:04d}_{d['name']} in {d['duration_ms']} ms")
    err.print(f"{target.label}: {len(done)} applied, schema at version "
              f"{m.status()['current']} ({time.monotonic() - t0:.1f} s)")


@migrate.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def migrate_status(obj, as_json: bool) -> None:
    """Applied and pending migrations with checksums; exit 1 on drift."""
    target = _target(*obj)
    st = _migrator(target).status()
    if as_json:
        click.echo(json.dumps({"target": target.label, **st}, indent=2, default=str))
    else:
        t = Table(title=f"migrations on {target.label}: at {st['current']}, latest {st['latest']}")
        for col in ("version", "name", "state", "sha256", "applied_at", "applied_by"):
            t.add_column(col)
        for r in st["migrations"]:
            t.add_row(f"{r['version']:04d}", r["name"], r["state"], (r["sha256"] or "")[:12],
                      r["applied_at"] or "-", r["applied_by"] or "-")
        console.print(t)
        for p in st["problems"]:
            err.print(f"[red]problem[/]: {p}")
    sys.exit(1 if st["problems"] else 0)


@migrate.command("down")
@click.option("--to", "to", type=int, required=True, help="Version to roll back to (0: empty).")
@click.option("--plan", is_flag=True, help="Print what would be rolled back; change nothing.")
@click.pass_obj
def migrate_down(obj, to: int, plan: bool) -> None:
    """Roll back applied migrations above --to with their down parts."""
    target = _target(*obj)
    m = _migrator(target)
    if plan:
        st = m.status()
        for r in reversed(st["migrations"]):
            if r["state"] == "applied" and r["version"] > to:
                click.echo(f"  would roll back {r['version']:04d}_{r['name']}")
        return
    for d in m.down(to):
        click.echo(f"rolled back {d['version']:04d}_{d['name']} in {d['duration_ms']} ms")


@migrate.command("baseline")
@click.argument("version", type=int)
@click.pass_obj
def migrate_baseline(obj, version: int) -> None:
    """Mark an existing database as at VERSION without running anything."""
    target = _target(*obj)
    marked = _migrator(target).baseline(version)
    click.echo(f"marked {len(marked)} migration(s) as applied on {target.label}")


@main.command()
@target_options("migrator")
@click.option("--tenants", default=3, show_default=True, type=click.IntRange(1, 10000))
@click.option("--kb-per-tenant", default=50, show_default=True, type=click.IntRange(0, 1000000))
def seed(dsn, inventory, host_name, user, tenants: int, kb_per_tenant: int) -> None:
    """Load deterministic sample data (idempotent): clients, users, widgets, conversations,
    messages and knowledge-base rows with locally computed embeddings."""
    import psycopg

    from pgops.seed import seed as run_seed

    target = _target(dsn, inventory, host_name, user)
    t0 = time.monotonic()
    with psycopg.connect(target.url, connect_timeout=10) as conn:
        counts = run_seed(conn, tenants, kb_per_tenant, say=lambda m: err.print(f"[cyan]seed[/]: {m}"))
    total = sum(counts.values())
    click.echo(json.dumps({"target": target.label, "inserted": counts, "total": total}))
    err.print(f"seed: {total} rows inserted in {time.monotonic() - t0:.1f} s")


@main.command()
@target_options("app")
@click.option("--json", "as_json", is_flag=True)
@click.option("--retries", default=1, show_default=True, type=click.IntRange(1, 20),
              help="Connection attempts (exponential backoff between them).")
@click.option("--serve", "serve_port", type=int, help="Serve GET /health/db on this port.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address for --serve.")
def health(dsn, inventory, host_name, user, as_json, retries, serve_port, bind) -> None:
    """Reachability, latency, versions, schema version, pool stats; exit 1 when unhealthy."""
    from pgops.health import check, serve

    target = _target(dsn, inventory, host_name, user)
    if serve_port:
        serve(target.url, serve_port, bind)
        return
    report = check(target.url, attempts=retries)
    report["target"] = target.label
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        t = Table(title=f"health of {target.label}", show_header=False)
        for k in ("healthy", "latency_ms", "server_version", "pgvector", "schema_version",
                  "database", "user", "pool", "error"):
            if k in report:
                t.add_row(k, json.dumps(report[k]) if isinstance(report[k], dict) else str(report[k]))
        console.print(t)
    sys.exit(0 if report["healthy"] else 1)


@main.command(context_settings={"ignore_unknown_options": True})
@target_options("app")
@click.argument("pgcli_args", nargs=-1, type=click.UNPROCESSED)
def shell(dsn, inventory, host_name, user, pgcli_args) -> None:
    """Open pgcli on the target (the password goes through the environment, not argv).
    Arguments after the options go to pgcli, e.g. `pgops shell -- -c "select 1"`."""
    target = _target(dsn, inventory, host_name, user)
    conninfo, password = target.without_password()
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    pgcli = str(Path(sys.executable).parent / "pgcli")
    os.execve(pgcli, [pgcli, *pgcli_args, conninfo], env)


def run() -> None:
    try:
        main(standalone_mode=False)
    except PgopsError as e:
        click.echo(f"pgops: {e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except Exception as e:  # a database error is the user's to read, not a traceback
        import psycopg

        if not isinstance(e, psycopg.Error):
            raise
        click.echo(f"pgops: database error: {str(e).strip()}", err=True)
        sys.exit(1)
