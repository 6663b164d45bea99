"""`pgops health` and `pgops shell`: a database as its clients see it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pgops.cli import render
from pgops.cli.common import target, target_options


@click.command()
@target_options("app")
@click.option("--json", "as_json", is_flag=True)
@click.option("--retries", default=1, show_default=True, type=click.IntRange(1, 20),
              help="Connection attempts (exponential backoff between them).")
@click.option("--serve", "serve_port", type=int, help="Serve GET /health/db on this port.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address for --serve.")
def health(dsn, inventory, host_name, user, as_json, retries, serve_port, bind) -> None:
    """Reachability, latency, versions, schema version, pool stats; exit 1 when unhealthy."""
    from pgops.client.probe import check, serve

    t = target(dsn, inventory, host_name, user, pooled=True)
    if serve_port:
        serve(t.url, serve_port, bind)
        return
    report = check(t.url, attempts=retries)
    report["target"] = t.label
    if as_json:
        render.print_json(report)
    else:
        render.probe_report(report, t.label)
    sys.exit(0 if report["healthy"] else 1)


@click.command(context_settings={"ignore_unknown_options": True})
@target_options("app")
@click.argument("pgcli_args", nargs=-1, type=click.UNPROCESSED)
def shell(dsn, inventory, host_name, user, pgcli_args) -> None:
    """Open pgcli on the target (the password goes through the environment, not argv).
    Arguments after the options go to pgcli, e.g. `pgops shell -- -c "select 1"`."""
    t = target(dsn, inventory, host_name, user, pooled=True)
    conninfo, password = t.without_password()
    env = dict(os.environ)
    if password:
        env["PGPASSWORD"] = password
    pgcli = str(Path(sys.executable).parent / "pgcli")
    os.execve(pgcli, [pgcli, *pgcli_args, conninfo], env)
