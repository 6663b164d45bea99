"""Facts read once and reused by later operations on the same host, until any operation runs
a command on any host (it may have changed what the fact reads: a stanza created from the
repository host, a leader switched): then they are read again.

pyinfra reads a fact afresh for every operation that asks; on a no-op deploy the same
`PgRoles` was read once per role, one SSH round trip each.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from typing import Any

import gevent
from pyinfra import host, state
from pyinfra.api import FactBase, StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.api.facts import _handle_fact_kwargs, _make_command
from pyinfra.api.host import Host

from pgops.greenlets import spawn

_CACHE = "_pgops_fact_cache"
#: The connector arguments a fact's command runs with: part of what it reads.
_AS = ("_sudo", "_sudo_user", "_su_user", "_use_sudo_login", "_use_su_login")


def commands_run() -> int:
    """Operations that have run commands so far, on every host (each may have changed what a
    fact reads)."""
    return sum(1 for ops in host.state.ops.values() for op in ops.values()
               if op.operation_meta.is_complete() and op.operation_meta.executed)


def valid_entries(name: str, on: Host | None = None) -> dict:
    """The store `name` of host `on` (default: the current one), emptied if any command ran
    since it was filled; the caller adds what it reads."""
    target = on or host
    mark = commands_run()
    taken, entries = getattr(target, name, (None, {}))
    if taken != mark:
        entries = {}
        setattr(target, name, (mark, entries))
    return entries


def _key(cls: Any, kwargs: Mapping[str, Any]) -> tuple:
    """The fact, its own arguments, and the user it runs as: from connector arguments given
    with it, else from the operation's. Unset and false are one: an operation's context holds
    `_sudo=False` where a deploy's code has no arguments at all, and the fact runs the same
    way under either."""
    args: dict[str, Any] = {**dict(host.current_op_global_arguments or {}), **kwargs}
    own = tuple(sorted((k, v) for k, v in kwargs.items() if not k.startswith("_")))
    return (cls, own, tuple(str(args.get(a) or None) for a in _AS))


def fact(cls: Any, on: Host | None = None, **kwargs: Any) -> Any:
    """`host.get_fact(cls, **kwargs)` (or `on.get_fact`: another host's), reused while nothing
    has changed."""
    key = _key(cls, kwargs)
    entries = valid_entries(_CACHE, on)
    if key not in entries:
        entries[key] = (on or host).get_fact(cls, **kwargs)
    return entries[key]


def read_at_once(requests: Sequence[tuple[Host, Any, Mapping[str, Any]]]) -> None:
    """Read the (host, fact, arguments) not cached yet into the cache `fact` answers from,
    every host at once (one greenlet per host, reading its facts in turn, so a host not yet
    connected is connected once): facts of several hosts cost one round trip, not one each."""
    todo: dict[Host, dict[tuple, tuple[Any, Mapping[str, Any]]]] = {}
    for on, cls, kwargs in requests:
        key = _key(cls, kwargs)
        if key not in valid_entries(_CACHE, on):
            todo.setdefault(on, {})[key] = (cls, kwargs)

    def read(on: Host, wanted: Mapping[tuple, tuple[Any, Mapping[str, Any]]]) -> None:
        for key, (cls, kwargs) in wanted.items():
            value = on.get_fact(cls, **kwargs)
            valid_entries(_CACHE, on)[key] = value

    gevent.joinall([spawn(read, on, wanted) for on, wanted in todo.items()],
                   raise_error=True)


def read_together(requests: Sequence[tuple[Any, Mapping[str, Any]]]) -> None:
    """Read the current host's (fact, arguments) not cached yet with one command per user
    they run as, not one SSH round trip each, into the cache `fact` answers from: a deploy
    that starts by asking these saves a round trip for each. A fact whose command fails or
    whose program is missing is not cached: `fact` reads it alone, through pyinfra's own
    handling of errors."""
    entries = valid_entries(_CACHE)
    groups: dict[str, tuple[dict[str, Any], list[tuple[tuple, FactBase, str]]]] = {}
    for cls, kwargs in requests:
        key = _key(cls, kwargs)
        fact = cls()
        if key in entries or not isinstance(fact, FactBase) or fact.shell_executable:
            continue
        fact_kwargs, global_kwargs = _handle_fact_kwargs(state, host, cls, None, dict(kwargs))
        runs_as = {k: v for k, v in global_kwargs.items() if k in CONNECTOR_ARGUMENT_KEYS}
        group = groups.setdefault(repr(sorted(runs_as.items())), (runs_as, []))
        group[1].append((key, fact, _command(fact, fact_kwargs)))
    for runs_as, facts in groups.values():
        if len(facts) < 2:
            continue
        marker = f"@@pgops-fact-{secrets.token_hex(6)}"
        ok, output = host.run_shell_command(StringCommand(script([c for *_, c in facts], marker)),
                                            **runs_as)
        if not ok:
            continue
        for i, (rc, lines) in sections(output.stdout_lines, marker).items():
            key, fact, _ = facts[i]
            if rc != 0:
                continue
            try:
                entries[key] = fact.process(lines) if lines else fact.default()
            except Exception:  # noqa: BLE001 - read alone, pyinfra reports it as it does
                pass


def _command(fact: FactBase, kwargs: Mapping[str, Any]) -> str:
    """The fact's command as pyinfra would run it: where its program is missing, exit 127."""
    command = str(_make_command(fact.command, dict(kwargs)))
    required = _make_command(fact.requires_command, dict(kwargs))
    if required:
        return (f"if command -v {required} >/dev/null 2>&1; then ( {command}\n); "
                "else exit 127; fi")
    return command


def script(commands: Sequence[str], marker: str) -> str:
    """One shell script running each command in a function of its own (its output captured,
    then printed after a line `marker i status`) (pure)."""
    out = []
    for i, command in enumerate(commands):
        out += [f"pgops_fact_{i}() {{\n{command}\n}}",
                f'out=$(pgops_fact_{i}); rc=$?; echo "{marker} {i} $rc"; '
                '[ -n "$out" ] && printf \'%s\\n\' "$out"']
    return "\n".join(out) + "\ntrue"


def sections(lines: Sequence[str], marker: str) -> dict[int, tuple[int, list[str]]]:
    """`script`'s output: fact index -> (exit status, output lines) (pure)."""
    out: dict[int, tuple[int, list[str]]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(marker + " "):
            _, i, rc = line.split(" ")
            current = []
            out[int(i)] = (int(rc), current)
        elif current is not None:
            current.append(line)
    return out
