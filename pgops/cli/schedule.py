"""`pgops schedule run`: backups, drills, status checks and dumps in the foreground."""

from __future__ import annotations

import sys
import time

import click

from pgops import schedule as sch
from pgops.backup.rules import JOBS
from pgops.cli.common import dsn_option, inventory_option, inventory_path
from pgops.cli.dumps import dump_target
from pgops.client.dump import KEEP
from pgops.schedule import JOB_NAMES


@click.group("schedule")
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
@click.option("--keep", default=KEEP, show_default=True, type=click.IntRange(1, 10000),
              help="Dumps to keep in backups/ (job `dump`).")
@dsn_option
@click.option("--jobs", default=",".join(JOBS), show_default=True,
              help="Comma-separated jobs to schedule (also: dump).")
@click.option("--once", type=click.Choice(JOB_NAMES),
              help="Run this one job now and exit with its result (cron-style).")
@click.option("--for", "for_s", type=float, help="Stop after this many seconds (default: run forever).")
def schedule_run(inventory, full, diff, incr, drill_every, status_every, dump_every, keep, dsn, jobs,
                 once, for_s) -> None:
    """Run the jobs in the foreground (for systemd or a container); one JSON line per run.
    Jobs never overlap; failures are retried with backoff and reported; the runner keeps going."""
    intervals = {"full": full, "diff": diff, "incr": incr, "drill": drill_every, "status": status_every,
                 "dump": dump_every}
    names = (once,) if once else tuple(j.strip() for j in jobs.split(",") if j.strip())
    target = dump_target(dsn, inventory, None) if "dump" in names else None
    # No inventory (nor pyinfra) for DSN dumps alone: the dev image runs just that.
    inv = None if target and set(names) <= {"dump"} else inventory_path(inventory)
    job_list = sch.pgops_jobs(inv, intervals, names, keep, target)
    runner = sch.Runner(job_list)
    if once:
        sys.exit(0 if runner.run_job(job_list[0])["ok"] else 1)
    runner.run(until=time.monotonic() + for_s if for_s else None)
