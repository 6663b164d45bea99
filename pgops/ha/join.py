"""What Patroni must do on each member at this deploy, decided from what the members hold
(pure): keep running, bootstrap the cluster, or join it as a replica, and never overwrite a
database that holds data; and the shell that hands a Debian cluster over to Patroni."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pgops.errors import ConfigError
from pgops.server import psql
from pgops.server.cluster import Cluster

#: Databases of a cluster nobody has used yet (templates are not listed by the fact).
PRISTINE = frozenset({"postgres"})

#: run: Patroni runs here (config kept current); bootstrap: the cluster starts from here;
#: join: clone the leader; wait: nothing until the cluster has a leader again.
Action = Literal["run", "bootstrap", "join", "wait"]


@dataclass(frozen=True)
class Member:
    """What one member holds, read at plan time."""

    handed_over: bool  # Debian's unit gave its cluster to Patroni here: it has been a member
    has_data: bool  # a data directory (PG_VERSION) exists
    databases: frozenset[str] | None  # None: server not running, contents unknown

    @property
    def user_data(self) -> bool:
        """Holds (or may hold) data someone would miss."""
        return self.has_data and (self.databases is None or bool(self.databases - PRISTINE))


@dataclass(frozen=True)
class Plan:
    #: Where roles, databases and migrations go at this deploy; None: nowhere, the cluster
    #: has no leader (it ran before and is down: Patroni, not pgops, elects one).
    leader: str | None
    actions: Mapping[str, Action]


def plan(cluster: str, members: Sequence[str], state: Mapping[str, Member],
         leader_now: str | None) -> Plan:
    """The leader and each member's action, or ConfigError when a member holds data that
    joining would replace.

    A cluster that ran before but has no leader now gets its configuration on every member
    that ran it ("run"), and nothing else: promoting one member by deploy could pick a
    lagging one; Patroni elects the most advanced once they run.
    """
    members_before = [m for m in members if state[m].handed_over]
    if leader_now is None and members_before:
        return Plan(None, {m: "run" if m in members_before else "wait" for m in members})
    leader = leader_now or _bootstrap_member(cluster, members, state)
    actions: dict[str, Action] = {}
    problems = []
    for m in members:
        st = state[m]
        if st.handed_over:
            actions[m] = "run"
        elif m == leader:
            actions[m] = "bootstrap"
        elif not st.user_data:
            actions[m] = "join"  # replace_script checks again when it runs
        else:
            what = (f"databases {', '.join(sorted(st.databases - PRISTINE))}"
                    if st.databases is not None else "a data directory whose server is stopped")
            problems.append(
                f"cluster {cluster}: host {m} holds {what}; joining as a replica of {leader} "
                "would replace it. pgops does not: dump what you need (pgops dump --host "
                f"{m}), then empty it, or take {m} out of pg_ha_cluster")
    if problems:
        raise ConfigError(problems)
    return Plan(leader, actions)


def _bootstrap_member(cluster: str, members: Sequence[str], state: Mapping[str, Member]) -> str:
    """The member whose data the cluster starts from: the one holding data (a single host
    moving into a cluster keeps it), else the first listed."""
    with_data = [m for m in members if state[m].user_data]
    if len(with_data) > 1:
        raise ConfigError([
            f"cluster {cluster}: {', '.join(with_data)} each hold data and no cluster runs "
            "yet; one cluster starts from one member's data. Keep one in pg_ha_cluster, or "
            "dump and empty the others first"])
    return with_data[0] if with_data else members[0]


def _unused_sql() -> str:
    return ("select coalesce(string_agg(datname, ', '), '') from pg_database "
            f"where not datistemplate and datname not in ({', '.join(repr(d) for d in PRISTINE)})")


#: Debian's start.conf word for "not started by postgresql@": written when a member's
#: cluster is handed to Patroni, and read back as the sign that it has been (a Patroni
#: config file alone is not: a deploy that stopped early writes it on every member).
HANDED_OVER = "manual"


def start_conf(c: Cluster) -> str:
    return f"{c.etc}/start.conf"


def _hand_over(c: Cluster) -> str:
    """Shell: Debian's unit stopped and kept from starting the cluster again."""
    q = shlex.quote
    return f"systemctl disable --now {q(c.service)}; echo {HANDED_OVER} > {q(start_conf(c))}"


def hand_over_script(c: Cluster) -> str:
    """Shell for the bootstrap member: a Debian cluster to start from (created when the host
    has none), handed over: Patroni runs it now."""
    q = shlex.quote
    return (f"set -e; [ -f {q(c.data)}/PG_VERSION ] || pg_createcluster {c.major} {q(c.name)}; "
            + _hand_over(c))


def replace_script(c: Cluster, port: int, host: str) -> str:
    """Shell for a joining member: checked again when it runs (the package may have created a
    cluster since the plan was made), the host's cluster must hold nothing but `postgres`;
    then its data directory is emptied for Patroni to clone the leader into. Exits 1 with the
    reason, changing nothing, when it holds anything else or its server is not running."""
    q = shlex.quote
    count = psql.shell(_unused_sql(), port)
    refuse = (f"echo {q(f'{host}: {c.data} holds')} \"$1\" "
              f"{q('; pgops will not replace it with a replica (nothing was changed)')} >&2; exit 1")
    return (
        f"set -e; refuse() {{ {refuse}; }}; "
        f"if [ -f {q(c.data)}/PG_VERSION ]; then "
        f"used=$({count} 2>/dev/null) || refuse 'a cluster whose server is not running'; "
        f"[ -z \"$used\" ] || refuse \"databases $used\"; "
        f"elif [ ! -f {q(c.etc)}/postgresql.conf ]; then pg_createcluster {c.major} {q(c.name)}; fi; "
        f"{_hand_over(c)}; find {q(c.data)} -mindepth 1 -delete"
    )
