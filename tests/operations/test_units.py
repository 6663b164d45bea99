"""pgops.operations.units.service: a unit already as asked yields nothing, decided from its
cached state and enablement; anything else goes to pyinfra's systemd.service."""

from __future__ import annotations

import pytest

from pgops.operations import units
from tests.operations.harness import make_host, run_operation

#: The unit's facts as pgops reads them, and as pyinfra's own operation does.
KEYS = ("services=('patroni@17-main.service',)",
        "machine=None, services=['patroni@17-main.service'], user_mode=False, user_name=None")


def unit_host(running: bool | None, enabled: bool):
    status = {} if running is None else {"patroni@17-main.service": running}
    return make_host({"facts": {
        "SystemdStatus": {k: status for k in KEYS},
        "SystemdEnabled": {k: {"patroni@17-main.service": enabled} for k in KEYS}}})


def test_a_running_enabled_unit_is_a_no_op_and_each_fact_is_read_once():
    host = unit_host(True, True)
    reads = []
    plain = host.get_fact
    host.get_fact = lambda cls, **kw: reads.append(cls.__name__) or plain(cls, **kw)  # type: ignore[method-assign]
    for _ in range(2):
        out = run_operation(units.service, host, kwargs={"service": "patroni@17-main",
                                                         "running": True, "enabled": True})
        assert out.commands == []
    assert reads == ["SystemdStatus", "SystemdEnabled"]


def test_a_stopped_disabled_unit_is_started_and_enabled_by_pyinfras_operation():
    out = run_operation(units.service, unit_host(False, False),
                        kwargs={"service": "patroni@17-main", "running": True, "enabled": True})
    assert len(out.raw) == 2
    assert "start" in out.raw[0] and "patroni@17-main.service" in out.raw[0]
    assert "enable" in out.raw[1]


def test_a_restart_of_a_running_unit_is_pyinfras():
    out = run_operation(units.service, unit_host(True, True),
                        kwargs={"service": "patroni@17-main", "restarted": True})
    assert len(out.raw) == 1 and "restart" in out.raw[0]


def test_enablement_alone_never_reads_the_units_state():
    host = unit_host(None, True)
    del host.facts["SystemdStatus"]  # reading it would be an error
    out = run_operation(units.service, host, kwargs={"service": "patroni@17-main",
                                                     "running": None, "enabled": True})
    assert out.commands == []


@pytest.mark.parametrize(("state", "asked", "expected"), [
    ((True, True), dict(running=True, enabled=True), True),
    ((None, False), dict(running=False, enabled=False), True),   # unknown counts as stopped
    ((None, False), dict(running=True), False),
    ((True, True), dict(running=False), False),
    ((False, False), dict(running=None, restarted=True), True),  # a restart acts on a running unit
    ((True, False), dict(running=True, reloaded=True), False),
    ((True, False), dict(running=True, enabled=True), False),
    ((True, True), dict(running=True, enabled=False), False),
    ((True, False), dict(running=True, enabled=None), True),
])
def test_settled_follows_pyinfras_rules(state, asked, expected):
    args = {"running": None, "restarted": False, "reloaded": False, "enabled": None, **asked}
    assert units.settled(*state, **args) is expected


def test_unit_names_and_the_facts_a_deploy_reads_first():
    assert units.unit_name("etcd") == "etcd.service"
    assert units.unit_name("pgops-full@db1.timer") == "pgops-full@db1.timer"
    facts = units.unit_facts(["etcd", "x.timer"])
    assert [(f.__name__, kw) for f, kw in facts] == [
        ("SystemdStatus", {"services": ("etcd.service",)}),
        ("SystemdEnabled", {"services": ("etcd.service",)}),
        ("SystemdStatus", {"services": ("x.timer",)}),
        ("SystemdEnabled", {"services": ("x.timer",)})]
