"""In-place restore of a whole Patroni cluster to a time (`pgops restore --in-place --yes`
naming a cluster member).

Patroni must not run while the history is rewritten, and the cluster's state in etcd
(leader, members, timeline history) belongs to the history being discarded. Every replica
is rebuilt on the restored leader's new timeline, never left following the old one (the
trap of Autobase #712 and #588, Patroni #3147). The order:

1. Patroni stopped on the replicas, then on the leader (no failover on the way down); each
   stops its PostgreSQL.
2. The cluster removed from etcd (`patronictl remove`); Patroni writes its dynamic
   configuration again from patroni.yml, which pgops renders from the settings (the
   restored data's cached copy, patroni.dynamic.json, is removed first).
3. The leader restored (delta) and recovered to the target outside Patroni, with no TCP
   listener, promoted to a new timeline, its recovery settings reset, stopped.
4. Patroni started there: it takes the restored data over as the leader.
5. A full backup on the new timeline: Patroni makes replicas from the newest backup, which
   must not be one of the discarded history.
6. Each replica's data directory emptied and Patroni started: it clones the leader.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Sequence

from pgops.backup import repository, restore, rules
from pgops.backup.repository import Backups, primary
from pgops.backup.restore import RestorePlan
from pgops.errors import BackupError
from pgops.facts.patroni import get_command, wait_command
from pgops.ha import patroni
from pgops.remote import run
from pgops.server import psql
from pgops.server.cluster import Cluster

#: What pgBackRest writes into postgresql.auto.conf for recovery; reset once promoted, so
#: that the member never stops replaying at the old target when it later follows a leader.
RECOVERY_SETTINGS = ("restore_command", "recovery_target_time", "recovery_target_action",
                     "recovery_target_timeline")


def steps(members: Sequence[str], cluster: str, stanza: str, data: str, backup: str,
          upto: str, archive_first: bool) -> list[str]:
    """The plan's steps (pure); members[0] is restored and leads."""
    leader, replicas = members[0], ", ".join(members[1:]) or "no other member"
    return [
        *([f"commit and switch WAL on {leader}, so the archive reaches past the target"]
          if archive_first else []),
        f"stop Patroni on {replicas}, then on {leader}: every member's PostgreSQL stops; "
        "the cluster takes no connections until Patroni leads again",
        f"remove cluster {cluster} from etcd (patronictl remove): its leader, members and "
        "timeline history belong to the discarded history",
        f"delta restore of backup {backup} + WAL to {upto} over {data} on {leader}",
        "start it outside Patroni (no TCP listener): recovery replays WAL to the target and "
        "promotes to a new timeline; reset its recovery settings; stop it",
        f"start Patroni on {leader}: it leads the restored data on the new timeline; archiving "
        f"continues into stanza {stanza}",
        f"full backup of stanza {stanza} on the new timeline (Patroni makes replicas from the "
        "newest backup)",
        f"empty the data directories of {replicas} and start Patroni there: each is rebuilt "
        "as a replica on the new timeline",
        "verify: schema version and row counts on the leader; every member on one timeline",
    ]


def plan(backups: Backups, db: str, to: str, onto: str | None = None) -> RestorePlan:
    """The in-place plan for db's cluster (db: the member its stanza is known by): the
    current leader (else the first member) is restored and leads; every member must answer,
    since every member is rebuilt."""
    rp = restore.plan(backups, db, to, onto, in_place=True)  # refuses --onto with --in-place
    members = backups.members(db)
    down = [m for m in members if not backups.db(m).connected]
    if down:
        raise BackupError(f"--in-place: {', '.join(down)} of cluster "
                          f"{backups.settings[db].pg_ha_cluster} unreachable; restoring the "
                          "cluster in place rebuilds every member (nothing was changed)")
    leader = primary(backups, db)[0] or members[0]
    ordered = [leader, *(m for m in members if m != leader)]
    rp.target_host, rp.members = leader, ordered
    rp.steps = steps(ordered, backups.settings[db].pg_ha_cluster or "", backups.stanza(db),
                     rp.data_directory, rp.backup["label"], rp.upto, rp.archive_first)
    return rp


def _limits(controldata: str) -> str:
    """-c options for the limits recovery needs (pg_control records the source's)."""
    return " ".join(f"-c {k}={v}" for k, v in rules.recovery_limits(controldata).items())


def execute(backups: Backups, rp: RestorePlan, say: Callable[[str], None] = lambda m: None) -> dict:
    """Run the plan (the module's order); the result as restore.execute reports it, with
    each member's timeline. A failure names the step it stopped at; the same command, run
    again, starts over from the restore of the leader and finishes."""
    s = backups.settings[rp.source]
    c = Cluster.of(s)
    unit, data = patroni.service(c), shlex.quote(c.data)
    leader, replicas = rp.members[0], rp.members[1:]
    hosts = {m: backups.db(m) for m in rp.members}
    h = hosts[leader]
    pg_ctl = f"runuser -u postgres -- {c.bin('pg_ctl')} -D {data}"
    wait = max(600, round(3 * rp.estimate_s))  # recovery may replay a day of WAL
    t0 = time.monotonic()
    step = "before any change"
    stopped = False

    def at(what: str) -> None:
        nonlocal step
        step = what
        say(what)

    try:
        if rp.archive_first:
            at(f"switching WAL on {leader} so the archive reaches past the target")
            restore.archive_past(backups, rp.source)
        for m in [*replicas, leader]:
            at(f"stopping Patroni on {m} (disabled until the restore brings it back)")
            stopped = True
            run(hosts[m], f"systemctl disable --now {unit} && if {pg_ctl} status >/dev/null "
                          f"2>&1; then {pg_ctl} -m fast -w -t 300 stop; fi")
        at(f"removing cluster {s.pg_ha_cluster} from etcd")
        run(h, _forget(c, s.pg_ha_cluster or ""), user="postgres")
        at(f"delta restore over {c.data} on {leader}")
        run(h, f"runuser -u postgres -- "
               f"{restore.pgbackrest_restore(rp, backups.stanza(rp.source))} --delta restore",
            timeout=7200)
        at("recovery to the target outside Patroni, then promotion")
        options = shlex.quote(f"-c config_file={c.etc}/postgresql.conf -c listen_addresses='' "
                              f"-c port={s.pg_port} "
                              + _limits(run(h, f"{c.bin('pg_controldata')} {data}")))
        run(h, f"{pg_ctl} -l {c.log} -o {options} -w -t {wait} start", timeout=wait + 60)
        restore.wait_promoted(backups, leader, s.pg_port, c, wait)
        run(h, psql.shell([f"alter system reset {k}" for k in RECOVERY_SETTINGS], s.pg_port))
        run(h, f"{pg_ctl} -m fast -w -t 300 stop")
        at(f"starting Patroni on {leader}: it leads the restored data")
        # The backup brought back Patroni's cache of the old dynamic configuration: without
        # it, Patroni writes the configuration from patroni.yml (the settings).
        run(h, f"rm -f {data}/patroni.dynamic.json && systemctl enable --now {unit} && "
               f"{wait_command('/primary', patroni.LEADER_WAIT_S)}",
            timeout=patroni.LEADER_WAIT_S + 60)
        # Patroni starts data it has not run as a standby, then promotes it: /primary answers
        # from the leader lock, a moment before the promotion is done.
        restore.wait_promoted(backups, leader, s.pg_port, c, patroni.LEADER_WAIT_S)
        at("full backup on the new timeline")
        repository.take(backups, rp.source, "full")
        for m in replicas:
            at(f"rebuilding {m} as a replica on the new timeline")
            run(hosts[m], f"find {data} -mindepth 1 -delete && systemctl enable --now {unit}")
        for m in replicas:
            at(f"waiting for {m} to stream")
            run(hosts[m], wait_command(patroni.REPLICA_HEALTHY, patroni.REPLICA_WAIT_S),
                timeout=patroni.REPLICA_WAIT_S + 60)
    except Exception as e:
        if not stopped:
            raise
        raise BackupError(
            f"in-place restore of cluster {s.pg_ha_cluster} stopped at: {step}: "
            f"{str(e).strip().splitlines()[0] if str(e).strip() else repr(e)}\n"
            "Run the same command again: it starts over from the restore of the leader. "
            f"Patroni is disabled on the members it has not brought back yet (`systemctl "
            f"enable --now {unit}` starts one as it is).") from e
    tl = timelines(backups, rp.members)
    if len(set(tl.values())) != 1:
        raise BackupError(f"cluster {s.pg_ha_cluster} restored, but its members are on "
                          f"different timelines: {tl}")
    return {**restore.result(backups, rp, time.monotonic() - t0), "members": rp.members,
            "timelines": tl}


def _forget(c: Cluster, cluster: str) -> str:
    """Shell (as postgres): `patronictl remove`, answering its two confirmations; a cluster
    already gone from etcd (a restore run again) is not an error. A third question (the
    cluster still has a leader) gets no answer, so the removal fails, as it must."""
    answers = shlex.quote(f"{cluster}\nYes I am aware\n")
    return (f"out=$(printf {answers} | patronictl -c {patroni.conf_path(c)} remove "
            f"{shlex.quote(cluster)} 2>&1) || {{ echo \"$out\" | grep -q 'does not exist' || "
            "{ echo \"$out\" | tail -n 3 >&2; exit 1; }; }")


def timelines(backups: Backups, members: Sequence[str]) -> dict[str, int | None]:
    """Each member's timeline as its Patroni reports it."""
    out: dict[str, int | None] = {}
    for m in members:
        seen = json.loads(run(backups.db(m), get_command("/patroni")).strip() or "null") or {}
        out[m] = seen.get("timeline")
    return out
