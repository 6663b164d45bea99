"""The endpoint during a change of leader: PgBouncer paused on every member (transactions in
flight finish, new ones wait), the routes pointed at the new leader as soon as it accepts
writes, then resumed. Clients see a pause, not an error."""

from __future__ import annotations

import csv
import io
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from pyinfra.api.host import Host

from pgops import remote
from pgops.endpoint import haproxy, pgbouncer
from pgops.errors import PgopsError
from pgops.facts.patroni import wait_after_command
from pgops.server import psql
from pgops.server.cluster import Cluster
from pgops.settings import Settings
from pgops.shell import wait_until

#: How long a PAUSE may wait for the transactions in flight (longer: nothing is switched).
PAUSE_TIMEOUT_S = 30
#: How long the new leader may take to accept writes once Patroni has switched over.
PROMOTE_WAIT_S = 60


#: PgBouncer's answer to a RESUME when it is not paused (a PAUSE that never took).
NOT_PAUSED = "not paused"


#: What a member's resume prints when its own routes could not be re-pointed first.
ROUTES_FAILED = "@@pgops-routes-not-re-pointed"


def resume_command(port: int, before: str | None) -> str:
    """A shell command (as root) resuming a member's PgBouncer, after `before` (its HAProxy
    re-pointed) in the same round trip: a failed `before` prints ROUTES_FAILED and its
    output, and the RESUME runs all the same (pure)."""
    resume = f"runuser -u {pgbouncer.ADMIN_USER} -- {pgbouncer.admin_command('RESUME', port)}"
    if not before:
        return resume
    return (f"routes=$( ({before}) 2>&1 ) || printf '%s %s\\n' {ROUTES_FAILED} \"$routes\"; "
            f"{resume}")


@contextmanager
def paused(hosts: Mapping[str, Host], members: Sequence[str], s: Settings,
           say: Callable[[str], None]) -> Iterator[dict[str, str]]:
    """PgBouncer paused on `members` for the block, resumed after it whatever happens: also
    where a PAUSE gave up waiting (PgBouncer goes on pausing after its client left). The
    block may leave, by member, a command to run right before its RESUME, in the same round
    trip (point_at's `deferred`)."""
    assert s.pooler
    port = s.pooler.port
    t0 = time.monotonic()
    error: BaseException | None = None
    before_resume: dict[str, str] = {}
    try:
        # Every member at once: clients of the first paused wait while the others pause.
        results = remote.try_run_each(
            [(hosts[m], pgbouncer.admin_command("PAUSE", port, PAUSE_TIMEOUT_S)) for m in members],
            user=pgbouncer.ADMIN_USER, timeout=PAUSE_TIMEOUT_S + 10)
        failed = [f"{m}: {out.strip()[-300:]}" for m, (ok, out) in zip(members, results, strict=True)
                  if not ok]
        if failed:
            raise PgopsError(f"PgBouncer did not pause within {PAUSE_TIMEOUT_S} s (a long "
                             f"transaction, or PgBouncer down) on {'; '.join(failed)}; nothing "
                             "was switched")
        say(f"PgBouncer paused on {', '.join(members)} ({time.monotonic() - t0:.2f} s)")
        yield before_resume
    except BaseException as e:
        error = e
        raise
    finally:
        results = remote.try_run_each(
            [(hosts[m], resume_command(port, before_resume.get(m))) for m in members],
            timeout=PAUSE_TIMEOUT_S + 10)
        failed = [f"{m}: {out.strip()[-200:]}" for m, (ok, out) in zip(members, results, strict=True)
                  if not ok and NOT_PAUSED not in out]
        unrouted = [f"{m}: {out.split(ROUTES_FAILED, 1)[1].strip()[-200:]}"
                    for m, (ok, out) in zip(members, results, strict=True) if ROUTES_FAILED in out]
        say(f"PgBouncer resumed on {', '.join(members)}: clients waited at most "
            f"{time.monotonic() - t0:.2f} s")
        if failed:
            raise PgopsError("PgBouncer did not resume on " + "; ".join(failed) + " (run RESUME "
                             f"on its admin console: {pgbouncer.admin_command('RESUME', port)})"
                             + (f"; after: {error}" if error else "")) from error
        if unrouted and error is None:
            raise PgopsError("HAProxy not re-pointed at the new leader on " + "; ".join(unrouted)
                             + " (its health checks will follow Patroni)")


def route_commands(members: Sequence[str], leader: str, leader_route: bool = True) -> list[str]:
    """HAProxy runtime commands pointing every route at `leader` now (pure); Patroni's
    health checks go on and agree, so nothing stays forced. Only a member with PgBouncer
    has a leader route (haproxy.render)."""
    routes = (haproxy.RW, haproxy.LEADER) if leader_route else (haproxy.RW,)
    cmds = []
    for m in members:
        up = "up" if m == leader else "down"
        cmds += [f"set server {r}/{m} health {up}" for r in routes]
    cmds.append(f"set server {haproxy.RO}/{leader} health down")
    return cmds


def promoted_command(s: Settings) -> str:
    """Run on the new leader: done once it answers Patroni's `/primary` and a new session
    can write (Patroni answers `/primary` before the promotion is done). Both wait first until
    the promotion has removed standby.signal, a test of a file every 0.05 s that costs the
    host nothing while the switchover needs its CPU. The `/primary` poll is one Python
    process started at once that waits for the file itself, so its first request comes as
    the file goes, not a Python start (0.1 s here) later; `pg_is_in_recovery()` is polled
    with psql after the file is gone."""
    standby = f"{Cluster.of(s).data}/standby.signal"
    return (f"({wait_after_command('/primary', standby, 2 * PROMOTE_WAIT_S)}) & primary=$!; "
            f"{wait_until(f'[ ! -e {shlex.quote(standby)} ]', PROMOTE_WAIT_S, 0.05, None)}; "
            f"({psql.wait_writable_command(s.pg_port, PROMOTE_WAIT_S)}) "
            "|| { kill $primary 2>/dev/null; exit 1; }; wait $primary")


#: How long the command waiting for a promotion may run: the file test's wait, then the
#: longer of the two polls that run at once (each bounded by the clock), and SSH.
PROMOTED_TIMEOUT_S = 2 * PROMOTE_WAIT_S + 15


def point_at(hosts: Mapping[str, Host], members: Sequence[str], leader: str, s: Settings,
             pooled: bool, proxies: Sequence[str] = (), say: Callable[[str], None] = print,
             deferred: dict[str, str] | None = None) -> None:
    """Every member's and proxy host's HAProxy routes to `leader` now (its promotion done).
    A proxy host that does not answer is reported, not fatal: its health checks find the
    leader within a few intervals. With `deferred` (paused()'s), each member's commands are
    left there to run with its RESUME, one round trip instead of two: a member's PgBouncer
    reaches the leader through its own HAProxy, re-pointed just before it resumes."""
    member_cmds = haproxy.runtime_command(route_commands(members, leader, leader_route=pooled),
                                          quiet=True)
    proxy_cmds = haproxy.runtime_command(route_commands(members, leader, leader_route=False), quiet=True)
    now = list(members)
    if deferred is not None:
        deferred.update({m: member_cmds for m in members})
        now = []
    # Every HAProxy at once (one round trip): the clients' pause ends with the slowest.
    results = remote.try_run_each([*((hosts[m], member_cmds) for m in now),
                                   *((hosts[p], proxy_cmds) for p in proxies)], timeout=30)
    on_members, on_proxies = results[:len(now)], results[len(now):]
    failed = [f"{m}: {out.strip()[-200:]}" for m, (ok, out) in zip(now, on_members, strict=True)
              if not ok]
    for p, (ok, out) in zip(proxies, on_proxies, strict=True):
        if not ok:
            say(f"{p}: HAProxy not re-pointed ({out.strip()[-200:]}); its health checks will follow")
    if failed:
        raise PgopsError("HAProxy not re-pointed at the new leader on " + "; ".join(failed))


def parse_stat(text: str) -> list[dict[str, str]]:
    """HAProxy's `show stat` CSV as rows by column name (pure)."""
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("# "):
        return []
    return list(csv.DictReader(io.StringIO("\n".join([lines[0][2:], *lines[1:]]))))


def routes(stat_rows: Sequence[Mapping[str, str]]) -> dict[str, dict[str, str]]:
    """route (rw, ro, leader) -> member -> status (UP, DOWN, MAINT...) (pure)."""
    out: dict[str, dict[str, str]] = {}
    for r in stat_rows:
        name = haproxy.ROUTE_NAMES.get(r.get("pxname", ""))
        if name and r.get("svname") not in ("FRONTEND", "BACKEND"):
            out.setdefault(name, {})[r["svname"]] = r.get("status", "")
    return out
