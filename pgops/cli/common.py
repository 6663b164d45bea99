"""What every command group shares: the consoles, the inventory and target options."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from pgops import PROJECT_ROOT

# Tables stay readable when piped or captured (no 80-column wrap off a terminal).
_width = None if sys.stdout.isatty() else 160
console = Console(stderr=False, width=_width)
err = Console(stderr=True, width=_width, soft_wrap=True)


def display(path: Path) -> str:
    """A path as a user would type it: relative inside the project, absolute outside."""
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


inventory_option = click.option(
    "-i", "--inventory", type=click.Path(path_type=Path), default=None,
    help="pyinfra inventory file (default: inventory/lab.py, or PGOPS_INVENTORY).",
)


def inventory_path(path: Path | None) -> Path:
    from pgops.settings.inventory import default_inventory  # pyinfra: not in the dev image

    return (path or default_inventory()).resolve()


def say(prefix: str):
    """A progress printer for long work: `prefix: message` on stderr."""
    return lambda m: err.print(f"[cyan]{prefix}[/]: {m}")


dsn_option = click.option("-d", "--dsn", help="libpq connection string or URL: pg_dump/pg_restore "
                          "run here (default: DATABASE_URL or PG*, else the inventory host).")


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


#: The target a command chose, for the error a failed connection ends with.
CHOSEN: list = []


def target(dsn, inventory, host_name, user, pooled: bool = False):
    """The command's target, said on stderr with where it came from (a .env left in the
    current directory must not aim a command elsewhere unseen)."""
    from pgops.client.targets import resolve

    t = resolve(dsn, inventory, host_name, user, pooled=pooled)
    CHOSEN.append(t)
    err.print(f"[cyan]target[/]: {t.label} [dim](from {t.source})[/]")
    return t


def chosen_hint() -> str:
    """What a database error should add: the target and where it came from."""
    if not CHOSEN:
        return ""
    t = CHOSEN[-1]
    return (f" (target: {t.label}, from {t.source}; choose another with -d, or -i/--host for "
            "an inventory)")
