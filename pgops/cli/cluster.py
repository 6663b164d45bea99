"""`pgops cluster ...`: the Patroni clusters of an inventory."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from pgops.cli import render
from pgops.cli.common import inventory_option, inventory_path


@click.group()
def cluster() -> None:
    """Patroni clusters: members, leader, replication, etcd."""


@cluster.command("status")
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cluster_status(inventory, as_json: bool) -> None:
    """Members (role, state, timeline, lag in bytes and seconds, sync state, pending
    restart), the etcd members' health and the clients' URLs; exit 1 when a member is down,
    a cluster has no leader or an etcd member is unhealthy."""
    sys.exit(print_cluster_status(inventory_path(inventory), as_json))


def print_cluster_status(inventory: Path, as_json: bool) -> int:
    """Print the clusters' status; 0 when healthy, else 1."""
    from pgops.ha.status import cluster_status as read_status  # pyinfra: not in the dev image

    st = read_status(inventory)
    if as_json:
        render.print_json(st)
    else:
        render.cluster_status(st)
    return 0 if healthy(st) else 1


def healthy(st: dict) -> bool:
    """Every cluster has a leader and every member runs; every etcd member is healthy."""
    members_ok = all(c["leader"] and all(m["state"] in ("running", "streaming")
                                         for m in c["members"]) for c in st["clusters"])
    return members_ok and all(e["healthy"] for e in st["etcd"])
