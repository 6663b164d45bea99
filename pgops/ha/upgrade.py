"""A rolling minor upgrade of a cluster: PostgreSQL and pgvector from apt on each replica,
each restarted (Patroni) and streaming again before the next; then a switchover to an
upgraded replica (clients of the endpoint see a pause, not an error), then the old leader;
then extensions whose newer version is installed are updated. Where no newer package
exists the members are restarted in the same order, which exercises the same path.

The plan is pure (from the cluster's status and each member's package versions); execution
stops at the first member that is not healthy again, naming it, with the rest untouched."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api.host import Host

from pgops import remote
from pgops.errors import PgopsError
from pgops.facts.patroni import request_command, wait_command
from pgops.ha import RUNNING, control, patroni
from pgops.server import psql
from pgops.server.cluster import Cluster, server_packages
from pgops.settings import Settings

#: apt's package lists younger than this are fresh enough to tell whether a newer minor exists.
APT_LISTS_FRESH_MIN = 60


def versions_command(major: int) -> str:
    """A shell command (as root) refreshing apt's lists unless they are fresh, then printing
    `package|installed|candidate` per package."""
    pkgs = " ".join(server_packages(major))
    return (f"find /var/lib/apt/lists/partial -maxdepth 0 -mmin -{APT_LISTS_FRESH_MIN} 2>/dev/null | "
            "grep -q . || apt-get update -qq >/dev/null 2>&1; "
            f"for p in {pkgs}; do printf '%s|%s|%s\\n' \"$p\" "
            "\"$(dpkg-query -W -f='${Version}' \"$p\" 2>/dev/null)\" "
            "\"$(apt-cache policy \"$p\" | awk '/Candidate:/ {print $2}')\"; done")


def parse_versions(text: str) -> dict[str, tuple[str, str]]:
    """versions_command's output: package -> (installed, candidate) (pure)."""
    out = {}
    for line in text.strip().splitlines():
        parts = line.split("|")
        if len(parts) == 3:
            out[parts[0]] = (parts[1], parts[2])
    return out


def newer(versions: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The packages apt would move to another version (installed -> candidate)."""
    return {p: v for p, v in versions.items() if v[0] and v[1] and v[1] != "(none)" and v[0] != v[1]}


@dataclass
class Step:
    kind: str  # "member" (packages and restart) or "switchover" or "extensions"
    member: str
    text: str
    upgrade: bool = False  # packages to install first


@dataclass
class UpgradePlan:
    cluster: str
    pooled: bool = False
    steps: list[Step] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def upgrade_plan(st: Mapping[str, Any], versions: Mapping[str, Mapping[str, tuple[str, str]]],
                 pooled: bool) -> UpgradePlan:
    """Replicas one by one, a switchover to the first of them, the old leader, extensions."""
    plan = UpgradePlan(st["cluster"], pooled)
    leader = st["leader"]
    if leader is None:
        plan.refusals.append(f"cluster {st['cluster']} has no leader")
        return plan
    unwell = [f"{m['member']} is {m['state']}" for m in st["members"]
              if m["state"] not in RUNNING]
    if unwell:
        plan.refusals.append("every member must be healthy first: " + ", ".join(unwell))
        return plan
    missing = [m["member"] for m in st["members"] if m["member"] not in versions]
    if missing:
        plan.refusals.append(f"package versions unknown on {', '.join(missing)}")
        return plan
    replicas = sorted(m["member"] for m in st["members"] if m["member"] != leader)
    if not replicas:
        plan.refusals.append("a rolling upgrade needs a replica to switch over to")
        return plan

    def member_step(m: str, role: str) -> Step:
        moves = newer(versions[m])
        what = (", ".join(f"{p} {a} -> {b}" for p, (a, b) in moves.items()) if moves
                else "no newer package: restart only")
        return Step("member", m, f"{m} ({role}): {what}; restart, then wait until it streams",
                    upgrade=bool(moves))

    plan.steps = [member_step(m, "replica") for m in replicas]
    pause = ("PgBouncer paused around it: clients of the read-write port see a pause" if pooled
             else "clients of the read-write port reconnect")
    plan.steps.append(Step("switchover", leader, f"switchover from {leader} to the upgraded "
                           f"replica Patroni accepts (the synchronous standby in synchronous "
                           f"mode, else the least behind); {pause}"))
    plan.steps.append(member_step(leader, "the old leader, now a replica"))
    plan.steps.append(Step("extensions", leader, "extensions with a newer installed version "
                           "are updated on the new leader (ALTER EXTENSION ... UPDATE)"))
    return plan


#: Extensions whose installed default version is newer than the one in the database.
STALE_EXTENSIONS_SQL = (
    "select coalesce(string_agg(format('ALTER EXTENSION %I UPDATE', e.extname), '; '), '') "
    "from pg_extension e join pg_available_extensions a on a.name = e.extname "
    "where a.default_version <> e.extversion")


def _wait_streaming(h: Host, member: str, when: str) -> None:
    ok, out = remote.try_run(h, wait_command(patroni.REPLICA_HEALTHY, patroni.REPLICA_WAIT_S),
                             timeout=patroni.REPLICA_WAIT_S + 30)
    if not ok:
        raise PgopsError(f"{member} is not a streaming replica {when} ({out.strip()[-300:]}); "
                         "the upgrade stopped here, later members are untouched: see `pgops "
                         "cluster status`")


def execute(plan: UpgradePlan, hosts: Mapping[str, Host], s: Settings,
            status: Callable[[], Mapping[str, Any]], say: Callable[[str], None]) -> None:
    """Carry out the plan, checking each member is healthy again before the next step."""
    if plan.refusals:
        raise PgopsError("upgrade refused: " + "; ".join(plan.refusals))
    c = Cluster.of(s)
    conf = patroni.conf_path(c)
    for step in plan.steps:
        t0 = time.monotonic()
        say(step.text)
        if step.kind == "member":
            h = hosts[step.member]
            _wait_streaming(h, step.member, "before its restart")  # a former leader rejoins first
            if step.upgrade:
                remote.run(h, "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                              "--only-upgrade -o Dpkg::Options::=--force-confold "
                              + " ".join(server_packages(s.pg_major)), timeout=1200)
            remote.run(h, request_command(conf, "POST", "/restart", {}), user="postgres",
                       timeout=600)
            _wait_streaming(h, step.member, "after its restart")
        elif step.kind == "switchover":
            sw = control.switchover_plan(status(), None, pooled=plan.pooled)
            if sw.refusals:
                raise PgopsError("upgrade stopped before the switchover: " + "; ".join(sw.refusals))
            control.execute(sw, hosts, s, yes=False, say=say, wait_healthy=lambda: None)
        elif step.kind == "extensions":
            leader = status()["leader"]
            if leader is None:
                raise PgopsError("the cluster has no leader to update extensions on")
            for db in s.pg_databases:
                sql = remote.run(hosts[leader], psql.shell(STALE_EXTENSIONS_SQL, s.pg_port, db.name),
                                 timeout=60).strip()
                if sql:
                    remote.run(hosts[leader], psql.shell(sql, s.pg_port, db.name), timeout=600)
                    say(f"{leader}: {db.name}: {sql}")
        say(f"done in {time.monotonic() - t0:.1f} s")
