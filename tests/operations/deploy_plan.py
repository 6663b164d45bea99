"""Plan a deploy of pgops.deploys on fake hosts, recording operations instead of running them,
and order the calls as pyinfra's CLI orders operations.

pyinfra (3.x, CLI mode) names an operation by the line numbers of its call stack (plus a
count for a call repeated at the same place, as in a loop): the hosts that reach the same
call site share one operation. Each host's operations keep the order it called them in, and
among operations ready at once the lower line numbers go first. `plan` does the same with
the line numbers in the deploy module, so a test sees the run's order and which hosts share
which operation (e.g. every host's SSH key before any host's trust).

Facts come from `ScenarioHost.answer` (a few kinds, enough for the backup deploy), and every
read is logged, so a test also sees which facts of which hosts a deploy reads.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from io import StringIO
from types import SimpleNamespace
from typing import Any

from pyinfra import host
from pyinfra.context import ctx_host, ctx_inventory, ctx_state

from tests.operations.harness import FakeHost, FakeInventory, FakeState


@dataclass
class Call:
    host: str
    op: str                  # e.g. "files.put"
    name: str                # the operation's name
    kwargs: dict[str, Any]   # rendered: StringIO as its text, `_if` as "changed(<name>)"
    site: tuple[int, ...]    # line numbers in the deploy module, outermost first


class _Meta:
    """What an operation returns at plan time: only `did_change`, for `_if=`."""

    def __init__(self, name: str):
        self.name = name

    def did_change(self) -> bool:  # pragma: no cover - never called at plan time
        raise AssertionError("did_change is evaluated when operations run, not when planned")


@dataclass(frozen=True)
class AnyChanged:
    names: tuple[str, ...]


def any_changed(*metas: _Meta) -> AnyChanged:
    """Stands in for pyinfra.operations.util.any_changed."""
    return AnyChanged(tuple(m.name for m in metas))


def _render(value: Any) -> Any:
    if isinstance(value, StringIO):
        return value.getvalue()
    if isinstance(value, AnyChanged):
        return f"any_changed({', '.join(value.names)})"
    if isinstance(getattr(value, "__self__", None), _Meta):  # `_if=put.did_change`
        return f"changed({value.__self__.name})"
    return value


class Recorder:
    """Stands in for operation modules (apt, files, ...) in the deploy module under test."""

    def __init__(self, module_file: str):
        self.module_file = module_file
        self.calls: list[Call] = []

    def module(self, label: str) -> Any:
        recorder = self

        class _Ops:
            def __getattr__(self, fn: str):
                return lambda **kwargs: recorder.record(f"{label}.{fn}", kwargs)

        return _Ops()

    def record(self, op: str, kwargs: dict[str, Any]) -> _Meta:
        frame, site = sys._getframe(1), []
        while frame is not None:
            if frame.f_code.co_filename == self.module_file:
                site.append(frame.f_lineno)
            frame = frame.f_back
        name = kwargs.pop("name")
        self.calls.append(Call(host.name, op, name, {k: _render(v) for k, v in kwargs.items()},
                               tuple(reversed(site))))
        return _Meta(name)


@dataclass
class Op:
    """One planned operation: the hosts that reach its call site, and what each asked."""

    order: tuple[int, ...]
    calls: list[Call] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return sorted({c.name for c in self.calls})

    @property
    def hosts(self) -> list[str]:
        return [c.host for c in self.calls]


def plan(calls: list[Call]) -> list[Op]:
    """The operations in the order pyinfra's CLI runs them (State.get_op_order)."""
    ops: dict[Any, Op] = {}
    per_host: dict[str, list[Any]] = {}
    for c in calls:
        seen = per_host.setdefault(c.host, [])
        key, count = c.site, 0
        while key in seen:
            key = (key, count)
            count += 1
        seen.append(key)
        ops.setdefault(key, Op(c.site + ((count,) if count else ()))).calls.append(c)
    ts: TopologicalSorter = TopologicalSorter()
    for keys in per_host.values():
        for i, key in enumerate(keys):
            ts.add(key, *keys[i - 1:i])
    ts.prepare()
    out: list[Op] = []
    while ts.is_active():
        ready = sorted(ts.get_ready(), key=lambda k: ops[k].order)
        ts.done(*ready)
        out.extend(ops[k] for k in ready)
    return out


def describe(ops: list[Op]) -> list[str]:
    """One line per operation: its name(s) and hosts, as pyinfra's output groups them."""
    return [f"{' / '.join(op.names)} [{', '.join(op.hosts)}]" for op in ops]


class ScenarioHost(FakeHost):
    """A host whose facts are answered from a few plain values.

    + installed: Debian packages present; cpus: cores; aes: has AES instructions
    + files: paths present (File, FindFiles under a directory by name prefix)
    + bad_calendars: OnCalendar= expressions its systemd refuses
    """

    def __init__(self, name: str, inventory: FakeInventory, groups: list[str], data: dict,
                 reads: list, *, installed=(), cpus: int = 2, aes: bool = True, files=(),
                 bad_calendars=()):
        super().__init__(name, {}, data, inventory)
        self.groups = list(groups)
        self.reads = reads
        self.installed = {p: ["1.0"] for p in installed}
        self.cpus, self.aes, self.files, self.bad = cpus, aes, set(files), set(bad_calendars)

    def get_fact(self, fact_cls, *args, **kwargs):
        assert not args, "fact arguments by keyword"
        self.reads.append((self.name, fact_cls.__name__, repr(sorted(kwargs.items()))))
        return self.answer(fact_cls.__name__, kwargs)

    def answer(self, fact: str, kw: dict) -> Any:
        if fact == "DebPackages":
            return self.installed
        if fact == "HostResources":
            return SimpleNamespace(cpus=self.cpus)
        if fact == "HasAesInstructions":
            return self.aes
        if fact == "File":
            return {"mode": 644} if kw["path"] in self.files else None
        if fact == "FindFiles":
            prefix = f"{kw['path']}/{kw['fname'].rstrip('*')}"
            return sorted(f for f in self.files if f.startswith(prefix))
        if fact == "BadCalendars":
            return [c for c in kw["calendars"] if c in self.bad]
        raise KeyError(f"{self.name}: no answer for fact {fact}")


class Scenario:
    """An inventory of ScenarioHosts, and a run of a deploy on each of them in turn."""

    def __init__(self):
        self.inventory = FakeInventory()
        self.reads: list = []

    def add(self, name: str, groups: list[str], data: dict | None = None, **facts) -> ScenarioHost:
        h = ScenarioHost(name, self.inventory, groups, data or {}, self.reads, **facts)
        self.inventory.hosts[name] = h
        return h

    def run(self, deploy, *args) -> None:
        """Call `deploy(*args)` with each host as pyinfra's `host`, in inventory order."""
        state = FakeState(self.inventory)
        for h in self.inventory.hosts.values():
            with ctx_state.use(state), ctx_inventory.use(self.inventory), ctx_host.use(h):
                deploy(*args)
