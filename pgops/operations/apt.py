"""pyinfra's `apt.packages` (install only), decided from one read of the host's packages.

pyinfra's operation reads every installed package (`dpkg -l`) each time it is called: three
to five times a host in one deploy (PostgreSQL, pgBackRest, Patroni, PgBouncer...). This
one answers from pgops.operations.cache, read again once any operation has run a command;
anything not installed goes to pyinfra's own operation, which reads its facts and installs.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyinfra.api import operation
from pyinfra.facts.deb import DebPackages
from pyinfra.operations import apt

from pgops.operations import cache


def missing(wanted: Sequence[str], installed: dict | None) -> list[str]:
    """The packages of `wanted` not installed (a pinned `name=version` is never taken as
    installed here: pyinfra's operation decides it). Pure."""
    have = installed or {}
    return [p for p in wanted if p not in have]


@operation()
def packages(packages: Sequence[str], no_recommends: bool = True):
    """Install `packages` where any is missing (pyinfra's apt.packages then decides)."""
    if not missing(packages, cache.fact(DebPackages)):
        return
    yield from apt.packages._inner(packages=list(packages), no_recommends=no_recommends)
