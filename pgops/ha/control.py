"""Planned and unplanned leader changes, re-clones and rolling restarts of a Patroni cluster,
each as a plan (pure, from the cluster's status) and then patronictl on a member: Patroni
does the work, pgops decides whether it may and says what will happen first."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import gevent
from pyinfra.api.host import Host

from pgops import remote
from pgops.endpoint import control as endpoint
from pgops.errors import PgopsError
from pgops.facts.patroni import request_command
from pgops.greenlets import spawn
from pgops.ha import patroni
from pgops.server import psql
from pgops.server.cluster import Cluster
from pgops.settings import Settings


@dataclass
class Plan:
    """What a command will do, or why it will not (refusals), and what needs --yes."""

    action: str
    cluster: str
    steps: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    needs_yes: list[str] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)  # (member to run on, patronictl args)
    #: A switchover's members and new leader: the endpoint is paused and re-pointed around it.
    members: list[str] = field(default_factory=list)
    proxies: list[str] = field(default_factory=list)
    leader: str | None = None
    new_leader: str | None = None
    pooled: bool = False


def _members(st: Mapping[str, Any]) -> dict[str, dict]:
    return {m["member"]: m for m in st["members"]}


def _healthy_replicas(st: Mapping[str, Any]) -> list[dict]:
    return [m for m in st["members"] if m["role"] in ("replica", "sync_standby")
            and m["state"] == "streaming"]


def switchover_plan(st: Mapping[str, Any], to: str | None, pooled: bool = False) -> Plan:
    """A planned change of leader: the leader shuts down cleanly after its standbys received
    everything, so nothing committed is lost; the target must be a streaming replica. With
    PgBouncer (`pooled`), its clients are paused around it instead of disconnected."""
    plan = Plan("switchover", st["cluster"])
    leader = st["leader"]
    members = _members(st)
    if leader is None:
        plan.refusals.append(f"cluster {st['cluster']} has no leader: a switchover needs one "
                             "(use `pgops cluster failover --to H --yes`)")
        return plan
    candidates = _healthy_replicas(st)
    if to is not None:
        if to not in members:
            plan.refusals.append(f"{to} is not a member of cluster {st['cluster']} "
                                 f"(members: {', '.join(members)})")
            return plan
        if to == leader:
            plan.refusals.append(f"{to} is already the leader")
            return plan
        if to not in {c["member"] for c in candidates}:
            plan.refusals.append(f"{to} is not a streaming replica (state "
                                 f"{members[to]['state']}); nothing was changed")
            return plan
    elif not candidates:
        plan.refusals.append("no streaming replica to hand the leadership to")
        return plan
    # In synchronous mode Patroni hands over only to a synchronous standby: prefer one.
    target = to or min(candidates, key=lambda c: (c.get("sync") != "sync", c["lag_bytes"] or 0,
                                                  c["member"]))["member"]
    plan.steps = [
        f"{leader} stops accepting writes and shuts down cleanly once {target} has its WAL",
        f"{target} is promoted (a new timeline); clients of the read-write URL reconnect to it",
        f"{leader} restarts as a replica of {target}",
        f"every member's HAProxy routes the read-write port to {target} once it accepts writes"
        + (f", and every proxy host's ({', '.join(st['proxies'])})" if st.get("proxies") else ""),
    ]
    if pooled:
        plan.steps[:0] = ["PgBouncer pauses on every member: transactions in flight finish, "
                          "new ones wait (clients stay connected)"]
        plan.steps[2] = f"{target} is promoted (a new timeline)"
        plan.steps.append("PgBouncer resumes: the waiting transactions run on "
                          f"{target}, with no error")
    plan.members = [m["member"] for m in st["members"]]
    plan.proxies = list(st.get("proxies") or ())
    plan.leader, plan.new_leader = leader, target
    plan.pooled = pooled
    return plan


def failover_plan(st: Mapping[str, Any], to: str, maximum_lag: int) -> Plan:
    """An unplanned change of leader to `to`: always --yes, since the old leader's last
    commits may not have reached `to`; refused when `to` is not running."""
    plan = Plan("failover", st["cluster"])
    members = _members(st)
    if to not in members:
        plan.refusals.append(f"{to} is not a member of cluster {st['cluster']}")
        return plan
    m = members[to]
    if m["state"] not in ("streaming", "running"):
        plan.refusals.append(f"{to} is {m['state']}: it cannot be promoted")
        return plan
    if m["role"] == "leader":
        plan.refusals.append(f"{to} is already the leader")
        return plan
    lag = m["lag_bytes"]
    plan.steps = [f"{to} is promoted now, whatever the state of {st['leader'] or 'the old leader'}",
                  f"{to} is {lag if lag is not None else 'an unknown number of'} bytes behind "
                  "the last position it knew: commits past it are lost",
                  "the other members follow it (the old leader is rewound when it returns)"]
    plan.needs_yes.append("a failover may lose the commits the target had not received")
    if lag is None or lag > maximum_lag:
        plan.needs_yes.append(f"{to} lags more than maximum_lag_on_failover ({maximum_lag} bytes)")
    plan.commands = [(to, f"failover {shlex.quote(st['cluster'])} --candidate {shlex.quote(to)} --force")]
    return plan


def reinit_plan(st: Mapping[str, Any], member: str) -> Plan:
    """Re-clone one replica from the leader: its data directory is deleted first (--yes)."""
    plan = Plan("reinit", st["cluster"])
    members = _members(st)
    if member not in members:
        plan.refusals.append(f"{member} is not a member of cluster {st['cluster']}")
    elif members[member]["role"] == "leader":
        plan.refusals.append(f"{member} is the leader: switch over first, then reinit it")
    elif st["leader"] is None:
        plan.refusals.append("the cluster has no leader to clone from")
    if plan.refusals:
        return plan
    plan.steps = [f"{member}'s data directory is deleted",
                  f"{member} clones {st['leader']} again and streams from it"]
    plan.needs_yes.append(f"deletes {member}'s data directory")
    plan.commands = [(member, f"reinit {shlex.quote(st['cluster'])} {shlex.quote(member)} --force --wait")]
    return plan


def restart_plan(st: Mapping[str, Any], pending_only: bool) -> Plan:
    """Restart every member (or those with a pending restart), replicas one by one first,
    each streaming again before the next; the leader last (its clients reconnect)."""
    plan = Plan("restart", st["cluster"])
    members = [m for m in st["members"] if not pending_only or m["pending_restart"]]
    if any(m["state"] == "down" for m in st["members"]):
        plan.refusals.append("a member is down: restarting others now could leave no replica")
        return plan
    order = sorted(members, key=lambda m: (m["role"] == "leader", m["member"]))
    for m in order:
        plan.steps.append(f"restart {m['member']} ({m['role']})" +
                          (": writes pause while it restarts" if m["role"] == "leader" else ""))
        plan.commands.append((m["member"], f"restart {shlex.quote(st['cluster'])} "
                                           f"{shlex.quote(m['member'])} --force"))
    if not order:
        plan.steps.append("nothing to restart")
    return plan


def execute(plan: Plan, hosts: Mapping[str, Host], settings: Settings, yes: bool,
            say: Callable[[str], None], wait_healthy: Callable[[], None]) -> None:
    """Run a plan's patronictl commands; refused plans and unconfirmed risks raise."""
    if plan.refusals:
        raise PgopsError(f"{plan.action} refused: " + "; ".join(plan.refusals))
    if plan.needs_yes and not yes:
        raise PgopsError(f"{plan.action} needs --yes: " + "; ".join(plan.needs_yes))
    if plan.action == "switchover":
        _switchover(plan, hosts, settings, say)
        return
    conf = patroni.conf_path(Cluster.of(settings))
    for member, args in plan.commands:
        t0 = time.monotonic()
        say(f"{member}: patronictl {args}")
        remote.run(hosts[member], f"patronictl -c {conf} {args}", user="postgres", timeout=600)
        if plan.action == "restart":
            wait_healthy()
        say(f"{member}: done in {time.monotonic() - t0:.1f} s")


#: How long Patroni's REST API may take to confirm a switchover once the new leader accepts
#: writes (it polls the DCS once a second).
SWITCH_ANSWER_S = 15
#: Patroni's answer when it stopped watching a switchover it had started.
UNKNOWN = "status unknown"


def switch(hosts: Mapping[str, Host], leader: str, new_leader: str, settings: Settings,
           conf: str) -> gevent.Greenlet:
    """Ask the leader's Patroni to switch over to `new_leader`; return once it accepts writes,
    with the request's greenlet (its answer). Patroni's REST API answers on whole seconds
    (it polls the DCS once a second, about 0.5 s late on average), so the promotion is
    watched on the new leader every 0.1 s alongside. A refusal, or a request that fails
    before the promotion, raises."""
    request = spawn(remote.try_run, hosts[leader], request_command(
        conf, "POST", "/switchover", {"leader": leader, "candidate": new_leader}), None, 600)
    promoted = spawn(remote.try_run, hosts[new_leader], endpoint.promoted_command(settings),
                     None, endpoint.PROMOTED_TIMEOUT_S)
    gevent.wait([request, promoted], count=1)
    if not promoted.ready():
        ok, out = remote.outcome(request)
        # Patroni stops watching after max(10 s, loop_wait) and answers "status unknown"
        # while the switchover goes on: the promotion decides then.
        if (not ok and UNKNOWN not in out) or "instead of" in out:
            promoted.kill(block=False)  # its poll on the host ends by itself
            raise PgopsError(f"Patroni did not switch over to {new_leader}: {out.strip()[-500:]}")
        promoted.join()
    ok, out = remote.outcome(promoted)
    if not ok:
        raise PgopsError(f"{new_leader} did not accept writes after the switchover: "
                         f"{out.strip()[-500:]}; Patroni's answer: {answer(request)[1]}")
    return request


def answer(request: gevent.Greenlet) -> tuple[bool, str]:
    """Patroni's answer to the switchover request, waited for at most SWITCH_ANSWER_S (the
    request is dropped then)."""
    request.join(SWITCH_ANSWER_S)
    ok, out = (remote.outcome(request) if request.ready()
               else (False, f"none in {SWITCH_ANSWER_S} s"))
    request.kill(block=False)
    return ok, out.strip()[-300:]


def _switchover(plan: Plan, hosts: Mapping[str, Host], settings: Settings,
                say: Callable[[str], None]) -> None:
    """Patroni's switchover inside the endpoint's pause: a checkpoint first (so the leader's
    shutdown checkpoint is short), PgBouncer paused, Patroni switches, the routes follow the
    new leader as soon as it accepts writes, PgBouncer resumes: its clients saw a pause."""
    assert plan.leader and plan.new_leader
    conf = patroni.conf_path(Cluster.of(settings))
    t0 = time.monotonic()
    remote.run(hosts[plan.leader], psql.shell("CHECKPOINT", settings.pg_port), timeout=600)
    say(f"{plan.leader}: checkpoint done ({time.monotonic() - t0:.2f} s)")
    pause = (endpoint.paused(hosts, plan.members, settings, say) if plan.pooled
             else nullcontext())
    with pause as before_resume:  # paused: each member re-points its routes as it resumes
        t1 = time.monotonic()
        say(f"{plan.leader}: switchover to {plan.new_leader} (Patroni's REST API)")
        request = switch(hosts, plan.leader, plan.new_leader, settings, conf)
        say(f"{plan.new_leader} accepts writes ({time.monotonic() - t1:.2f} s)")
        endpoint.point_at(hosts, plan.members, plan.new_leader, settings, plan.pooled, plan.proxies,
                          say, deferred=before_resume)
        say(f"every route points at {plan.new_leader} ({time.monotonic() - t1:.2f} s)"
            if before_resume is None else
            f"routes to {plan.new_leader}: proxy hosts now, each member with its resume")
    ok, out = answer(request)
    say(f"Patroni's answer: {out}" if ok else
        f"Patroni's REST API did not confirm ({out}), but {plan.new_leader} "
        "leads and accepts writes")
    say(f"switchover done in {time.monotonic() - t0:.1f} s")
