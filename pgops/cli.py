"""The `pgops` command: parses arguments, then calls one module per verb."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()  # pyinfra runs on gevent: patch before anything imports ssl

import json  # noqa: E402
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


def _lab_up(hosts: int) -> None:
    from pgops.config import secret_names
    from pgops.inventory import load_inventory
    from pgops.lab import Lab

    t0 = time.monotonic()
    the_lab = Lab()
    the_lab.up(db_hosts=hosts, say=lambda m: err.print(f"[cyan]lab[/]: {m}"))
    # Generate the passwords the lab inventory's roles need (once; kept across runs).
    names: set[str] = set()
    for h in load_inventory(PROJECT_ROOT / "inventory" / "lab.py"):
        names.update(secret_names(h.data.dict()))
    the_lab.ensure_secrets(sorted(names))
    err.print(f"[cyan]lab[/]: {the_lab.name} up in {time.monotonic() - t0:.1f} s")


@lab.command("up")
@click.option("--hosts", default=2, show_default=True, type=click.IntRange(1, 9),
              help="Number of database hosts.")
def lab_up(hosts: int) -> None:
    """Start the engine if needed, build the image once, boot the hosts."""
    _lab_up(hosts)
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
    validate_inventory(inv, _display(inventory))
    check_reachable([h for h in inv if not limit or h.name == limit])
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
def _print_status(inventory: Path, as_json: bool) -> int:
    from pgops.status import server_status

    rows = server_status(inventory)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        t = Table(title=f"pgops status ({_display(inventory)})")
        for col in ("host", "address", "postgres", "pgvector", "databases", "roles", "tls"):
            t.add_column(col)
        for r in rows:
            t.add_row(r["host"], r["address"], r.get("postgres") or "down",
                      r.get("pgvector") or "-", ", ".join(r.get("databases", [])),
                      ", ".join(r.get("roles", [])), "on" if r.get("tls") else "off")
        console.print(t)
    return 0 if all(r["up"] for r in rows) else 1


@main.command()
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(inventory: Path | None, as_json: bool) -> None:
    """Per host: address, Postgres and pgvector versions, databases, roles, TLS."""
    sys.exit(_print_status(_inventory(inventory), as_json))


@main.command()
@click.option("--hosts", default=2, show_default=True, type=click.IntRange(1, 9))
def up(hosts: int) -> None:
    """The main job on the lab: boot it, deploy to it, show its status."""
    _lab_up(hosts)
    inventory = _inventory(None)
    rc = _deploy(inventory, None, False)
    if rc:
        sys.exit(rc)
    sys.exit(_print_status(inventory, False))


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
