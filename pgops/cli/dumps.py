"""`pgops dump` and `pgops load`: logical backups, of an inventory host or through a DSN."""

from __future__ import annotations

from pathlib import Path

import click

from pgops.cli import render
from pgops.cli.common import display, dsn_option, err, inventory_option, inventory_path
from pgops.client.dump import KEEP


def dump_target(dsn, inventory, host_name):
    """A DSN target for dump/load (-d, else DATABASE_URL or PG* unless -i/--host is given),
    or None: the inventory's database host."""
    from pgops.client.targets import dsn_target

    t = dsn_target(dsn) if dsn or not (inventory or host_name) else None
    if t:
        err.print(f"[cyan]target[/]: {t.label} [dim](from {t.source})[/]")
    else:
        err.print(f"[cyan]target[/]: {host_name or 'the first database host'} of "
                  f"{display(inventory_path(inventory))} [dim](no -d, DATABASE_URL or PG*)[/]")
    return t


@click.command()
@inventory_option
@dsn_option
@click.option("--host", "host_name", help="Database host (default: the first).")
@click.option("--database", help="Database to dump (default: pg_app_database).")
@click.option("--keep", default=KEEP, show_default=True, type=click.IntRange(1, 10000),
              help="Dumps of this host and database to keep in backups/.")
def dump(inventory, dsn, host_name, database, keep) -> None:
    """Logical backup (pg_dump -Fc) of one database into backups/, with retention."""
    from pgops.client import dump as d
    from pgops.client import dump_dsn

    target = dump_target(dsn, inventory, host_name)
    with err.status("pg_dump ..."):
        if target:
            r = dump_dsn.dump(target, database, keep)
        else:
            r = d.dump(inventory_path(inventory), host_name, database, keep)
    click.echo(f"{r['file']} ({render.size(r['bytes'])}, {r['seconds']:.1f} s)"
               + (f"; removed {len(r['pruned'])} older" if r["pruned"] else ""))


@click.command()
@inventory_option
@dsn_option
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--host", "host_name", help="Database host (default: the first).")
@click.option("--into", help="New database to create and load into (default: <db>_<timestamp>).")
def load(inventory, dsn, file, host_name, into) -> None:
    """Load a dump from `pgops dump` into a new database (never over an existing one)."""
    from pgops.client import dump as d
    from pgops.client import dump_dsn

    target = dump_target(dsn, inventory, host_name)
    with err.status(f"loading {file} ..."):
        if target:
            r = dump_dsn.load(target, file, into)
        else:
            r = d.load(inventory_path(inventory), file, host_name, into)
    click.echo(f"loaded {r['file']} into {r['database']} on {r['host']} in {r['seconds']:.1f} s")
