"""`pgops migrate ...` and `pgops seed`: the application schema on a target database."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from pgops.cli import render
from pgops.cli.common import err, say, target, target_options
from pgops.schema import LOCK_WAIT_S


def _migrator(t, directory: Path | None, lock_wait: float = LOCK_WAIT_S):
    from pgops.schema.migrate import MIGRATIONS_DIR, Migrator, Options  # psycopg: commands that connect

    return Migrator(t.url, directory or MIGRATIONS_DIR, options=Options(lock_wait=lock_wait),
                    say=say("migrate"))


@click.group(invoke_without_command=True)
@target_options("migrator")
@click.option("--dir", "directory", type=click.Path(path_type=Path), envvar="PGOPS_MIGRATIONS_DIR",
              help="The migrations directory  [default: sql/migrations/; env PGOPS_MIGRATIONS_DIR]")
@click.option("--plan", is_flag=True, help="Print what would run; change nothing.")
@click.option("--to", "to", type=int, help="Stop after this version.")
@click.option("--lock-wait", default=LOCK_WAIT_S, show_default=True, help="Seconds to wait for another run.")
@click.pass_context
def migrate(ctx, dsn, inventory, host_name, user, directory, plan, to, lock_wait) -> None:
    """Apply pending SQL migrations (default: sql/migrations/) to the target (default: the lab)."""
    ctx.obj = (dsn, inventory, host_name, user, directory)
    if ctx.invoked_subcommand:
        return
    t = target(dsn, inventory, host_name, user)
    m = _migrator(t, directory, lock_wait)
    if plan:
        pending = m.plan(to)
        err.print(f"plan for {t.label}: {len(pending)} migration(s) would run")
        for mig in pending:
            click.echo(f"  {mig.filename}{'' if mig.transactional else '  (no transaction)'}")
        return
    t0 = time.monotonic()
    done = m.up(to)
    for d in done:
        click.echo(f"applied {d['version']:04d}_{d['name']} in {d['duration_ms']} ms")
    err.print(f"{t.label}: {len(done)} applied, schema at version "
              f"{m.status()['current']} ({time.monotonic() - t0:.1f} s)")


@migrate.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def migrate_status(obj, as_json: bool) -> None:
    """Applied and pending migrations with checksums; exit 1 on drift."""
    t = target(*obj[:4])
    st = _migrator(t, obj[4]).status()
    if as_json:
        render.print_json({"target": t.label, **st})
    else:
        render.migrations(st, t.label)
        for p in st["problems"]:
            err.print(f"[red]problem[/]: {p}")
    sys.exit(1 if st["problems"] else 0)


@migrate.command("down")
@click.option("--to", "to", type=int, required=True, help="Version to roll back to (0: empty).")
@click.option("--plan", is_flag=True, help="Print what would be rolled back; change nothing.")
@click.pass_obj
def migrate_down(obj, to: int, plan: bool) -> None:
    """Roll back applied migrations above --to with their down parts."""
    m = _migrator(target(*obj[:4]), obj[4])
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
    t = target(*obj[:4])
    marked = _migrator(t, obj[4]).baseline(version)
    click.echo(f"marked {len(marked)} migration(s) as applied on {t.label}")


@click.command()
@target_options("migrator")
@click.option("--tenants", default=3, show_default=True, type=click.IntRange(1, 10000))
@click.option("--kb-per-tenant", default=50, show_default=True, type=click.IntRange(0, 1000000))
def seed(dsn, inventory, host_name, user, tenants: int, kb_per_tenant: int) -> None:
    """Load deterministic sample data (idempotent): clients, users, widgets, conversations,
    messages and knowledge-base rows with locally computed embeddings."""
    import psycopg

    from pgops.schema.seed import seed as run_seed

    t = target(dsn, inventory, host_name, user)
    t0 = time.monotonic()
    with psycopg.connect(t.url, connect_timeout=10) as conn:
        counts = run_seed(conn, tenants, kb_per_tenant, say=say("seed"))
    total = sum(counts.values())
    click.echo(json.dumps({"target": t.label, "inserted": counts, "total": total}))
    err.print(f"seed: {total} rows inserted in {time.monotonic() - t0:.1f} s")
