"""`pgops cluster ...`: the Patroni clusters of an inventory."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from pgops import metrics
from pgops.cli import render
from pgops.cli.common import err, inventory_option, inventory_path, say
from pgops.errors import PgopsError
from pgops.ha import RUNNING


@click.group()
def cluster() -> None:
    """Patroni clusters: members, leader, replication, etcd."""


@cluster.command("status")
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--metrics-file", type=click.Path(path_type=Path),
              help="Also write Prometheus textfile metrics here.")
def cluster_status(inventory, as_json: bool, metrics_file: Path | None) -> None:
    """Members (role, state, timeline, lag in bytes and seconds, sync state, pending
    restart), each member's HAProxy routes and PgBouncer pools, the etcd members' health and
    the clients' URLs; exit 1 when a member, its HAProxy or PgBouncer is down, a cluster has
    no leader or an etcd member is unhealthy."""
    sys.exit(print_cluster_status(inventory_path(inventory), as_json, metrics_file))


def print_cluster_status(inventory: Path, as_json: bool, metrics_file: Path | None = None) -> int:
    """Print the clusters' status (and write its metrics); 0 when healthy, else 1."""
    from pgops.ha.status import cluster_status as read_status  # pyinfra: not in the dev image

    st = read_status(inventory)
    if metrics_file:
        metrics.write(metrics_file, metrics.cluster_prometheus(st))
    if as_json:
        render.print_json(st)
    else:
        render.cluster_status(st)
    return 0 if healthy(st) else 1


def healthy(st: dict) -> bool:
    """Every cluster has a leader and every member runs, with its HAProxy and PgBouncer
    answering; every etcd member is healthy."""
    members_ok = all(c["leader"] and all(m["state"] in RUNNING for m in c["members"])
                     for c in st["clusters"])
    endpoint_ok = all(e["routes"] is not None and (e["pools"] is not None or not e["pooled"])
                      for c in st["clusters"] for e in c.get("endpoint") or ())
    return members_ok and endpoint_ok and all(e["healthy"] for e in st["etcd"] or ())


cluster_name_option = click.option("--cluster", "name", help="The cluster (default: the only one).")
plan_option = click.option("--plan", "plan_only", is_flag=True,
                           help="Show what would happen and change nothing.")
yes_option = click.option("--yes", is_flag=True, help="Confirm a step that can lose data.")


def _run(inventory, name: str | None, make_plan, yes: bool, plan_only: bool) -> None:
    """Read the cluster, print the plan, then (unless --plan) carry it out and show the result."""
    from pgops.ha import control  # pyinfra: not in the dev image
    from pgops.ha.status import connect

    clusters = connect(inventory_path(inventory))
    cname = clusters.one(name)
    s = clusters.settings_of(cname)
    plan = make_plan(control, clusters.status(cname), s)
    render.cluster_plan(plan)
    if plan_only:
        sys.exit(1 if plan.refusals else 0)

    def wait_healthy(timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not healthy({"clusters": [clusters.status(cname)], "etcd": None}):
            if time.monotonic() > deadline:
                raise PgopsError(f"cluster {cname} not healthy {timeout:.0f} s after the step")
            time.sleep(1)

    t0 = time.monotonic()
    control.execute(plan, clusters.hosts, s, yes, say("cluster"), wait_healthy)
    wait_healthy()
    err.print(f"[cyan]cluster[/]: {plan.action} done in {time.monotonic() - t0:.1f} s")
    render.cluster_status({"clusters": [clusters.status(cname)], "etcd": None})


def _plan_command(command: str):
    """A cluster command that plans, then acts: --inventory, --cluster, --yes, --plan."""
    def wrap(f):
        for option in (plan_option, yes_option, cluster_name_option, inventory_option):
            f = option(f)
        return cluster.command(command)(f)
    return wrap


@_plan_command("switchover")
@click.option("--to", help="The replica to become leader (default: the least behind).")
def switchover(inventory, name, to, yes, plan_only) -> None:
    """Planned change of leader: no committed row is lost (the leader stops cleanly first)."""
    _run(inventory, name, lambda control, st, s: control.switchover_plan(
        st, to, pooled=bool(s.pooler and s.pooler.pausable)), yes, plan_only)


@_plan_command("failover")
@click.option("--to", required=True, help="The member to promote.")
def failover(inventory, name, to, yes, plan_only) -> None:
    """Promote a member now, when the leader is gone (--yes: commits it lacks are lost)."""
    _run(inventory, name, lambda control, st, s: control.failover_plan(
        st, to, s.pg_ha.maximum_lag_on_failover), yes, plan_only)


@_plan_command("reinit")
@click.argument("member")
def reinit(inventory, name, member, yes, plan_only) -> None:
    """Delete a replica's data and clone the leader again (--yes)."""
    _run(inventory, name, lambda control, st, s: control.reinit_plan(st, member), yes, plan_only)


@_plan_command("restart")
@click.option("--pending", is_flag=True, help="Only members with a pending restart.")
def restart(inventory, name, pending, yes, plan_only) -> None:
    """Rolling restart: replicas one at a time (each streaming again first), the leader last."""
    _run(inventory, name, lambda control, st, s: control.restart_plan(st, pending), yes, plan_only)


@click.command()
@click.option("--minor", is_flag=True, required=True,
              help="A minor upgrade (same major): PostgreSQL and pgvector from apt.")
@plan_option
@cluster_name_option
@inventory_option
def upgrade(minor: bool, plan_only: bool, name: str | None, inventory) -> None:
    """Rolling minor upgrade of a cluster: replicas first (each streaming again before the
    next), a switchover (clients of the endpoint see a pause), the old leader last; stops at
    the first member that is not healthy again."""
    from pgops import remote
    from pgops.ha import upgrade as up
    from pgops.ha.status import connect

    del minor  # the only kind pgops does; a major upgrade is a restore into a new cluster
    clusters = connect(inventory_path(inventory))
    cname = clusters.one(name)
    s = clusters.settings_of(cname)
    st = clusters.status(cname)
    versions = {}
    for m in clusters.topology.clusters[cname]:
        ok, out = remote.try_run(clusters.hosts[m], up.versions_command(s.pg_major), timeout=300)
        if ok:
            versions[m] = up.parse_versions(out)
    plan = up.upgrade_plan(st, versions, pooled=bool(s.pooler and s.pooler.pausable))
    err.print(f"[bold]minor upgrade[/] of cluster {cname}:")
    for i, step in enumerate(plan.steps, 1):
        err.print(f"  {i}. {step.text}")
    for r in plan.refusals:
        err.print(f"  [red]refused[/]: {r}")
    if plan_only:
        sys.exit(1 if plan.refusals else 0)
    t0 = time.monotonic()
    up.execute(plan, clusters.hosts, s, lambda: clusters.status(cname), say("upgrade"))
    err.print(f"[cyan]upgrade[/]: done in {time.monotonic() - t0:.1f} s")
    render.cluster_status({"clusters": [clusters.status(cname)], "etcd": None})
