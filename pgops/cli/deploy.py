"""`pgops deploy`, `pgops status` and `pgops up` (the main job on the lab)."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import click

from pgops import PROJECT_ROOT, metrics
from pgops.backup.rules import Thresholds
from pgops.cli import render
from pgops.cli.backup import first_backups
from pgops.cli.cluster import print_cluster_status
from pgops.cli.common import display, err, inventory_option, inventory_path
from pgops.cli.lab import backup_option, cluster_option, hosts_option, lab_up_and_secrets, proxy_option
from pgops.errors import PgopsError
from pgops.server.disk import MAX_WAL_DISK_USED


def _refuse_limit_in_cluster(limit: str, inv, settings: dict, where: str) -> None:
    """A cluster is deployed whole: its plan (who leads, who joins) reads every member, and
    etcd's membership every etcd member."""
    from pgops.settings.inventory import ETCD_GROUP

    cluster = getattr(settings.get(limit), "pg_ha_cluster", None)
    if cluster:
        raise PgopsError(f"--limit {limit}: it is a member of cluster {cluster} in {where}, "
                         "which is deployed whole (its plan reads every member); drop --limit")
    if any(h.name == limit and ETCD_GROUP in h.groups for h in inv):
        raise PgopsError(f"--limit {limit}: it is an etcd member in {where}, and etcd is "
                         "deployed whole; drop --limit")


def run_deploy(inventory: Path, limit: str | None, dry: bool) -> int:
    """Validate every host and check SSH before pyinfra runs deploy.py; pyinfra's exit code."""
    # pyinfra only where it runs: the dev image's pgops (no pyinfra) loads this module too.
    from pgops.remote import check_reachable
    from pgops.settings.inventory import INVENTORY_NAME_ENV, load_inventory, validate_inventory

    inv = load_inventory(inventory)
    settings = validate_inventory(inv, display(inventory))
    if limit and limit not in {h.name for h in inv}:
        raise PgopsError(f"--limit {limit}: no such host in {display(inventory)}")
    if limit:
        _refuse_limit_in_cluster(limit, inv, settings, display(inventory))
    # A limited run still reads its backup repository host (SSH trust spans both).
    wanted = {limit, getattr(settings.get(limit), "pg_backup_host", None)} if limit else None
    check_reachable([h for h in inv if wanted is None or h.name in wanted])
    args = [str(inventory.resolve()), "deploy.py"]
    args += ["--dry"] if dry else ["-y"]
    if limit:
        args += ["--limit", limit]
    t0 = time.monotonic()
    os.environ[INVENTORY_NAME_ENV] = display(inventory)
    rc = _pyinfra(args)
    err.print(f"deploy {'plan' if dry else 'run'} finished in {time.monotonic() - t0:.1f} s "
              f"(exit {rc})")
    cas = sorted({str(s.server_ca_file) for s in settings.values()})
    if rc == 0 and not dry and cas:
        err.print(f"clients verify the servers (sslmode=verify-full) with the CA {', '.join(cas)}"
                  "; copy it to your applications' hosts (sslrootcert)")
    return rc


def _pyinfra(args: list[str]) -> int:
    """pyinfra's command line, run in this process from the project directory (as a second
    interpreter it cost 0.4 s of every deploy, and imported pgops again); its exit code.
    Its own SIGINT handler is not installed: it exits 0 ("Exiting upon user request!"),
    which would read as a finished deploy."""
    import pyinfra
    from pyinfra.api.output import set_echo, set_formatter
    from pyinfra_cli.cli import cli

    logger = logging.getLogger("pyinfra")
    handlers, level = list(logger.handlers), logger.level
    pyinfra.is_cli = True
    set_formatter(click.style)
    set_echo(click.echo)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    cwd = os.getcwd()
    os.chdir(PROJECT_ROOT)  # deploy.py and config.py are found there
    try:
        cli.main(args=args, prog_name="pyinfra", standalone_mode=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:  # what runs next (`pgops up`'s status) connects quietly, as before
        os.chdir(cwd)
        pyinfra.is_cli = False
        logger.handlers[:], logger.level = handlers, level
    return 0


@click.command()
@inventory_option
@click.option("--limit", help="Only this host.")
@click.option("--dry", is_flag=True, help="Show the plan (what would change) and change nothing.")
def deploy(inventory: Path | None, limit: str | None, dry: bool) -> None:
    """Deploy Postgres + pgvector to the inventory's database hosts (default: the lab)."""
    sys.exit(run_deploy(inventory_path(inventory), limit, dry))


def print_status(inventory: Path, as_json: bool, thresholds=None, metrics_file: Path | None = None,
                 max_wal_disk_used: float = MAX_WAL_DISK_USED) -> int:
    """Print the status (table or JSON), write the metrics; 1 when down or alerting."""
    from pgops.status import server_status  # pyinfra: as in run_deploy

    rows = server_status(inventory, thresholds, max_wal_disk_used)
    if metrics_file:
        metrics.write(metrics_file, metrics.prometheus(rows))
    if as_json:
        render.print_json(rows)
    else:
        render.status(rows, display(inventory))
    healthy = (all(r["up"] for r in rows) and not any(r.get("alerts") for r in rows)
               and not any(r.get("backup", {}).get("alerts") for r in rows)
               and all(r["pooler"]["pools"] is not None for r in rows if "pooler" in r))
    return 0 if healthy else 1


_DEFAULT = Thresholds()


@click.command()
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--max-full-age", default=_DEFAULT.max_full_age_h, show_default=True,
              help="Hours before a full backup is overdue.")
@click.option("--max-backup-age", default=_DEFAULT.max_backup_age_h, show_default=True,
              help="Hours before any backup is overdue.")
@click.option("--max-rpo", default=_DEFAULT.max_rpo_s, show_default=True,
              help="Seconds since the last archived WAL.")
@click.option("--max-wal-disk-used", default=MAX_WAL_DISK_USED, show_default=True,
              type=click.FloatRange(1, 100), help="Percent of pg_wal's filesystem in use.")
@click.option("--metrics-file", type=click.Path(path_type=Path),
              help="Also write Prometheus textfile metrics here.")
def status(inventory, as_json, max_full_age, max_backup_age, max_rpo, max_wal_disk_used,
           metrics_file) -> None:
    """Per host: versions, databases, roles, TLS, pg_wal and its disk; PgBouncer's pools;
    backups, WAL archiving, RPO, last drill. Exits 1 when a server or PgBouncer is down, or
    a disk or backup threshold is passed (for cron alerts)."""
    thresholds = Thresholds(max_full_age, max_backup_age, max_rpo)
    sys.exit(print_status(inventory_path(inventory), as_json, thresholds, metrics_file, max_wal_disk_used))


@click.command()
@hosts_option
@backup_option
@cluster_option
@proxy_option
def up(hosts: int | None, backup: bool, cluster: bool, proxy: bool) -> None:
    """The main job on the lab: boot it, deploy to it, show its status (with --cluster, a
    Patroni cluster's too; with --proxy, its endpoint on a proxy host)."""
    lab_up_and_secrets(hosts, backup, cluster, proxy)
    inventory = inventory_path(None)
    rc = run_deploy(inventory, None, False)
    if rc:
        sys.exit(rc)
    first_backups(inventory)
    rc = print_status(inventory, False)
    if cluster:
        rc = max(rc, print_cluster_status(inventory, False))
    sys.exit(rc)
