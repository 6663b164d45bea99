"""Leader changes, re-clones and restarts planned from a cluster's status, without hosts:
what each will do, what it refuses, and what needs --yes."""

from __future__ import annotations

from pgops.ha import control


def member(name, role="replica", state="streaming", lag=0, pending=False):
    return {"member": name, "role": role, "state": state, "timeline": 2, "lag_bytes": lag,
            "lag_s": 0.0, "sync": "async", "pending_restart": pending}


def cluster(*members, leader="db1"):
    return {"cluster": "main", "leader": leader, "members": list(members)}


HEALTHY = cluster(member("db1", "leader", "running"), member("db2", lag=300),
                  member("db3", lag=100))


def test_switchover_picks_the_least_behind_replica():
    plan = control.switchover_plan(HEALTHY, None)
    assert not plan.refusals and not plan.needs_yes
    assert (plan.leader, plan.new_leader, plan.members) == ("db1", "db3", ["db1", "db2", "db3"])
    assert any("db1 restarts as a replica of db3" in s for s in plan.steps)
    assert not plan.pooled and not any("PgBouncer" in s for s in plan.steps)


def test_a_pooled_switchover_pauses_pgbouncer_first_and_resumes_it_last():
    plan = control.switchover_plan(HEALTHY, "db2", pooled=True)
    assert plan.pooled and plan.new_leader == "db2"
    assert plan.steps[0].startswith("PgBouncer pauses on every member")
    assert plan.steps[-1].startswith("PgBouncer resumes")


def test_switchover_refuses_a_target_that_is_not_a_streaming_replica():
    down = cluster(member("db1", "leader", "running"), member("db2", state="down"))
    assert "not a streaming replica" in control.switchover_plan(down, "db2").refusals[0]
    assert "already the leader" in control.switchover_plan(HEALTHY, "db1").refusals[0]
    assert "not a member" in control.switchover_plan(HEALTHY, "db9").refusals[0]
    leaderless = cluster(member("db2"), leader=None)
    assert "has no leader" in control.switchover_plan(leaderless, None).refusals[0]


def test_failover_always_needs_yes_and_says_so_louder_past_the_lag_limit():
    plan = control.failover_plan(HEALTHY, "db3", maximum_lag=1000)
    assert plan.needs_yes == ["a failover may lose the commits the target had not received"]
    far = control.failover_plan(cluster(member("db1", "leader", "running"), member("db2", lag=5000)),
                                "db2", maximum_lag=1000)
    assert any("lags more than maximum_lag_on_failover" in n for n in far.needs_yes)
    assert "cannot be promoted" in control.failover_plan(
        cluster(member("db2", state="down")), "db2", 1000).refusals[0]


def test_reinit_needs_yes_and_never_touches_the_leader():
    plan = control.reinit_plan(HEALTHY, "db2")
    assert plan.needs_yes and plan.commands == [("db2", "reinit main db2 --force --wait")]
    assert "switch over first" in control.reinit_plan(HEALTHY, "db1").refusals[0]


def test_restart_goes_replicas_first_leader_last_and_pending_only_on_request():
    plan = control.restart_plan(HEALTHY, pending_only=False)
    assert [m for m, _ in plan.commands] == ["db2", "db3", "db1"]
    some = cluster(member("db1", "leader", "running", pending=True), member("db2"),
                   member("db3", pending=True))
    assert [m for m, _ in control.restart_plan(some, pending_only=True).commands] == ["db3", "db1"]
    down = cluster(member("db1", "leader", "running"), member("db2", state="down"))
    assert control.restart_plan(down, False).refusals


def test_execute_refuses_without_running_anything():
    import pytest

    from pgops.errors import PgopsError

    ran = []
    with pytest.raises(PgopsError, match="needs --yes"):
        control.execute(control.reinit_plan(HEALTHY, "db2"), {}, None, yes=False,
                        say=ran.append, wait_healthy=lambda: None)
    with pytest.raises(PgopsError, match="refused"):
        control.execute(control.reinit_plan(HEALTHY, "db1"), {}, None, yes=True,
                        say=ran.append, wait_healthy=lambda: None)
    assert ran == []
