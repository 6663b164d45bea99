"""Facts read once and reused by later operations on the same host, until any operation runs
a command on any host (it may have changed what the fact reads: a stanza created from the
repository host, a leader switched): then they are read again.

pyinfra reads a fact afresh for every operation that asks; on a no-op deploy the same
`PgRoles` was read once per role, one SSH round trip each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gevent
from pyinfra import host
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
    args: dict[str, Any] = dict(host.current_op_global_arguments or {})
    # Unset and false are one: an operation's context holds `_sudo=False` where a deploy's
    # code has no arguments at all, and the fact runs the same way under either.
    return (cls, tuple(sorted(kwargs.items())), tuple(str(args.get(a) or None) for a in _AS))


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
