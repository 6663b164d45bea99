"""`pgops tenant ...`: one tenant's data, by client id or API key."""

from __future__ import annotations

import time
from pathlib import Path

import click

from pgops import PROJECT_ROOT
from pgops.cli import render
from pgops.cli.common import display, err, inventory_option, inventory_path, say
from pgops.errors import PgopsError


@click.group("tenant")
def tenant_group() -> None:
    """One tenant's data: restore it to a point in time without touching the others."""


@tenant_group.command("restore")
@inventory_option
@click.argument("client")
@click.option("--to", "to", required=True, help="Target time: ISO 8601 (UTC if no offset) or epoch.")
@click.option("--host", "host_name", help="Database host (default: the first; a cluster member "
              "stands for its cluster).")
@click.option("--plan", "plan_only", is_flag=True, help="Print the plan; change nothing.")
@click.option("--apply", is_flag=True, help="Put the tenant's rows at the target back (needs --yes).")
@click.option("--yes", is_flag=True, help="Confirm --apply.")
@click.option("--with-triggers", is_flag=True, help="Apply even though tenant tables have triggers "
              "(they fire on the re-inserted rows; refused without this).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (and every differing key) as JSON.")
def tenant_restore(inventory, client, to, host_name, plan_only, apply, yes, with_triggers, as_json) -> None:
    """Restore the database beside the live one to --to, compare CLIENT's rows then and now
    (table by table, by primary key) and, with --apply --yes, replace CLIENT's live rows with
    them in one transaction. Other tenants' rows are never touched."""
    from pgops.backup import repository
    from pgops.client.targets import inventory_target
    from pgops.tenant import restore as tr

    if to.strip().lower() == "latest":
        raise PgopsError("--to latest: a tenant restore needs a past time (its rows now are live)")
    if apply and not yes and not plan_only:
        raise PgopsError(f"--apply replaces tenant {client}'s live rows with their state at {to}: "
                         "add --yes to do it (nothing was changed)")
    path = inventory_path(inventory)
    backups = repository.connect(path, host_name)
    db = next(iter(backups.stanzas))
    s = backups.settings[db]
    # As the migration role, which owns the tables: never a superuser (for a cluster: its leader).
    live = inventory_target(path, None if s.pg_ha_cluster else db, s.pg_migration_role, None)
    tp = tr.plan(backups, db, client, to, live.url, live.label, apply, with_triggers)
    err.print(f"[bold]tenant restore plan[/] for {tp.client_id or client} on {live.label} to "
              f"{to} (backup {tp.restore.backup['label']}):")
    for i, step in enumerate(tp.steps, 1):
        err.print(f"  {i}. {step}")
    if plan_only:
        if as_json:
            render.print_json(tp.as_dict())
        return
    with err.status("restoring the tenant ..."):
        result = tr.execute(backups, tp, live.url, say=say("tenant"))
    if as_json:
        render.print_json(result)
        return
    render.tenant_diff(result)


def _database(url: str) -> str:
    import psycopg

    return str(psycopg.conninfo.conninfo_to_dict(url)["dbname"])


def _live(inventory, host_name):
    """(inventory path, every database host's settings, the database host, the live target as
    its migration role: a cluster's leader), without SSH."""
    from pgops.client.targets import inventory_target
    from pgops.settings.inventory import load_inventory, validate_inventory

    path = inventory_path(inventory)
    settings = validate_inventory(load_inventory(path), str(path))  # no SSH: reading settings
    if host_name and host_name not in settings:
        raise PgopsError(f"--host {host_name}: no database host {host_name!r} in {path}")
    db = host_name or next(iter(settings))
    s = settings[db]
    return path, settings, db, inventory_target(path, None if s.pg_ha_cluster else db,
                                                s.pg_migration_role, None)


@tenant_group.command("export")
@inventory_option
@click.argument("client")
@click.option("--to", "to", help="As of this time (restored beside, then removed); default: now.")
@click.option("--host", "host_name", help="Database host (default: the first).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="File to write (default: backups/tenant_<client id>_<time>.sql).")
def tenant_export(inventory, client, to, host_name, output) -> None:
    """Write one tenant's rows to a file (a psql script: `pgops tenant load`, or `psql -f`)."""
    import psycopg

    from pgops.backup import repository
    from pgops.backup.restore import iso
    from pgops.tenant import portable
    from pgops.tenant import restore as tr
    from pgops.tenant.model import TenantError

    path, _, db, live = _live(inventory, host_name)
    if to:
        backups = repository.connect(path, db)
        with err.status("restoring beside to read the tenant ..."):
            cid, when, version, parts, after = tr.rows_at(
                backups, next(iter(backups.stanzas)), client, to, _database(live.url), say=say("tenant"))
    else:
        with psycopg.connect(live.url, autocommit=True, connect_timeout=10) as conn:
            ten = portable.tenancy_of(conn)
            with conn.transaction():  # one snapshot: every table as of the same moment
                conn.execute("set transaction isolation level repeatable read, read only")
                found = tr.find_client(conn, ten, client)
                if found is None:
                    raise TenantError(f"no tenant {client!r} in {live.label}")
                cid, when, version = found, time.time(), portable.schema_version(conn)
                parts = portable.blocks(ten, cid, portable.live_copy(conn),
                                        lambda t: ten.tables[t].stored)
            after = portable.sequences(ten, parts)
    rows = {b.table: b.rows for b in parts}
    header = {"client_id": cid, "as_of": iso(when), "schema_version": version, "rows": rows}
    out = output or PROJECT_ROOT / "backups" / f"tenant_{cid}_{time.strftime('%Y%m%d%H%M%S')}.sql"
    out.parent.mkdir(parents=True, exist_ok=True)
    portable.write(out, portable.render(header, parts, after))
    click.echo(f"exported tenant {cid} as of {header['as_of']}: {sum(rows.values())} rows "
               f"in {len(parts)} tables to {display(out)} (mode 600)")


@tenant_group.command("load")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--into", "into", required=True, help="libpq URL or connection string of a database "
              "with the same schema and without this tenant; its password from PGPASSWORD or "
              "~/.pgpass (a command line is visible to every user of the machine).")
@click.option("--with-triggers", is_flag=True,
              help="Load even though triggers on the target's tenant tables fire on the rows.")
def tenant_load(file, into, with_triggers) -> None:
    """Load a `pgops tenant export` file into another database, in one transaction."""
    import psycopg

    from pgops.client.db import redact
    from pgops.tenant import portable

    try:
        given = psycopg.conninfo.conninfo_to_dict(into)
    except psycopg.ProgrammingError as e:
        raise PgopsError(f"--into: not a connection string or URL ({str(e).strip()})") from None
    if given.get("password"):
        err.print("[yellow]warning[/]: --into holds a password, which any user of this machine "
                  "can read in its process list while this runs: use PGPASSWORD or ~/.pgpass")

    r = portable.load(into, file, with_triggers)
    click.echo(f"loaded tenant {r['client_id']} into {redact(into)}: "
               + ", ".join(f"{t} {n}" for t, n in r["rows"].items()))
    for t in r["renumbered"]:
        click.echo(f"  {t}: new keys (the target held some of the exported ones; nothing "
                   "refers to them)")


@tenant_group.command("erase")
@inventory_option
@click.argument("client")
@click.option("--host", "host_name", help="Database host (default: the first).")
@click.option("--plan", "plan_only", is_flag=True, help="Print what would be deleted; change nothing.")
@click.option("--yes", is_flag=True, help="Confirm: every row of the tenant is deleted.")
def tenant_erase(inventory, client, host_name, plan_only, yes) -> None:
    """Delete every row of one tenant (one transaction), and say what stays in backups."""
    import psycopg

    from pgops.backup import backrest, repository
    from pgops.tenant import erase as e
    from pgops.tenant import portable
    from pgops.tenant import restore as tr
    from pgops.tenant.model import TenantError

    path, settings, db, live = _live(inventory, host_name)
    with psycopg.connect(live.url, autocommit=True, connect_timeout=10) as conn:
        ten = portable.tenancy_of(conn)
        cid = tr.find_client(conn, ten, client)
        if cid is None:
            raise TenantError(f"no tenant {client!r} in {live.label} (nothing was changed)")
        rows = e.counts(conn, ten, cid)
        err.print(f"[bold]erase plan[/] for tenant {cid} on {live.label}: delete "
                  + ", ".join(f"{t} {n}" for t, n in rows.items()) + " (children first, one transaction)")
        if plan_only:
            return
        if not yes:
            raise PgopsError(f"erase deletes every row of tenant {cid}: add --yes to do it "
                             "(nothing was changed)")
        deleted = e.erase(conn, ten, cid)
    click.echo(f"erased tenant {cid}: {sum(deleted.values())} rows deleted ("
               + ", ".join(f"{t} {n}" for t, n in deleted.items() if n) + ")")
    s = settings[db]
    if s.pg_backup_host:
        backups = repository.connect(path, db)
        st = repository.info(backups, next(iter(backups.stanzas)))
        keep = int(s.pgbackrest.get("repo1-retention-full", backrest.REPO_DEFAULTS["repo1-retention-full"]))
        click.echo(e.remaining_in_backups(st["backups"], keep))
    else:
        click.echo(f"{db} has no pg_backup_host: no pgBackRest backup holds the tenant's rows "
                   "(logical dumps in backups/ may)")
