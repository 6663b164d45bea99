"""`pgops backup`, `backup list`, `restore` and `drill`: pgBackRest run where it belongs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pgops.backup.rules import BACKUP_TYPES
from pgops.cli import render
from pgops.cli.common import err, inventory_option, inventory_path, say
from pgops.errors import BackupError, PgopsError

# pgops.backup's repository, restore and drill load pyinfra: each command imports them itself,
# so that the dev image's pgops (no pyinfra) still starts.


def first_backups(inventory: Path) -> None:
    """A freshly deployed lab gets its first full backup, so its status starts healthy."""
    from pgops.backup import repository

    try:
        backups = repository.connect(inventory)
    except BackupError:
        return  # no host has backups configured
    for db in backups.stanzas:
        if not repository.info(backups, db)["backups"]:
            with err.status(f"first full backup of {backups.label(db)} ..."):
                r = repository.take(backups, db, "full")
            err.print(f"{backups.label(db)}: first full backup {r['label']} in {r['seconds']:.1f} s")


@click.group(invoke_without_command=True)
@inventory_option
@click.option("--type", "kind", type=click.Choice(BACKUP_TYPES), default="full", show_default=True)
@click.option("--host", "host_name", help="Only this database host (default: every one with backups).")
@click.pass_context
def backup(ctx, inventory, kind, host_name) -> None:
    """Take a pgBackRest backup on the repository host (default: the lab)."""
    ctx.obj = (inventory, host_name)
    if ctx.invoked_subcommand:
        return
    from pgops.backup import repository

    backups = repository.connect(inventory_path(inventory), host_name)
    for db in backups.stanzas:
        with err.status(f"{kind} backup of {backups.label(db)} on {backups.stanzas[db]} ..."):
            r = repository.take(backups, db, kind)
        click.echo(f"{backups.label(db)}: {r['type']} backup {r['label']} in {r['seconds']:.1f} s "
                   f"({render.changed(r)}, {render.size(r['repo_size'])} in the repository)")


@backup.command("list")
@inventory_option
@click.option("--host", "host_name", help="Only this database host.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def backup_list(obj, inventory, host_name, as_json: bool) -> None:
    """Every backup (type, start/stop, size, WAL range) and the recoverable window."""
    from pgops.backup import repository

    backups = repository.connect(inventory_path(inventory or obj[0]), host_name or obj[1])
    stanzas = [repository.info(backups, db) for db in backups.stanzas]
    if as_json:
        render.print_json(stanzas)
        return
    for st in stanzas:
        render.backup_list(st)


def _print_restore_plan(db: str, rp, unreachable: bool) -> None:
    from pgops.backup.restore import iso

    upto = f"{rp.upto} (about {iso(rp.target_time)})" if rp.to_end else rp.upto
    if unreachable:
        err.print(f"[yellow]{db} is unreachable[/]: the window ends at the newest WAL in the repository")
    err.print(f"[bold]restore plan[/] for {db} to {upto} "
              f"(window {iso(rp.window['earliest'])} .. {iso(rp.window['latest'])}):")
    err.print(f"  backup {rp.backup['label']} ({rp.backup['type']}, {render.size(rp.backup['size'])}), "
              f"WAL from {rp.backup['wal_start']} up to the target; expected about {rp.estimate_s:.0f} s")
    for i, step in enumerate(rp.steps, 1):
        err.print(f"  {i}. {step}")


@click.command()
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
    from pgops.backup import cluster_restore, repository
    from pgops.backup import restore as r

    # The source may be down (that may be why you restore): only repository and target must answer.
    backups = repository.connect(inventory_path(inventory), host_name, require_all=False)
    db = next(iter(backups.stanzas))  # --host: its stanza's (a cluster's first member)
    if onto is not None and onto not in backups.settings:
        raise PgopsError(f"--onto {onto}: no database host {onto!r} in {inventory_path(inventory)} "
                         f"(have: {', '.join(sorted(backups.settings))})")
    whole_cluster = in_place and bool(backups.settings[db].pg_ha_cluster)
    rp = (cluster_restore.plan(backups, db, to, onto) if whole_cluster
          else r.plan(backups, db, to, onto, in_place))
    _print_restore_plan(db, rp, unreachable=not backups.db(db).connected)
    if plan_only:
        if as_json:
            render.print_json(rp.as_dict())
        return
    if in_place and not yes:
        what = f"every member of {backups.label(db)}" if whole_cluster else db
        raise PgopsError(f"--in-place replaces the live data of {what} with its state at "
                         f"{r.iso(rp.target_time)}: add --yes to do it (nothing was changed)")
    with err.status("restoring ..."):
        run = cluster_restore.execute if whole_cluster else r.execute
        result = run(backups, rp, say=say("restore"))
    if as_json:
        render.print_json(result)
        return
    render.restore_result(db, result)


@click.command()
@inventory_option
@click.option("--host", "host_name", help="Database host to drill (default: every one with backups).")
@click.option("--point", type=click.Choice(["latest", "random"]), default="latest", show_default=True,
              help="Restore the latest recoverable time or a random one in the window.")
@click.option("--json", "as_json", is_flag=True)
def drill(inventory, host_name, point, as_json) -> None:
    """Restore drill: restore beside, pg_amcheck, verify, record the RTO, clean up."""
    from pgops.backup import drill as d
    from pgops.backup import repository

    backups = repository.connect(inventory_path(inventory), host_name)
    results = []
    for db in backups.stanzas:
        with err.status(f"drill of {db} ({point}) ..."):
            results.append(d.drill(backups, db, point, say=say("drill")))
    if as_json:
        render.print_json(results)
    else:
        render.drill_results(results)
    sys.exit(0 if all(r["ok"] for r in results) else 1)
