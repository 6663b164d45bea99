"""`pgops lab ...`: the disposable lab of Debian 13 hosts in Docker."""

from __future__ import annotations

import time

import click

from pgops import PROJECT_ROOT
from pgops.cli import render
from pgops.cli.common import err, say

# The lab (docker) and the inventory (pyinfra) are imported by the commands that use them:
# the dev image's pgops has neither.

backup_option = click.option("--backup/--no-backup", default=True, show_default=True,
                             help="Also boot backup1, the pgBackRest repository host.")
hosts_option = click.option("--hosts", default=None, type=click.IntRange(1, 9),
                            help="Number of database hosts  [default: 2; 3 with --cluster]")
cluster_option = click.option("--cluster", "cluster", is_flag=True,
                              help="The database hosts form a Patroni cluster `main` (they are "
                                   "its etcd members too).")
proxy_option = click.option("--proxy", "proxy", is_flag=True,
                            help="Also boot proxy1, a host of the proxy group that carries the "
                                 "cluster's read-write and read-only ports (with --cluster).")
#: The name `--cluster` gives the lab's Patroni cluster.
LAB_CLUSTER = "main"


@click.group()
def lab() -> None:
    """The disposable lab: Debian 13 hosts in Docker, reached over SSH (PGOPS_LAB names it)."""


def lab_up_and_secrets(hosts: int | None, backup: bool = True, cluster: bool = False,
                       proxy: bool = False) -> None:
    """Boot the lab, then generate the passwords its inventory's roles need (once; kept)."""
    if proxy and not cluster:
        raise click.UsageError("--proxy needs --cluster: a proxy host carries a cluster's endpoint")
    from pgops.lab import Lab
    from pgops.settings import secret_names
    from pgops.settings.inventory import load_inventory

    t0 = time.monotonic()
    the_lab = Lab()
    extra = (("backup1",) if backup else ()) + (("proxy1",) if proxy else ())
    the_lab.up(db_hosts=hosts or (3 if cluster else 2), extra=extra,
               say=say("lab"), cluster=LAB_CLUSTER if cluster else None)
    names: set[str] = set()
    for h in load_inventory(PROJECT_ROOT / "inventory" / "lab.py"):
        names.update(secret_names(h.data.dict()))
    the_lab.ensure_secrets(sorted(names))
    err.print(f"[cyan]lab[/]: {the_lab.name} up in {time.monotonic() - t0:.1f} s")


def _print_lab_status(as_json: bool) -> None:
    from pgops.lab import Lab

    st = Lab().status()
    if as_json:
        render.print_json(st)
    else:
        render.lab_status(st)


@lab.command("up")
@hosts_option
@backup_option
@cluster_option
@proxy_option
def lab_up(hosts: int | None, backup: bool, cluster: bool, proxy: bool) -> None:
    """Start the engine if needed, build the image once, boot the hosts."""
    lab_up_and_secrets(hosts, backup, cluster, proxy)
    _print_lab_status(as_json=False)


@lab.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def lab_status(as_json: bool) -> None:
    """Hosts of the lab: name, address, ssh_user, ssh_key."""
    _print_lab_status(as_json)


@lab.command("down")
def lab_down() -> None:
    """Remove the hosts, their network and firewall rules (and the engine if pgops started it)."""
    from pgops.lab import Lab

    Lab().down(say=say("lab"))
