"""pyinfra's `systemd.service`, decided from cached unit facts.

pyinfra's operation reads a unit's state and then its enablement, two SSH round trips a
unit, at every call: on a cluster member (etcd, Patroni, PgBouncer, HAProxy) and on a
repository host (a timer per job and stanza) most of a no-op deploy's time. A deploy reads
the units it will ask about in one command first (`cache.read_together(unit_facts(...))`);
this operation answers from that cache and hands anything that needs a change to pyinfra's
own operation, which reads its facts again and acts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pyinfra.api import operation
from pyinfra.facts.systemd import SystemdEnabled, SystemdStatus
from pyinfra.operations import systemd

from pgops.operations import cache

#: The unit types systemctl takes by name; anything else is a service (pyinfra's rule).
UNIT_SUFFIXES = (".service", ".socket", ".device", ".mount", ".automount", ".swap", ".target",
                 ".path", ".timer", ".slice", ".scope")


def unit_name(service: str) -> str:
    """`service` as systemctl names it: `.service` added where it has no unit type (pure)."""
    return service if service.endswith(UNIT_SUFFIXES) else f"{service}.service"


def unit_facts(services: Iterable[str]) -> list[tuple[Any, Mapping[str, Any]]]:
    """The facts `service` reads of each unit, for `cache.read_together` (pure)."""
    out: list[tuple[Any, Mapping[str, Any]]] = []
    for s in services:
        which = (unit_name(s),)
        out += [(SystemdStatus, {"services": which}), (SystemdEnabled, {"services": which})]
    return out


def settled(is_running: bool | None, is_enabled: bool, running: bool | None,
            restarted: bool, reloaded: bool, enabled: bool | None) -> bool:
    """Whether pyinfra's `systemd.service` would do nothing to a unit in this state (its
    rules: an unknown state counts as stopped; a restart or reload acts on a running unit
    only) (pure)."""
    up = bool(is_running)
    if running is not None and running != up:
        return False
    if (restarted or reloaded) and up:
        return False
    return enabled is None or enabled == is_enabled


@operation()
def service(service: str, running: bool | None = True, restarted: bool = False,
            reloaded: bool = False, enabled: bool | None = None):
    """A systemd unit running (or stopped), restarted, reloaded, enabled (or disabled) as
    asked: nothing when its cached state already is, else pyinfra's `systemd.service`."""
    which = (unit_name(service),)
    asks_state = running is not None or restarted or reloaded
    status = (cache.fact(SystemdStatus, services=which) or {}) if asks_state else {}
    enablement = {} if enabled is None else (cache.fact(SystemdEnabled, services=which) or {})
    if settled(status.get(which[0]), bool(enablement.get(which[0], False)), running,
               restarted, reloaded, enabled):
        return
    yield from systemd.service._inner(service=service, running=running, restarted=restarted,
                                      reloaded=reloaded, enabled=enabled)
