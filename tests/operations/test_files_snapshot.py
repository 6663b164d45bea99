"""pgops.operations.files: a path that matches the snapshot yields nothing; anything else is
pyinfra's own operation, reading its own facts. And pgops.operations.cache: a fact is read
once, and again after any operation on any host has run a command."""

from __future__ import annotations

import hashlib
from io import StringIO
from types import SimpleNamespace

import pytest
from pyinfra.context import ctx_host

from pgops.facts.files import PathState, PathStates, parse
from pgops.facts.system import HasAesInstructions
from pgops.operations import cache, files
from tests.operations.harness import FakeHost, FakeInventory, MissingFact, run_operation

SHA = hashlib.sha1(b"x = 1\n").hexdigest()
CONF = "/etc/pgbackrest/pgbackrest.conf"


def host_with(states: dict[str, PathState], **facts) -> FakeHost:
    inventory = FakeInventory()
    h = FakeHost("db1", {**facts}, inventory=inventory)
    inventory.hosts["db1"] = h
    h.get_fact = _answering(h, states)  # type: ignore[method-assign]
    return h


def _answering(h: FakeHost, states: dict[str, PathState]):
    plain = h.get_fact
    h.reads = []  # type: ignore[attr-defined]

    def get_fact(cls, **kwargs):
        h.reads.append(cls.__name__)  # type: ignore[attr-defined]
        if cls is PathStates:
            return {p: states.get(p, PathState("missing")) for p in kwargs["paths"]}
        return plain(cls, **kwargs)
    return get_fact


def test_parse_reads_every_kind_of_line():
    got = parse(["file|640|root|pgbackrest|" + SHA + "|" + CONF, "dir|750|postgres|postgres||/a b",
                 "missing|||||/gone", "link|||||/l"])
    assert got == {CONF: PathState("file", 640, "root", "pgbackrest", SHA),
                   "/a b": PathState("dir", 750, "postgres", "postgres"),
                   "/gone": PathState("missing"), "/l": PathState("link")}


def test_the_snapshot_command_quotes_every_path():
    cmd = PathStates().command(("/etc/a b", "/x'y"))
    assert "'/etc/a b'" in cmd and "'/x'\"'\"'y'" in cmd


@pytest.mark.parametrize("st, want", [
    (PathState("file", 640, "root", "pgbackrest", SHA), True),
    (PathState("file", 644, "root", "pgbackrest", SHA), False),   # mode
    (PathState("file", 640, "postgres", "pgbackrest", SHA), False),  # owner
    (PathState("file", 640, "root", "root", SHA), False),  # group
    (PathState("file", 640, "root", "pgbackrest", "0" * 40), False),  # content
    (PathState("link"), False), (PathState("missing"), False), (None, False),
])
def test_a_file_matches_only_in_content_owner_and_mode(st, want):
    assert files.file_matches(st, SHA, "root", "pgbackrest", "640") is want


def test_owner_and_mode_not_asked_for_are_not_compared():
    assert files.file_matches(PathState("file", 600, "x", "y", SHA), SHA)
    assert files.directory_matches(PathState("dir", 700, "x", "y"))
    assert not files.directory_matches(PathState("file", 700, "x", "y", SHA))


def test_a_matching_file_yields_nothing_and_reads_one_fact():
    h = host_with({CONF: PathState("file", 640, "root", "pgbackrest", SHA)})
    r = run_operation(files._put, h, kwargs=dict(src=StringIO("x = 1\n"), dest=CONF, user="root",
                                                  group="pgbackrest", mode="640"))
    assert r.commands == [] and h.reads == ["PathStates"]


def test_a_file_that_differs_is_pyinfras_put_with_its_own_facts():
    h = host_with({CONF: PathState("file", 640, "root", "pgbackrest", "0" * 40)})
    with pytest.raises(MissingFact, match="File"):  # pyinfra's files.put asks for its facts
        run_operation(files._put, h, kwargs=dict(src=StringIO("x = 1\n"), dest=CONF, mode="640"))
    assert h.reads[0] == "PathStates"


def test_absent_paths_yield_nothing_and_present_ones_go_to_pyinfra():
    h = host_with({"/gone": PathState("missing"), "/here": PathState("file", 644, "r", "r", SHA)})
    assert run_operation(files._file_absent, h, kwargs={"path": "/gone"}).commands == []
    with pytest.raises(MissingFact):
        run_operation(files._file_absent, h, kwargs={"path": "/here"})
    assert run_operation(files._directory, h, kwargs={"path": "/gone", "present": False}).commands == []


def _executed_op(ran: bool):
    meta = SimpleNamespace(is_complete=lambda: True, executed=ran)
    return SimpleNamespace(operation_meta=meta)


def test_a_cached_fact_is_read_again_after_a_command_ran_on_any_host():
    h = host_with({}, HasAesInstructions=True)
    other = FakeHost("backup1", {}, inventory=h.inventory)
    h.inventory.hosts["backup1"] = other
    shared_ops = {h: {"a": _executed_op(False)}, other: {}}
    h.state = other.state = SimpleNamespace(ops=shared_ops)
    with ctx_host.use(h):
        assert cache.fact(HasAesInstructions) and cache.fact(HasAesInstructions)
        assert h.reads == ["HasAesInstructions"]  # once: no command ran
        shared_ops[other]["b"] = _executed_op(True)  # a command on another host
        cache.fact(HasAesInstructions)
        assert h.reads == ["HasAesInstructions"] * 2


def test_facts_of_several_hosts_are_read_at_once_and_then_answered_from_the_cache():
    import gevent

    from pgops.facts.system import HostResources

    h = host_with({}, HasAesInstructions=True)
    hosts = [h, *(FakeHost(n, {"HostResources": n}, inventory=h.inventory) for n in ("db2", "db3"))]
    events: list[tuple[str, str]] = []
    for x in hosts[1:]:
        h.inventory.hosts[x.name] = x
        plain = x.get_fact

        def get_fact(cls, _x=x, _plain=plain, **kwargs):
            events.append(("start", _x.name))
            gevent.sleep(0.01)
            events.append(("end", _x.name))
            return _plain(cls, **kwargs)
        x.get_fact = get_fact  # type: ignore[method-assign]
    with ctx_host.use(h):
        # db2 asked twice: read once
        cache.read_at_once([(hosts[1], HostResources, {}), (hosts[2], HostResources, {}),
                            (hosts[1], HostResources, {}), (h, HasAesInstructions, {})])
        assert [e for e, _ in events] == ["start", "start", "end", "end"]  # both at once
        assert h.reads == ["HasAesInstructions"]
        assert cache.fact(HostResources, on=hosts[2]) == "db3" and cache.fact(HasAesInstructions)
        assert len(events) == 4 and h.reads == ["HasAesInstructions"]  # from the cache


def test_a_system_user_that_matches_yields_nothing_and_one_that_differs_is_pyinfras():
    from pgops.facts.system import PasswdEntry
    from pgops.operations import accounts

    line = "pgbackrest:x:999:999::/var/lib/pgbackrest:/bin/sh"
    assert PasswdEntry().process([line]) == {"home": "/var/lib/pgbackrest", "shell": "/bin/sh"}
    assert PasswdEntry().process([]) is None
    home = {"/var/lib/pgbackrest": PathState("dir", 750, "pgbackrest", "pgbackrest")}
    h = host_with(home, PasswdEntry={"user=pgbackrest": {"home": "/var/lib/pgbackrest", "shell": "/bin/sh"}})
    args = {"user": "pgbackrest", "home": "/var/lib/pgbackrest", "shell": "/bin/sh"}
    assert run_operation(accounts._system_user, h, kwargs=args).commands == []
    with pytest.raises(MissingFact, match="Users"):  # another shell: server.user decides
        run_operation(accounts._system_user, h, kwargs={**args, "shell": "/bin/bash"})
    owned_by_root = {"/var/lib/pgbackrest": PathState("dir", 750, "root", "root")}
    h2 = host_with(owned_by_root, PasswdEntry={"user=pgbackrest": {"home": "/var/lib/pgbackrest",
                                                                    "shell": "/bin/sh"}})
    with pytest.raises(MissingFact, match="Users"):
        run_operation(accounts._system_user, h2, kwargs=args)
